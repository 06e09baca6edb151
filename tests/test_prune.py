"""Iterative pruning, group lasso and the sensitivity command."""

import pytest
import torch
import yaml

from speechcompress.cli import main
from speechcompress.compression.prune import PruneCallback, magnitude_mask, row_mask
from speechcompress.compression.regularize import GroupLassoCallback, group_lasso
from speechcompress.config import ConfigError
from speechcompress.models.rnnoise import RNNoise


def test_magnitude_mask_keeps_the_largest_weights():
    weight = torch.tensor([[0.1, -3.0], [2.0, -0.2]])
    assert magnitude_mask(weight, 0.5).tolist() == [[False, True], [True, False]]


def test_structured_pruning_removes_whole_rows():
    torch.manual_seed(0)
    weight = torch.randn(16, 12)
    weight[3] *= 0.01
    weight[9] *= 0.02
    mask = row_mask(weight, density=0.75)
    kept_rows = mask.all(dim=1)
    assert kept_rows.sum() == 12 and not kept_rows[3] and not kept_rows[9]
    assert (mask.all(dim=1) | ~mask.any(dim=1)).all()  # every row all kept or all pruned
    conv = torch.randn(8, 4, 3)
    assert row_mask(conv, 0.5).reshape(8, -1).all(dim=1).sum() == 4


def test_prune_callback_hits_its_targets_per_tensor_globally_and_by_row():
    torch.manual_seed(0)
    model = RNNoise(cond_size=16, gru_size=16)
    for structure, scope in (("unstructured", "per_tensor"), ("unstructured", "global"), ("structured", "per_tensor")):
        callback = PruneCallback(final_sparsity=0.75, structure=structure, scope=scope)
        masks = callback.compute_masks(model, alpha=0.0)
        assert set(masks) == {n for n, p in model.named_parameters() if p.dim() >= 2}
        total = sum(m.numel() for m in masks.values())
        assert sum(int(m.sum()) for m in masks.values()) / total == pytest.approx(0.25, abs=0.02)
        halfway = callback.compute_masks(model, alpha=0.5)
        assert sum(int(m.sum()) for m in halfway.values()) / total == pytest.approx(0.625, abs=0.02)


def test_prune_callback_state_round_trip():
    model = RNNoise(cond_size=16, gru_size=16)
    callback = PruneCallback(final_sparsity=0.5)
    callback.masks = callback.compute_masks(model, alpha=0.0)
    callback.last_update = 400
    restored = PruneCallback(final_sparsity=0.5)
    restored.load_state_dict(callback.state_dict())
    assert restored.last_update == 400
    assert all(torch.equal(restored.masks[k], m) for k, m in callback.masks.items())


def test_bad_prune_settings_are_refused():
    with pytest.raises(ConfigError, match="final_sparsity"):
        PruneCallback(final_sparsity=1.0)
    with pytest.raises(ConfigError, match="scope=per_tensor"):
        PruneCallback(structure="structured", scope="global")
    with pytest.raises(ConfigError, match="sensitivity"):
        PruneCallback(ratios_file="/no/such/ratios.yaml")


def test_group_lasso_value_and_ramp():
    weight = torch.zeros(8, 4, requires_grad=True)
    with torch.no_grad():
        weight[0] = torch.tensor([3.0, 4.0, 0.0, 0.0])  # row norm 5
        weight[1, 0] = 2.0  # row norm 2
    assert float(group_lasso(weight, "rows")) == pytest.approx(7.0, abs=1e-4)
    assert float(group_lasso(weight, "blocks")) == pytest.approx((9 + 16 + 4) ** 0.5, abs=1e-4)
    group_lasso(weight, "rows").backward()
    assert torch.isfinite(weight.grad).all()

    class FakeTask:  # the protocol only needs .model and .global_step
        model = torch.nn.Linear(4, 8, bias=False)
        global_step = 50

    with torch.no_grad():
        FakeTask.model.weight.copy_(weight.detach())
    callback = GroupLassoCallback(weight=0.1, warmup_steps=100)
    term = callback.loss_terms(FakeTask(), {}, None)["group_lasso"]
    assert float(term) == pytest.approx(0.1 * 0.5 * 7.0, abs=1e-4)


def test_sensitivity_command_writes_table_plot_and_usable_ratios(tiny_run, tmp_path, capsys):
    from pathlib import Path

    cfg, _ = tiny_run
    (checkpoint,) = (Path(cfg.paths.experiments_dir) / "runs" / "rnnoise").glob("*/checkpoints/best-*.ckpt")
    ratios = tmp_path / "ratios.yaml"
    code = main(["sensitivity", "--checkpoint", str(checkpoint), "--ratios", "0.5,0.9", "--max-batches", "2",
                 "--out", str(tmp_path / "sens"), "--emit-ratios", str(ratios), "--tolerance", "0.5"])
    assert code == 0
    assert "gru1.weight_hh_l0" in capsys.readouterr().out
    table = (tmp_path / "sens" / "sensitivity.csv").read_text().splitlines()
    assert table[0] == "tensor,ratio,loss,increase" and len(table) == 1 + 10 * 3  # 10 weights × (0, .5, .9)
    assert (tmp_path / "sens" / "sensitivity.png").stat().st_size > 1000
    picked = yaml.safe_load(ratios.read_text())
    assert picked and all(v in (0.0, 0.5, 0.9) for v in picked.values())
    callback = PruneCallback(ratios_file=str(ratios))
    assert callback.ratios == picked


@pytest.mark.parametrize("experiment, schedule", [
    ("rnnoise_prune", ["compression.schedule=relative", "compression.prune_start=0.1", "compression.prune_stop=0.6"]),
    ("rnnoise_group_lasso", ["compression.callbacks.prune.schedule=relative",
                             "compression.callbacks.prune.prune_start=0.3", "compression.callbacks.prune.prune_stop=0.6"]),
])
def test_pruning_recipes_train_and_end_at_their_sparsity(experiment, schedule, tmp_path):
    """The shipped recipes, on the tiny model for 120 steps through the real train.run."""
    from mlflow.tracking import MlflowClient

    from speechcompress.train import run

    from .conftest import TINY, compose_config, sandbox_overrides

    overrides = [o for o in TINY if not o.startswith(("trainer.max_steps", "trainer.val_check_interval"))]
    cfg = compose_config([f"+experiment={experiment}", *overrides, *sandbox_overrides(tmp_path),
                          "trainer.max_steps=120", "trainer.val_check_interval=60", *schedule])
    metrics = run(cfg)
    target = 0.3 if experiment == "rnnoise_prune" else 0.5  # density of the pruned weights
    client = MlflowClient(cfg.logger.tracking_uri)
    (logged,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert logged.data.metrics["compression/density"] == pytest.approx(target, abs=0.02)
    assert metrics["size/nonzero"] < metrics["size/params"]
    if experiment == "rnnoise_group_lasso":
        assert "train/group_lasso" in logged.data.metrics
