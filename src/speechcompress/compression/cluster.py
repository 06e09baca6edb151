"""Weight clustering (Tan & Wang's clustering quantization; Han et al.'s weight sharing): each
weight tensor keeps 2^bits shared values, found by k-means over its non-zero weights; zeros stay
zero, so clustering composes with pruning and sparsification.

- `cluster_weights(model, bits)`: post-training, in place.
- `ClusterCallback`: clusters at `cluster_start`, then fine-tunes with the centroids shared: after
  every optimizer step each weight becomes the mean of its cluster, so a centroid moves by the mean
  of its members' updates and the assignments stay as they were.
- `clustered_bytes`: the encoded size of one tensor: the codebook (2^bits fp32 centroids), the
  indices of its non-zeros packed at `bits` bits each, and, when it has zeros, a bitmap of which
  positions are non-zero (one bit per weight).

Clustered are the tensors with two or more dimensions (matrices, convolution kernels, GRU gate
matrices); biases and normalisation parameters stay fp32.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytorch_lightning as pl
import torch
from scipy.cluster.vq import kmeans2
from torch import nn

from speechcompress.compression.callback import CompressionCallback
from speechcompress.config import ConfigError

NO_CLUSTER = -1  # the index of a zero weight


def clustered_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    return {name: p for name, p in model.named_parameters() if p.dim() >= 2}


def kmeans_1d(values: torch.Tensor, k: int, iterations: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
    """Centroids [k] (ascending) and each value's cluster: scipy's k-means (`kmeans2`, Lloyd's
    algorithm) from centroids spread evenly between the smallest and largest value (Han et al. found
    this linear start the best for weights: it keeps clusters for the rare large ones). A cluster
    left empty is moved onto the value farthest from its centroid and k-means run again, so every
    one of the k clusters ends with members."""
    data = values.detach().double().flatten().cpu().numpy()
    if data.size < k or np.unique(data).size < k:
        raise ValueError(f"cannot form {k} clusters from {np.unique(data).size} distinct values")
    centroids = np.linspace(data.min(), data.max(), k)
    for _ in range(k):  # each round gives one empty cluster members
        with warnings.catch_warnings():  # "One of the clusters is empty": handled below
            warnings.simplefilter("ignore", UserWarning)
            centroids, labels = kmeans2(data, centroids, iter=iterations, minit="matrix", missing="warn")
        empty = np.setdiff1d(np.arange(k), labels)
        if empty.size == 0:
            break
        centroids[empty[0]] = data[np.abs(data - centroids[labels]).argmax()]
    order = np.argsort(centroids, kind="stable")
    return torch.from_numpy(centroids[order]), torch.from_numpy(np.argsort(order)[labels])


def cluster_tensor(weight: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(centroids [2^bits], indices shaped like `weight`, NO_CLUSTER where it is zero); a tensor
    with no more distinct non-zero values than clusters keeps them as they are."""
    nonzero = weight != 0
    values = weight[nonzero]
    k = min(2**bits, int(values.unique().numel()))
    indices = torch.full(weight.shape, NO_CLUSTER, dtype=torch.long, device=weight.device)
    if k == 0:
        return weight.new_zeros(0), indices
    centroids, assignment = kmeans_1d(values.cpu(), k)
    indices[nonzero] = assignment.to(weight.device)
    return centroids.to(weight.dtype).to(weight.device), indices


@torch.no_grad()
def share_centroids(weight: torch.Tensor, indices: torch.Tensor) -> None:
    """Every weight becomes the mean of its cluster's current values; zeros (NO_CLUSTER) stay zero."""
    members = indices != NO_CLUSTER
    clusters = int(indices.max()) + 1 if members.any() else 0
    flat_index, flat_weight = indices[members], weight[members].double()
    sums = torch.zeros(clusters, dtype=torch.float64, device=weight.device).index_add_(0, flat_index, flat_weight)
    counts = torch.bincount(flat_index, minlength=clusters).clamp_min(1)
    shared = (sums / counts).to(weight.dtype)
    weight.zero_()
    weight[members] = shared[flat_index]


@torch.no_grad()
def cluster_weights(model: nn.Module, bits: int) -> dict[str, torch.Tensor]:
    """Clusters every tensor of two or more dimensions in place; returns their indices."""
    assignments = {}
    for name, weight in clustered_parameters(model).items():
        _, indices = cluster_tensor(weight, bits)
        share_centroids(weight, indices)
        assignments[name] = indices.cpu()
    return assignments


def clustered_bytes(numel: int, nonzeros: int, bits: int) -> int:
    """Codebook (2^bits fp32 values) + the non-zeros' indices at `bits` bits + a one-bit-per-weight
    bitmap of the non-zero positions when there are zeros."""
    bitmap = math.ceil(numel / 8) if nonzeros < numel else 0
    return 4 * 2**bits + math.ceil(nonzeros * bits / 8) + bitmap


def clustered_size(model: nn.Module, bits: int) -> int:
    """`size/bytes_clustered`: clustered tensors encoded as `clustered_bytes`, every other
    parameter (biases, norms) dense fp32."""
    clustered = clustered_parameters(model)
    total = 0
    for name, p in model.named_parameters():
        if name in clustered:
            total += clustered_bytes(p.numel(), int(torch.count_nonzero(p)), bits)
        else:
            total += 4 * p.numel()
    return total


class ClusterCallback(CompressionCallback):
    """Clusters the model's weight tensors at step `cluster_start`, then keeps each weight at its
    cluster's mean after every optimizer step until the end of training (see the module docstring).
    The assignments live in the callback's state, so a resumed run continues with the same clusters."""

    final_model_only = True  # the run is judged by its final, clustered model

    def __init__(self, bits: int = 4, cluster_start: int = 0, keys: dict[str, str] | None = None) -> None:
        super().__init__(keys)
        if not 1 <= int(bits) <= 8:
            raise ConfigError(f"compression.bits must be between 1 and 8 (2 to 256 shared values per tensor), got {bits}")
        self.bits, self.cluster_start = int(bits), int(cluster_start)
        self.assignments: dict[str, torch.Tensor] = {}

    def check(self, pl_module: pl.LightningModule, total_steps: int) -> None:
        if not 0 <= self.cluster_start < total_steps:
            raise ConfigError(f"{self.key('cluster_start')}={self.cluster_start} must be a step inside the run (0 … {total_steps - 1}): "
                              f"the weights are clustered there and fine-tuned with shared values after it")

    def figures(self, model: nn.Module) -> dict[str, float]:
        """What the end of a run logs for this callback: the clustered model's encoded bytes."""
        return {"size/bytes_clustered": float(clustered_size(model, self.bits))}

    def _share(self, model: nn.Module) -> None:
        params = clustered_parameters(model)
        for name, indices in self.assignments.items():
            share_centroids(params[name], indices.to(params[name].device))

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx) -> None:
        if not self.assignments and trainer.global_step >= self.cluster_start:
            self.assignments = cluster_weights(pl_module.model, self.bits)
        elif self.assignments:
            self._share(pl_module.model)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.assignments:
            self._share(pl_module.model)

    def state_dict(self) -> dict:
        return {"assignments": {name: a.clone() for name, a in self.assignments.items()}}

    def load_state_dict(self, state_dict: dict) -> None:
        self.assignments = {name: a.long() for name, a in state_dict["assignments"].items()}
