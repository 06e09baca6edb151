"""Multiruns: one MLflow parent per sweep, every job its child, through the real launchers."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hydra import compose, initialize_config_dir
from mlflow.tracking import MlflowClient

from speechcompress.cli import main
from speechcompress.config import CONFIG_DIR, PROJECT_ROOT
from speechcompress.tracking.sweep import ROLE_TAG, SWEEP_TAG

from .conftest import TINY, compose_config, sandbox_overrides, start_mlflow_server, stop

QUICK = [o for o in TINY if not o.startswith(("trainer.max_steps", "trainer.val_check_interval"))] + [
    "trainer.max_steps=10", "trainer.val_check_interval=10", "measure.memory_seconds=1"]


def _sweep(tmp_path, *extra: str, experiment: str = "rnnoise", swept: tuple[str, ...] = ("seed=1,2",)
           ) -> subprocess.CompletedProcess:
    overrides = [f"+experiment={experiment}", *QUICK, *sandbox_overrides(tmp_path), *swept, *extra]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "train.py", "-m", *overrides], cwd=PROJECT_ROOT, capture_output=True,
                            text=True, timeout=900, env=environment)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _runs_of(tmp_path, experiment: str = "rnnoise"):
    cfg = compose_config(["+experiment=rnnoise", *sandbox_overrides(tmp_path)])
    client = MlflowClient(cfg.logger.tracking_uri)
    found = client.get_experiment_by_name(experiment)
    return client, client.search_runs([found.experiment_id])


def _check_parent_and_children(tmp_path, experiment: str = "rnnoise", swept: dict[str, str] | None = None):
    swept = swept or {"seed": "1,2"}
    client, runs = _runs_of(tmp_path, experiment)
    (parent,) = [r for r in runs if r.data.tags.get(ROLE_TAG) == "parent"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    jobs = 1
    for values in swept.values():
        jobs *= len(values.split(","))
    assert len(runs) == jobs + 1 and len(children) == jobs
    assert parent.info.run_name == f"{experiment} sweep: {', '.join(swept)}"
    assert {k: parent.data.params[f"sweep.{k}"] for k in swept} == swept
    assert parent.info.status == "FINISHED"
    assert {c.data.tags[SWEEP_TAG] for c in children} == {parent.data.tags[SWEEP_TAG]}
    assert sorted({c.data.params["seed"] for c in children}) == sorted(swept["seed"].split(","))
    assert all("test/pesq" in c.data.metrics for c in children)
    return parent, children


SEEDS_SWEPT = {"compression.density": "1.0,0.5", "seed": "1,2"}


def test_a_density_by_seed_sweep_groups_seeds_in_compare_and_registers_a_champion(tmp_path, capsys):
    """Two densities × two seeds: one parent, four children; `compare` shows two recipes (n = 2,
    mean ± sd) and registers the best one within a byte budget; `enhance` runs it by alias, through
    the SQLite store and through a real server on the same store."""
    _sweep(tmp_path, "compression.sparsify_interval=1", "export=onnx", "export.quantize=null",
           "~export.formats.rnnoise_step", experiment="rnnoise_density_sweep_seeds",
           swept=tuple(f"{k}={v}" for k, v in SEEDS_SWEPT.items()))
    parent, children = _check_parent_and_children(tmp_path, "rnnoise_density_sweep_seeds", SEEDS_SWEPT)
    client, _ = _runs_of(tmp_path, "rnnoise_density_sweep_seeds")
    out, store = tmp_path / "reports", client.tracking_uri
    sizes = {c.data.params["compression.density"]: c.data.metrics["size/bytes_sparse"] for c in children}
    budget = (max(sizes.values()) + min(sizes.values())) / 2  # the dense recipe does not fit
    assert main(["compare", "--experiment", "rnnoise_density_sweep_seeds", "--tracking-uri", store,
                 "--out", str(out), "--register", "tiny-denoiser", "--max-bytes", str(budget)]) == 0
    printed = capsys.readouterr().out
    header = next(line for line in printed.splitlines() if line.startswith("| Pareto"))
    rows = [line.split(" | ") for line in printed.splitlines() if "-s{1,2} |" in line]
    assert len(rows) == 2 and "| n |" in header and "test/pesq" in header and "deploy/" not in header
    assert {r[2] for r in rows} == {"1.0", "0.5"} and all(r[3] == "2" for r in rows)
    assert all(" ± " in cell for r in rows for cell in r[6:7])  # test/pesq: mean ± sd
    (sparse,) = [r for r in rows if r[2] == "0.5"]
    pesq = {c.info.run_id: c.data.metrics["test/pesq"] for c in children
            if c.data.params["compression.density"] == "0.5"}
    assert float(sparse[6].split(" ± ")[0]) == pytest.approx(sum(pesq.values()) / 2, abs=1e-3)

    version = client.get_model_version_by_alias("tiny-denoiser", "champion")
    assert version.run_id == max(pesq, key=pesq.get)  # the better seed of the recipe that fits
    assert version.tags["swept.compression.density"] == "0.5" and version.tags["seeds"] == "2"
    assert float(version.tags["bytes"]) <= budget and float(version.tags["budget.max_bytes"]) == budget
    assert float(version.tags["test/pesq"]) == pytest.approx(pesq[version.run_id], abs=1e-4)
    assert main(["compare", "--experiment", "rnnoise_density_sweep_seeds", "--tracking-uri", store, "--all",
                 "--out", str(out)]) == 0
    assert "deploy/onnx/max_abs_difference" in capsys.readouterr().out  # --all: every figure

    wave = tmp_path / "in.wav"
    sf.write(wave, 0.1 * np.random.default_rng(0).standard_normal(16000).astype(np.float32), 16000)
    assert main(["enhance", "--model", "models:/tiny-denoiser@champion", "--tracking-uri", store, str(wave),
                 str(tmp_path / "out.wav")]) == 0
    assert sf.read(tmp_path / "out.wav")[0].shape == (16000,)

    process, server = start_mlflow_server(Path(store.removeprefix("sqlite:///")), tmp_path / "server-artifacts")
    try:
        assert main(["compare", "--experiment", "rnnoise_density_sweep_seeds", "--tracking-uri", server,
                     "--out", str(out), "--register", "tiny-denoiser", "--max-rtf", "1.0"]) == 0
        served = MlflowClient(server).get_model_version_by_alias("tiny-denoiser", "champion")
        assert served.version == "2" and "budget.max_bytes" not in served.tags
        assert main(["enhance", "--model", "models:/tiny-denoiser@champion", "--tracking-uri", server,
                     str(wave), str(tmp_path / "served.wav")]) == 0
        assert sf.read(tmp_path / "served.wav")[0].shape == (16000,)
    finally:
        stop(process)


@pytest.mark.slow  # an infrastructure re-check: `make test-all`
def test_parallel_joblib_jobs_share_the_cores(tmp_path):
    _sweep(tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    _, children = _check_parent_and_children(tmp_path)
    cores = os.cpu_count() or 1
    assert all(c.data.params["env.torch_threads"] == str(max(1, cores // 2)) for c in children)


@pytest.mark.slow  # an infrastructure re-check: `make test-all`
def test_the_cluster_path_runs_a_two_job_sweep_through_submitit(tmp_path):
    """submitit_local: the jobs are pickled and run in their own processes, as on SLURM."""
    _sweep(tmp_path, "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=15")
    _check_parent_and_children(tmp_path)
    assert list((tmp_path / "experiments" / "multiruns" / "rnnoise").glob("*/.submitit/*"))


def test_the_slurm_launcher_config_carries_the_keys_users_set():
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="train", return_hydra_config=True,
                      overrides=["+experiment=rnnoise", "hydra/launcher=slurm", "trainer=ddp", "trainer.num_nodes=2",
                                 "hydra.launcher.partition=gpu", "hydra.launcher.account=speech",
                                 "hydra.launcher.gpus_per_node=4"])
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.partition, launcher.account, launcher.nodes) == ("gpu", "speech", 2)
    assert launcher.gpus_per_node == launcher.tasks_per_node == 4  # one DDP process per GPU
    assert launcher.signal_delay_s > 0 and launcher.timeout_min > 0 and launcher.mem_gb and launcher.cpus_per_task
    assert cfg.trainer.strategy.startswith("ddp") and cfg.trainer.devices == -1
