"""Sparsification schedule, block selection, size encoding, and masks through checkpoints and resume."""

import subprocess
import sys

import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate

from speechcompress.checkpoints import read_checkpoint
from speechcompress.compression.blocks import block_mask
from speechcompress.compression.masking import scheduled_density
from speechcompress.compression.size import size_metrics, tensor_sizes
from speechcompress.compression.sparsify import (
    XIPH_GATE_DENSITY,
    SparsifyCallback,
    gate_densities,
)
from speechcompress.config import PROJECT_ROOT, ConfigError
from speechcompress.tasks.base import build_task
from speechcompress.xiph_format import encode, framed_bytes, write_blob

from .conftest import TINY, compose_config, sandbox_overrides


def test_schedule_formula_at_its_edges():
    start, stop, target = 100, 300, 0.2
    assert scheduled_density(0, start, stop, target) == 1.0
    assert scheduled_density(start, start, stop, target) == 1.0
    assert scheduled_density(stop, start, stop, target) == pytest.approx(target)
    assert scheduled_density(10_000, start, stop, target) == pytest.approx(target)
    assert scheduled_density(200, start, stop, target) == pytest.approx(0.5**3 + (1 - 0.5**3) * target)
    assert scheduled_density(200, start, stop, target, exponent=1) == pytest.approx(0.6)


def test_one_density_scales_xiphs_gate_targets_to_exactly_that_mean():
    assert gate_densities(None) == XIPH_GATE_DENSITY
    assert all(d == pytest.approx(1.0) for d in gate_densities(1.0).values())
    assert gate_densities(1 / 3) == pytest.approx(XIPH_GATE_DENSITY)
    for density in (0.1, 0.2, 0.5, 0.9):  # what a run name such as d0.10 promises
        assert sum(gate_densities(density).values()) / 3 == pytest.approx(density, abs=1e-12)
    low, high = gate_densities(0.1), gate_densities(0.5)
    assert all(low[g] < high[g] for g in "rzn") and low["z"] < low["r"] < low["n"]
    with pytest.raises(ConfigError, match="compression.density"):
        gate_densities(0.0)
    # a GRU sparsified at d0.10 keeps 10 % of its 8×4 blocks, to within one block per gate
    gru = torch.nn.GRU(64, 64)
    masks = SparsifyCallback(density=0.1, keep_diagonal=False).compute_masks(gru, alpha=0.0)
    blocks_per_gate = (64 // 8) * (64 // 4)
    for mask in masks.values():
        assert float(mask.float().mean()) == pytest.approx(0.1, abs=1.5 / blocks_per_gate)


def test_block_selection_keeps_the_highest_energy_blocks():
    matrix = torch.zeros(16, 8)  # 2 × 2 blocks of 8 outputs × 4 inputs
    matrix[0:8, 0:4] = 1.0  # energy 32
    matrix[8:16, 4:8] = 2.0  # energy 128
    matrix[0:8, 4:8] = 0.5  # energy 8
    mask = block_mask(matrix, density=0.5)
    assert mask[8:16, 4:8].all() and mask[0:8, 0:4].all()
    assert not mask[0:8, 4:8].any() and not mask[8:16, 0:4].any()
    assert block_mask(matrix, density=0.01).sum() == 32  # never less than one block
    square = torch.randn(16, 16)
    kept = block_mask(square, density=0.1, keep_diagonal=True)
    assert kept.diagonal().all()


class _Deployable(torch.nn.Module):
    """A GRU whose recurrent weights are their diagonal plus one weight, a conv that kept only its
    first tap, a dense int8 layer and a layer that stays float."""

    unquantized_layers = ("head",)

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv1d(4, 8, kernel_size=2)
        self.gru = torch.nn.GRU(8, 16)
        self.dense = torch.nn.Linear(16, 8)
        self.head = torch.nn.Linear(16, 8)
        with torch.no_grad():
            for p in self.parameters():
                p.fill_(1.0)
            self.conv.weight[:, :, 1] = 0.0  # tap 1 pruned: one block in the tap-major (k·in, out) layout
            self.gru.weight_hh_l0.zero_()
            for gate in range(3):
                self.gru.weight_hh_l0[gate * 16 + torch.arange(16), torch.arange(16)] = 0.5
            self.gru.weight_hh_l0[32, 12] = 0.25  # gate n, unit 0, from unit 12: away from the diagonal's blocks


def test_byte_counts_match_xiphs_exporter_by_hand():
    model = _Deployable()
    sizes = {s.name: (s.bytes_sparse, s.bytes_sparse_int8) for s in tensor_sizes(model)}
    # conv: matrix (k·in = 8, out = 8) is 2 blocks, the tap-1 one all zero. Block-sparse: idx
    # [count, offset] 2 ints + one block, smaller than dense (64 weights). fp32 8 + 128; int8 8 + 32
    # + subias and scale (8 floats each). Bias: 8 floats.
    assert sizes["conv.weight"] == (8 + 32 * 4, 8 + 32 + 2 * 32) and sizes["conv.bias"] == (32, 32)
    # GRU input (8 → 3·16 = 48 outputs), all ones: 6 groups of 8 outputs × 2 groups of 4 inputs = 12
    # blocks, always block-sparse: idx (6 + 12) ints = 72 bytes, weights 12 · 32
    assert sizes["gru.weight_ih_l0"] == (72 + 12 * 32 * 4, 72 + 12 * 32 + 2 * 48 * 4)
    # GRU recurrent: the diagonal is a vector of 3·16 floats (192 bytes); what is left is the one
    # weight at unit 12 → gate n unit 0, in 1 block: idx (6 + 1) ints = 28 bytes, weights 32
    assert sizes["gru.weight_hh_l0"] == (192 + 28 + 32 * 4, 192 + 28 + 32 + 2 * 48 * 4)
    assert sizes["gru.bias_ih_l0"] == sizes["gru.bias_hh_l0"] == (48 * 4, 48 * 4)
    # dense 16 → 8, all ones: block-sparse would cost 5 idx ints more than dense. fp32 128 floats;
    # int8 128 bytes + subias + scale
    assert sizes["dense.weight"] == (128 * 4, 128 + 2 * 32)
    assert sizes["head.weight"] == (128 * 4, 128 * 4)  # unquantized: fp32 in the int8 export too
    metrics = size_metrics(tensor_sizes(model))
    assert metrics["size/bytes_sparse"] == sum(fp32 for fp32, _ in sizes.values())
    assert metrics["size/bytes_sparse_int8"] == sum(int8 for _, int8 in sizes.values())
    # the weights file: a 64-byte header per array and data padded to 64 bytes; the conv's fp32
    # arrays (idx 8, weights 128, bias 32 bytes) take 64 + 64, 64 + 128 and 64 + 64
    fp32 = encode(model, quantize=False)
    conv = {name: array for name, array in fp32.arrays.items() if fp32.tensors[name].startswith("conv")}
    assert set(conv) == {"conv_weights_idx", "conv_weights_float", "conv_bias"}
    assert sum(framed_bytes(array) for array in conv.values()) == 128 + 192 + 128
    # the accounting counts the arrays the writer encodes: the file's bytes, to the byte
    assert metrics["size/bytes_blob"] == len(write_blob(fp32.arrays))
    assert metrics["size/bytes_blob_int8"] == len(write_blob(encode(model, quantize=True).arrays))


def _sparse_cfg(root, *extra):
    return compose_config(["+experiment=rnnoise_sparse", *TINY, *sandbox_overrides(root),
                           "compression.sparsify_start=10", "compression.sparsify_stop=40",
                           "compression.sparsify_interval=5", *extra])


def _fit(cfg, max_steps: int, ckpt_path=None, stop_at: int | None = None):
    """A bare Trainer over the real task, data and compression callback; returns (trainer, callback)."""

    class StopAt(pl.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step >= stop_at:
                trainer.should_stop = True  # the run "is killed" here

    pl.seed_everything(cfg.seed, workers=True)
    sparsify = instantiate(cfg.compression.callbacks.sparsify)
    callbacks = [sparsify] + ([StopAt()] if stop_at else [])
    trainer = pl.Trainer(max_steps=max_steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                         num_sanity_val_steps=0, callbacks=callbacks)
    trainer.fit(build_task(cfg), datamodule=instantiate(cfg.data), ckpt_path=ckpt_path)
    return trainer, sparsify


def test_masks_survive_a_checkpoint_and_a_resumed_run_matches_an_uninterrupted_one(tmp_path):
    cfg = _sparse_cfg(tmp_path)
    whole, whole_cb = _fit(cfg, max_steps=60)
    killed, _ = _fit(cfg, max_steps=60, stop_at=25)  # mid-schedule (10 → 40)
    assert killed.global_step == 25
    checkpoint = tmp_path / "killed.ckpt"
    killed.save_checkpoint(checkpoint)
    saved = read_checkpoint(checkpoint)["callbacks"]
    (state,) = [v for k, v in saved.items() if "SparsifyCallback" in k]
    assert state["masks"] and state["last_update"] == 25
    resumed, resumed_cb = _fit(cfg, max_steps=60, ckpt_path=str(checkpoint))
    assert resumed.global_step == 60
    assert resumed_cb.masks.keys() == whole_cb.masks.keys()
    for name, mask in whole_cb.masks.items():
        assert torch.equal(mask, resumed_cb.masks[name]), name
    assert resumed_cb.masked_density() == pytest.approx(whole_cb.masked_density())
    gru = resumed.lightning_module.model.gru1.weight_hh_l0
    density = float((gru != 0).float().mean())
    h = gru.shape[1]
    expected = sum(XIPH_GATE_DENSITY.values()) / 3
    assert density == pytest.approx(expected, abs=0.02 + h / gru.numel())  # + the kept diagonal


def test_a_run_too_short_for_the_schedule_is_refused_and_leaves_nothing_behind(tmp_path):
    from mlflow.tracking import MlflowClient

    store = f"sqlite:///{tmp_path / 'experiments' / 'mlflow.db'}"
    client = MlflowClient(store)  # a store that already holds a run
    earlier = client.create_run(client.create_experiment("rnnoise_sparse")).info.run_id
    overrides = [o for o in TINY if not o.startswith("trainer.max_steps")]
    result = subprocess.run(
        [sys.executable, "train.py", "+experiment=rnnoise_sparse", *overrides, *sandbox_overrides(tmp_path),
         "trainer.max_steps=150"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    message = result.stderr
    assert "150 optimizer steps" in message and "from step 200 to 1000" in message
    assert "compression.sparsify_start=200" in message and "compression.sparsify_stop=1000" in message
    assert "trainer.max_steps=1000" in message and "compression.schedule=relative" in message
    assert "Traceback" not in message
    assert "Epoch 0" not in result.stdout + result.stderr  # no training step was taken
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert [r.info.run_id for r in runs] == [earlier]  # the store is as it was
    assert sorted(p.name for p in (tmp_path / "experiments").iterdir()) == ["mlflow.db"]  # no run folder


def test_keys_nested_under_callbacks_are_named_as_typed(tmp_path):
    cfg = compose_config(["+experiment=rnnoise_group_lasso", *TINY, *sandbox_overrides(tmp_path),
                          "compression.callbacks.prune.prune_stop=500"])  # set inside the callback's own node
    from speechcompress.train import run

    with pytest.raises(ConfigError, match=r"compression\.callbacks\.prune\.prune_stop=500 must come after "
                                          r"compression\.prune_start=600"):
        run(cfg)
    assert not (tmp_path / "experiments" / "runs").exists()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(cfg.logger.tracking_uri)
    assert not client.search_runs([e.experiment_id for e in client.search_experiments()])  # and no MLflow run


def test_relative_schedule_follows_the_run_length():
    callback = SparsifyCallback(sparsify_start=0.25, sparsify_stop=0.75, schedule="relative")
    callback.resolve_schedule(400)
    assert (callback.start, callback.stop) == (100, 300)


def test_linear_and_conv_layers_join_by_name_pattern():
    from speechcompress.models.rnnoise import RNNoise

    model = RNNoise(cond_size=16, gru_size=16)
    plain = SparsifyCallback(density=0.5)
    assert all(name.startswith("gru") for name in plain.targets(model))
    extended = SparsifyCallback(density=0.5, layer_patterns=["conv2.weight", "dense_*.weight"], layer_density=0.25)
    masks = extended.compute_masks(model, alpha=0.0)
    assert {"conv2.weight", "dense_out.weight"} <= set(masks) and "conv1.weight" not in masks
    assert masks["conv2.weight"].shape == model.conv2.weight.shape
    assert float(masks["conv2.weight"].float().mean()) == pytest.approx(0.25, abs=0.05)
    with pytest.raises(ConfigError, match="nothing to sparsify"):
        SparsifyCallback(layer_patterns=["nope*"]).targets(torch.nn.Linear(4, 4))


def test_a_callback_that_is_not_a_compression_callback_is_refused_by_name(tmp_path):
    cfg = compose_config(["+experiment=rnnoise", *TINY, *sandbox_overrides(tmp_path),
                          "+compression.callbacks.lr._target_=pytorch_lightning.callbacks.LearningRateMonitor"])
    from speechcompress.train import run

    with pytest.raises(ConfigError, match=r"compression\.callbacks\.lr: .*LearningRateMonitor is not a .*CompressionCallback"):
        run(cfg)
    assert not (tmp_path / "experiments" / "runs").exists()
