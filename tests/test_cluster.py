"""Weight clustering: k-means values, zeros kept, the encoded size, and fine-tuning with shared values."""

import pytest
import torch
from mlflow.tracking import MlflowClient

from speechcompress.compression.cluster import (
    NO_CLUSTER,
    ClusterCallback,
    cluster_tensor,
    cluster_weights,
    clustered_bytes,
    clustered_size,
    kmeans_1d,
)
from speechcompress.config import ConfigError
from speechcompress.models.rnnoise import RNNoise

from .conftest import TINY, compose_config, sandbox_overrides


def test_kmeans_finds_well_separated_groups():
    values = torch.cat([torch.full((50,), -1.0), torch.full((30,), 0.5), torch.full((20,), 2.0)])
    values = values + 0.01 * torch.randn(100, generator=torch.Generator().manual_seed(0))
    centroids, assignment = kmeans_1d(values, 3)
    assert torch.allclose(centroids, torch.tensor([-1.0, 0.5, 2.0], dtype=torch.float64), atol=0.01)
    assert torch.bincount(assignment).tolist() == [50, 30, 20]


@pytest.mark.parametrize("bits", [2, 4, 5])
def test_every_tensor_keeps_exactly_two_to_the_bits_nonzero_values_and_its_zeros(bits):
    model = RNNoise(cond_size=16, gru_size=24)
    with torch.no_grad():
        model.gru1.weight_hh_l0[:, ::3] = 0  # a pruned tensor: its zeros must stay
    zeros_before = {name: p == 0 for name, p in model.named_parameters()}
    cluster_weights(model, bits)
    for name, p in model.named_parameters():
        if p.dim() < 2:
            continue
        assert (p == 0).equal(zeros_before[name]), name
        assert p[p != 0].unique().numel() == 2**bits, name


def test_clustering_costs_little_accuracy_at_four_bits():
    weight = torch.randn(64, 48, generator=torch.Generator().manual_seed(1))
    centroids, indices = cluster_tensor(weight, 4)
    rebuilt = centroids[indices]
    assert (indices != NO_CLUSTER).all()
    # 16 levels over a Gaussian: the error is a small fraction of the weights' spread
    assert (rebuilt - weight).pow(2).mean() < 0.02 * weight.pow(2).mean()


def test_clustered_bytes_by_hand():
    # 100 weights, 60 non-zero, 4 bits: 16 centroids × 4 bytes + ceil(60·4/8) = 30 index bytes
    # + a bitmap of ceil(100/8) = 13 bytes
    assert clustered_bytes(100, 60, 4) == 64 + 30 + 13
    # dense: no bitmap; 3 bits × 10 weights = 30 bits → 4 bytes
    assert clustered_bytes(10, 10, 3) == 32 + 4
    layer = torch.nn.Linear(10, 4)
    with torch.no_grad():
        layer.weight[0] = 0  # 30 of 40 non-zero
    assert clustered_size(layer, 2) == (16 + 8 + 5) + 4 * 4  # codebook, indices, bitmap; fp32 bias


def test_a_run_outside_the_schedule_is_refused():
    callback = ClusterCallback(bits=4, cluster_start=500)
    with pytest.raises(ConfigError, match="cluster_start=500 must be a step inside the run"):
        callback.check(None, total_steps=300)
    with pytest.raises(ConfigError, match="between 1 and 8"):
        ClusterCallback(bits=12)


def test_fine_tuning_with_shared_values_trains_and_logs_the_clustered_size(tmp_path):
    from speechcompress.train import run

    cfg = compose_config(["+experiment=rnnoise", *TINY, *sandbox_overrides(tmp_path), "compression=cluster",
                          "compression.bits=3", "compression.cluster_start=150"])
    metrics = run(cfg)
    (final,) = (tmp_path / "experiments" / "runs" / "rnnoise").glob("*/checkpoints/final.ckpt")
    state = torch.load(final, weights_only=True)["state_dict"]
    for name, tensor in state.items():
        if name.startswith("model.") and tensor.dim() >= 2 and tensor.is_floating_point():
            assert tensor[tensor != 0].unique().numel() <= 2**3, name
    assert metrics["test/si_sdr"] > metrics["test/si_sdr_noisy"] + 1.0  # it still enhances
    assert 0 < metrics["size/bytes_clustered"] < 0.2 * metrics["size/bytes_dense_fp32"]
    client = MlflowClient(cfg.logger.tracking_uri)
    (logged,) = client.search_runs([client.get_experiment_by_name("rnnoise").experiment_id])
    assert logged.data.metrics["size/bytes_clustered"] == metrics["size/bytes_clustered"]



def test_the_cluster_command_writes_a_clustered_checkpoint_that_still_enhances(tiny_run, tmp_path, capsys):
    from pathlib import Path

    from speechcompress.checkpoints import load_task
    from speechcompress.cli import main

    cfg, _ = tiny_run
    (best,) = (Path(cfg.paths.experiments_dir) / "runs" / "rnnoise").glob("*/checkpoints/best-*.ckpt")
    assert main(["cluster", "--checkpoint", str(best), "--bits", "4", "--out", str(tmp_path / "c.ckpt")]) == 0
    assert "at most 16 distinct non-zero values" in capsys.readouterr().out
    clustered, original = load_task(tmp_path / "c.ckpt").model, load_task(best).model
    for name, p in clustered.named_parameters():
        if p.dim() >= 2:
            assert p[p != 0].unique().numel() == 16, name
    from hydra.utils import instantiate

    noisy = instantiate(cfg.data.test)(sample_rate=16000)[0]["noisy"][None]  # speech in noise
    with torch.no_grad():
        a, b = clustered(noisy).enhanced, original(noisy).enhanced
    # 16 shared values per tensor: close to the original model's output, not equal
    assert 0 < (a - b).pow(2).mean() < 0.1 * b.pow(2).mean()
