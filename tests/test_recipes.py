"""Every recipe in conf/experiment/ takes real steps (tiny sizes, a few steps), and a sweep runs as a multirun."""

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from speechcompress.checkpoints import save_task
from speechcompress.config import CONFIG_DIR, PROJECT_ROOT
from speechcompress.tasks.base import build_task
from speechcompress.train import run

from .conftest import (
    TINY,
    TINY_FRCRN,
    TINY_FSMN,
    TINY_RUN,
    USES_TINY_FRCRN,
    compose_config,
    sandbox_overrides,
)

EXPERIMENTS = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml"))
# two steps and one validation (with its quality figures): that a recipe composes, builds, steps, tests and
# reports; what each family and callback learns is checked by one real run each in its own test file
STEPS = ["trainer.max_steps=2", "trainer.val_check_interval=2", "data.num_workers=0", "trainer.strategy=auto",
         "trainer.devices=1"]
SCHEDULES = {  # compressed recipes squeezed into the few steps, as fractions of the run
    "sparsify": ["compression.schedule=relative", "compression.sparsify_start=0.2", "compression.sparsify_stop=0.6",
                 "compression.sparsify_interval=1"],
    "prune": ["compression.schedule=relative", "compression.prune_start=0.2", "compression.prune_stop=0.6",
              "compression.prune_interval=1"],
}
SCHEDULES["group_lasso"] = SCHEDULES["prune"]


def _tiny(experiment: str) -> list[str]:
    cfg = compose_config([f"+experiment={experiment}"])
    family = cfg.model._target_.rsplit(".", 1)[-1]
    rnnoise = [o for o in TINY if o.startswith("model.")]
    model = {"RNNoise": rnnoise, "XiphRNNoise": rnnoise, "FRCRN": TINY_FRCRN}.get(family, TINY_FSMN)
    replaced = ("trainer.max_steps", "trainer.val_check_interval")
    return [*model, *(o for o in TINY_RUN if not o.startswith(replaced)), *STEPS,
            *SCHEDULES.get(str(cfg.compression.name), [])]


def _sandbox(data_dir: Path, root: Path) -> list[str]:
    """`sandbox_overrides` with the tiny run's corpus, already synthesised."""
    return [*sandbox_overrides(root), f"paths.data_dir={data_dir}"]


def _teacher(experiment: str) -> str | None:
    """The session fixture whose checkpoint a distillation recipe learns from."""
    if "distill" not in experiment:
        return None
    return "tiny_frcrn_run" if experiment.startswith("frcrn") else "tiny_vad_run"


@pytest.mark.parametrize("experiment", [
    pytest.param(e, marks=[USES_TINY_FRCRN] if _teacher(e) == "tiny_frcrn_run" else []) for e in EXPERIMENTS])
def test_every_recipe_takes_steps_and_reports(experiment, tiny_run, tmp_path, request):
    data_dir = Path(tiny_run[0].paths.data_dir)  # the tiny corpus, already synthesised
    overrides = [f"+experiment={experiment}", *_tiny(experiment), *_sandbox(data_dir, tmp_path)]
    if _teacher(experiment):  # trained only where a recipe needs it
        overrides.append(f"compression.teacher={request.getfixturevalue(_teacher(experiment))[2]}")
    if "finetune" in experiment:  # starts from a checkpoint of its own (tiny) sizes
        start = save_task(build_task(compose_config(overrides)), tmp_path / "init.ckpt")
        overrides.append(f"init={start}")
    metrics = run(compose_config(overrides))
    quality = metrics.get("test/pesq", metrics.get("test/f1"))
    assert quality is not None and math.isfinite(quality)
    assert metrics["size/params"] > 0 and metrics["latency/rtf"] > 0


def test_a_sweep_recipe_runs_every_job_as_a_child_of_one_parent_run(tiny_run, tmp_path):
    data_dir = Path(tiny_run[0].paths.data_dir)
    overrides = ["-m", "+experiment=rnnoise_density_sweep", *_tiny("rnnoise_density_sweep"), *_sandbox(data_dir, tmp_path),
                 "measure.latency_seconds=1", "measure.latency_repeats=1"]
    result = subprocess.run([sys.executable, "train.py", *overrides], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            timeout=600, env={"OMP_NUM_THREADS": "2", **os.environ})
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path / 'experiments' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("rnnoise_density_sweep").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("speechcompress.role") == "parent"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(runs) == 6 and parent.info.run_name == "rnnoise_density_sweep sweep: compression.density"
    assert parent.data.params["sweep.compression.density"] == "1.0,0.5,0.3,0.2,0.1"  # the experiment's sweeper params
    assert sorted(r.info.run_name for r in children) == sorted(f"rnnoise-sparsify-d{d}-s1" for d in
                                                               ("1.00", "0.50", "0.30", "0.20", "0.10"))
    assert len({r.data.tags["speechcompress.sweep"] for r in runs}) == 1
