"""Iterative pruning, group lasso and the sensitivity command."""

import pytest
import torch
import yaml
from hydra.utils import instantiate

from speechcompress.checkpoints import load_task, save_task
from speechcompress.cli import main
from speechcompress.compression.prune import PruneCallback, magnitude_mask
from speechcompress.compression.regularize import GroupLassoCallback, block_lasso, unit_lasso
from speechcompress.compression.structured import largest_difference, shrink_model
from speechcompress.config import ConfigError
from speechcompress.models.fsmn_vad import FSMNVAD
from speechcompress.models.rnnoise import RNNoise
from speechcompress.tasks.denoise import DenoiseTask


def test_magnitude_mask_keeps_the_largest_weights():
    weight = torch.tensor([[0.1, -3.0], [2.0, -0.2]])
    assert magnitude_mask(weight, 0.5).tolist() == [[False, True], [True, False]]


def _pruned_units(model, sparsity=0.5):
    torch.manual_seed(0)
    callback = PruneCallback(final_sparsity=sparsity, structure="structured")
    callback.masks = callback.compute_masks(model, alpha=0.0)
    callback.apply_masks(model)
    return callback


def test_structured_pruning_removes_whole_units_and_never_the_outputs():
    model = RNNoise(cond_size=16, gru_size=16)
    callback = _pruned_units(model)
    h = 16
    w_ih, w_hh = model.gru1.weight_ih_l0, model.gru1.weight_hh_l0
    dead = [j for j in range(h) if not w_ih[j].any()]
    assert len(dead) == h // 2
    for j in dead:  # the unit's rows in all three gates, both matrices and biases, and everything reading it
        for gate in range(3):
            row = gate * h + j
            assert not (w_ih[row].any() or w_hh[row].any() or model.gru1.bias_ih_l0[row] or model.gru1.bias_hh_l0[row])
        assert not w_hh[:, j].any() and not model.gru2.weight_ih_l0[:, j].any()
        assert not model.dense_out.weight[:, h + j].any()  # the heads read conv2 (h channels), then gru1
    alive = [j for j in range(h) if j not in dead]
    assert all(w_ih[j].any() and w_ih[h + j].any() and w_ih[2 * h + j].any() for j in alive)
    assert model.dense_out.weight.any(dim=1).all() and model.dense_out.bias.all()  # every band keeps its gain
    assert model.vad_dense.weight.any()
    assert not any(name.startswith(("dense_out", "vad_dense")) for name in callback.masks if "bias" in name)


def test_structured_pruning_of_fsmn_vad_takes_the_memory_filters_along():
    model = FSMNVAD(hidden=32, proj=16, layers=2, input_affine=24, output_affine=16)
    _pruned_units(model)
    project, left = model.layers[0].project.weight, model.layers[0].memory.left.weight
    dead = [c for c in range(16) if not project[c].any()]
    assert len(dead) == 8 and all(not left[c].any() and not model.layers[0].expand.weight[:, c].any() for c in dead)
    assert model.output[1].weight.any(dim=1).all()  # both classes keep their logits


@pytest.mark.parametrize("build", [lambda: RNNoise(cond_size=16, gru_size=24),
                                   lambda: FSMNVAD(hidden=32, proj=16, layers=2, input_affine=24, output_affine=16)])
def test_shrinking_a_pruned_model_removes_parameters_and_keeps_its_outputs(build):
    model = build()
    if hasattr(model, "cmvn"):
        model.cmvn.fit(torch.randn(100, 80) * 3 + 8)
    _pruned_units(model)
    config = {"_target_": f"{type(model).__module__}.{type(model).__name__}", **_constructor_args(model)}
    smaller, smaller_config = shrink_model(model, config)
    assert sum(p.numel() for p in smaller.parameters()) < 0.6 * sum(p.numel() for p in model.parameters())
    assert all(size == group.size // 2 for group in model.channel_groups() for name, size in
               smaller_config["channels"].items() if name == group.name)
    assert largest_difference(model, smaller) < 1e-5
    assert instantiate(smaller_config).state_dict().keys() == smaller.state_dict().keys()


def _constructor_args(model) -> dict:
    if isinstance(model, RNNoise):
        return {"cond_size": model.sizes["conv1"], "gru_size": model.sizes["gru1"]}
    return {"hidden": 32, "proj": 16, "layers": 2, "input_affine": 24, "output_affine": 16}


def test_shrink_command_writes_a_smaller_checkpoint_with_the_same_outputs(tmp_path, capsys):
    task = DenoiseTask(model={"_target_": "speechcompress.models.rnnoise.RNNoise", "cond_size": 16, "gru_size": 16},
                       loss={"_target_": "speechcompress.tasks.losses.RNNoiseLoss"}, optimizer={"lr": 1e-3})
    _pruned_units(task.model)
    save_task(task, tmp_path / "masked.ckpt")
    assert main(["shrink", "--checkpoint", str(tmp_path / "masked.ckpt"), "--out", str(tmp_path / "small.ckpt")]) == 0
    report = capsys.readouterr().out
    assert "gru1" in report and "outputs differ from the masked model by at most" in report
    small = load_task(tmp_path / "small.ckpt")
    assert small.model.gru1.hidden_size == 8 and small.model.conv1.out_channels == 8
    assert largest_difference(task.model, small.model) < 1e-5
    assert (tmp_path / "small.ckpt").stat().st_size < 0.6 * (tmp_path / "masked.ckpt").stat().st_size


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
    with pytest.raises(ConfigError, match="scope=global.*ratios_file"):
        PruneCallback(scope="global", ratios_file="/any/ratios.yaml")
    with pytest.raises(ConfigError, match="no channel groups match .* the model has"):
        PruneCallback(structure="structured", patterns=["lstm*"]).compute_masks(RNNoise(cond_size=8, gru_size=8), 1.0)


def test_group_lasso_value_and_ramp():
    weight = torch.zeros(8, 4, requires_grad=True)
    with torch.no_grad():
        weight[0] = torch.tensor([3.0, 4.0, 0.0, 0.0])
        weight[1, 0] = 2.0
    assert float(block_lasso(weight.detach())) == pytest.approx((9 + 16 + 4) ** 0.5, abs=1e-4)  # one 8×4 block
    model = RNNoise(cond_size=8, gru_size=8)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.conv1.weight[3, 0, 0], model.conv1.bias[3] = 3.0, 4.0  # conv1 channel 3: norm 5
        model.gru2.weight_ih_l0[8 + 1, 2], model.gru2.bias_hh_l0[16 + 1] = 1.0, 1.0  # gru2 unit 1 (z, n): √2
        model.dense_out.weight.fill_(9.0)  # outputs are no unit: not in the penalty
    penalty = unit_lasso(model)
    assert float(penalty) == pytest.approx(5.0 + 2**0.5, abs=1e-4)
    penalty.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)

    class Task:  # the protocol only needs .model and .global_step
        global_step = 50

    Task.model = model
    callback = GroupLassoCallback(weight=0.1, warmup_steps=100)
    term = callback.loss_terms(Task(), {}, None)["group_lasso"]
    assert float(term) == pytest.approx(0.1 * 0.5 * (5.0 + 2**0.5), abs=1e-4)


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
    ("rnnoise_group_lasso", ["compression.schedule=relative", "compression.prune_start=0.3", "compression.prune_stop=0.6"]),
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
    client = MlflowClient(cfg.logger.tracking_uri)
    (logged,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    if experiment == "rnnoise_prune":
        assert logged.data.metrics["compression/density"] == pytest.approx(0.3, abs=0.02)
        assert metrics["size/nonzero"] < metrics["size/params"]
        return
    # group lasso, then half of every group's units pruned, then the model rebuilt without them
    assert "train/group_lasso" in logged.data.metrics
    before, after = logged.data.metrics["shrink/params_before"], logged.data.metrics["size/params"]
    assert after < 0.5 * before and after == metrics["size/params"]
    assert logged.data.metrics["shrink/max_abs_difference"] < 1e-5
    (shipped,) = client.list_artifacts(logged.info.run_id, "checkpoints")
    assert shipped.path.endswith("final-shrunk.ckpt")
    small = load_task(next((tmp_path / "experiments" / "runs" / experiment).glob("*/checkpoints/final-shrunk.ckpt")))
    assert small.model.gru1.hidden_size == 16 and small.model.conv1.out_channels == 12  # half of 32 and of 24
    assert sum(p.numel() for p in small.model.parameters()) == after
