"""Per-tensor pruning sensitivity: prune one tensor alone at several ratios, measure the validation
loss, and pick for each tensor the largest ratio whose loss stays within a tolerance."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from speechcompress.compression.prune import magnitude_mask

LossFn = Callable[[nn.Module, dict], torch.Tensor]


@torch.no_grad()
def mean_loss(model: nn.Module, batches: Sequence[dict], loss_fn: LossFn) -> float:
    return float(sum(float(loss_fn(model, b)) for b in batches) / max(len(batches), 1))


@torch.no_grad()
def sensitivity_analysis(model: nn.Module, batches: Sequence[dict], loss_fn: LossFn,
                         ratios: Sequence[float] = (0.25, 0.5, 0.75, 0.9)) -> list[dict]:
    """Rows of {tensor, ratio, loss, increase}; ratio 0 is the unpruned baseline. Weights are restored."""
    model.eval()
    baseline = mean_loss(model, batches, loss_fn)
    rows = []
    params = {name: p for name, p in model.named_parameters() if p.dim() >= 2}
    for name, param in tqdm(params.items(), desc="sensitivity", unit="tensor"):
        original = param.detach().clone()
        rows.append({"tensor": name, "ratio": 0.0, "loss": baseline, "increase": 0.0})
        for ratio in ratios:
            param.mul_(magnitude_mask(original, 1.0 - ratio))
            loss = mean_loss(model, batches, loss_fn)
            rows.append({"tensor": name, "ratio": float(ratio), "loss": loss, "increase": loss / baseline - 1.0})
            param.copy_(original)
    return rows


def pick_ratios(rows: list[dict], tolerance: float) -> dict[str, float]:
    """Per tensor, the largest ratio whose relative loss increase is at most `tolerance`."""
    picked: dict[str, float] = {}
    for row in rows:
        if row["increase"] <= tolerance:
            picked[row["tensor"]] = max(picked.get(row["tensor"], 0.0), row["ratio"])
    return picked


def write_table(rows: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["tensor", "ratio", "loss", "increase"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def plot(rows: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 5))
    for name in dict.fromkeys(r["tensor"] for r in rows):
        mine = [r for r in rows if r["tensor"] == name]
        axis.plot([r["ratio"] for r in mine], [100 * r["increase"] for r in mine], marker="o", label=name)
    axis.set_xlabel("fraction of the tensor pruned (magnitude)")
    axis.set_ylabel("validation loss increase (%)")
    axis.set_yscale("symlog")
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path
