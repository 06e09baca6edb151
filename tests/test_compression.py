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
from speechcompress.compression.size import encoded_bytes, size_metrics, tensor_sizes
from speechcompress.compression.sparsify import (
    XIPH_GATE_DENSITY,
    SparsifyCallback,
    gate_densities,
)
from speechcompress.config import PROJECT_ROOT, ConfigError
from speechcompress.train import build_task

from .conftest import TINY, compose_config, sandbox_overrides


def test_schedule_formula_at_its_edges():
    start, stop, target = 100, 300, 0.2
    assert scheduled_density(0, start, stop, target) == 1.0
    assert scheduled_density(start, start, stop, target) == 1.0
    assert scheduled_density(stop, start, stop, target) == pytest.approx(target)
    assert scheduled_density(10_000, start, stop, target) == pytest.approx(target)
    assert scheduled_density(200, start, stop, target) == pytest.approx(0.5**3 + (1 - 0.5**3) * target)
    assert scheduled_density(200, start, stop, target, exponent=1) == pytest.approx(0.6)


def test_one_density_scales_xiphs_gate_targets():
    assert gate_densities(None) == XIPH_GATE_DENSITY
    assert all(d == pytest.approx(1.0) for d in gate_densities(1.0).values())
    assert gate_densities(1 / 3) == pytest.approx(XIPH_GATE_DENSITY)
    low, high = gate_densities(0.1), gate_densities(0.5)
    assert all(low[g] < high[g] for g in "rzn") and low["z"] < low["r"] < low["n"]
    with pytest.raises(ConfigError, match="compression.density"):
        gate_densities(0.0)


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


def test_size_encoder_byte_count_by_hand():
    weight = torch.zeros(16, 8)
    weight[0:8, 0:4] = 1.0
    weight[8:16, 0:4] = 1.0
    weight[8:16, 4] = 1.0  # one column of the last block is enough to keep it
    # 2 groups of 8 rows, 3 kept blocks: index 4·(2 + 3) = 20 bytes
    # fp32: 20 + 3·32·4 = 404 (< 512 dense); int8: 20 + 3·32 + 16 scales·4 = 180 (< 128 + 64 dense)
    assert encoded_bytes(weight) == (404, 180)
    assert encoded_bytes(torch.ones(16, 8)) == (512, 192)  # dense is cheaper once every block is kept
    assert encoded_bytes(torch.ones(7)) == (28, 28)  # biases stay fp32
    gru = torch.nn.GRU(8, 8)
    metrics = size_metrics(tensor_sizes(gru))
    assert metrics["size/bytes_dense_fp32_gru"] == 4 * sum(p.numel() for p in gru.parameters())


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


def test_a_run_too_short_for_the_schedule_stops_before_training(tmp_path):
    overrides = [o for o in TINY if not o.startswith("trainer.max_steps")]
    result = subprocess.run(
        [sys.executable, "train.py", "+experiment=rnnoise_sparse", *overrides, *sandbox_overrides(tmp_path),
         "trainer.max_steps=150"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    message = result.stderr
    assert "150 optimizer steps" in message and "from step 200 to 1000" in message
    assert "trainer.max_steps=1000" in message and "compression.schedule=relative" in message
    assert "Traceback" not in message
    assert "Epoch 0" not in result.stdout + result.stderr  # no training step was taken


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
