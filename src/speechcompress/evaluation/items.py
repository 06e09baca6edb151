"""Counting every evaluation item exactly once, on one process or many.

Under DDP, Lightning's DistributedSampler pads the split so that every rank gets as many items as
the others: it repeats the first few items at the end. The metrics therefore keep one row per item
with the item's dataset index, gathered from every rank at `compute`, and keep the first row of
each index: the 1-process figure, whatever the number of processes.
"""

from __future__ import annotations

import torch


def first_of_each_item(index: torch.Tensor) -> torch.Tensor:
    """Positions of the first row of each distinct item `index`, in increasing index order."""
    order = torch.argsort(index, stable=True)
    ordered = index[order]
    first = torch.ones_like(ordered, dtype=torch.bool)
    first[1:] = ordered[1:] != ordered[:-1]
    return order[first]
