import subprocess
import sys

import pytest

from speechcompress.checkpoints import save_task
from speechcompress.config import CONFIG_DIR, PROJECT_ROOT
from speechcompress.tasks.base import build_task
from speechcompress.tracking.mlflow import run_name

from .conftest import compose_config, sandbox_overrides

EXPERIMENTS = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_names_itself_and_builds_its_task(experiment):
    cfg = compose_config([f"+experiment={experiment}"])
    assert cfg.name == experiment  # its MLflow experiment: a recipe copied without renaming would log elsewhere
    task = build_task(cfg)
    assert sum(p.numel() for p in task.model.parameters()) > 10_000
    assert str(cfg.paths.experiments_dir).startswith(str(PROJECT_ROOT))


def test_run_names_say_what_each_recipe_sets():
    names = {experiment: run_name(compose_config([f"+experiment={experiment}", *extra]))
             for experiment, extra in (("rnnoise", []), ("rnnoise_sparse", ["compression.density=0.3"]),
                                       ("rnnoise_prune", []), ("rnnoise_group_lasso", []),
                                       ("fsmn_vad_distill", ["compression.teacher=t.ckpt"]))}
    assert names == {"rnnoise": "rnnoise-none-s1", "rnnoise_sparse": "rnnoise-sparsify-d0.30-s1",
                     "rnnoise_prune": "rnnoise-prune-s1", "rnnoise_group_lasso": "rnnoise-group_lasso-s1",
                     "fsmn_vad_distill": "fsmnvad-distill-T2.0-a0.5-s1"}
    with pytest.raises(Exception, match="density"):  # a setting pruning has no use for is not a key of it
        compose_config(["+experiment=rnnoise_prune", "compression.density=0.3"])


def test_folder_data_configs_compose():
    for data in ("paired_folder", "dns_folder"):
        cfg = compose_config(["+experiment=rnnoise", f"data={data}", "data.root=/corpus"])
        assert cfg.data.test.clean_dir == "/corpus/test/clean"


def _train(*overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "train.py", *overrides], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=120)


def test_misspelled_key_gets_hydras_error():
    result = _train("+experiment=rnnoise", "model.gru_sise=64")
    assert result.returncode != 0
    assert "Could not override 'model.gru_sise'" in result.stderr
    assert "Traceback" not in result.stderr  # Hydra's message, not a traceback from deep inside


def test_misspelled_group_gets_hydras_error():
    result = _train("+experiment=rnnose")
    assert result.returncode != 0
    assert "Could not find 'experiment/rnnose'" in result.stderr


def test_a_missing_resume_checkpoint_is_one_line_and_exit_2(tmp_path):
    result = _train("+experiment=rnnoise", f"resume={tmp_path / 'gone.ckpt'}", *sandbox_overrides(tmp_path))
    assert result.returncode == 2
    assert "resume=" in result.stderr and "gone.ckpt: no such checkpoint" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unknown_export_quantization_is_refused_before_training(tmp_path):
    result = _train("+experiment=rnnoise", "export.quantize=int4", *sandbox_overrides(tmp_path))
    assert result.returncode == 2
    assert "export.quantize=int4 is not a quantization" in result.stderr and "dynamic-int8" in result.stderr
    assert not (tmp_path / "experiments" / "runs").exists()  # nothing written


def test_init_weights_are_checked_before_anything_is_written(tmp_path):
    result = _train("+experiment=rnnoise_xiph48k_finetune", *sandbox_overrides(tmp_path))
    assert result.returncode == 2 and "init must be set" in result.stderr  # the recipe says what it needs
    result = _train("+experiment=rnnoise_xiph48k_finetune", f"init={tmp_path / 'gone.ckpt'}", *sandbox_overrides(tmp_path))
    assert result.returncode == 2 and "gone.ckpt does not exist" in result.stderr
    small = tmp_path / "small.ckpt"  # a checkpoint of another size, given to a recipe with no init of its own
    save_task(build_task(compose_config(["+experiment=rnnoise_xiph48k", "model.gru_size=32"])), small)
    result = _train("+experiment=rnnoise_xiph48k", f"+init={small}", *sandbox_overrides(tmp_path))
    assert result.returncode == 2 and "does not fit this run's model.*" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "experiments" / "runs").exists()  # nothing written


def test_xiph_rnnoise_at_sizes_librnnoise_cannot_load_is_refused_before_training(tmp_path):
    result = _train("+experiment=rnnoise_xiph48k", "model.gru_size=32", "trainer=default", *sandbox_overrides(tmp_path))
    assert result.returncode == 2
    assert "librnnoise is built for conv1 of 128 and GRUs of 384" in result.stderr and "export=none" in result.stderr
    assert not (tmp_path / "experiments" / "runs").exists()  # nothing written


def test_a_run_without_an_end_is_refused_before_anything_is_written(tmp_path):
    from speechcompress.config import ConfigError
    from speechcompress.stages.plan import plan

    from .conftest import TINY

    cfg = compose_config(["+experiment=rnnoise", *TINY, *sandbox_overrides(tmp_path), "trainer.max_steps=-1"])
    with pytest.raises(ConfigError, match="set trainer.max_steps"):
        plan(cfg)  # no compression callback: the check stands on its own
    assert not (tmp_path / "experiments" / "runs").exists()
