"""The DataModule every task uses: three dataset factories, one collate, loaders from config."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from speechcompress.data.mixing import pad_collate
from speechcompress.test_splits import REAL, UNSEEN

DatasetFactory = Callable[..., Dataset]


def collate_with(inputs: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]],
                 items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """`pad_collate` of the items, each with `inputs(item)` added (in the loader's worker processes)."""
    return pad_collate([{**item, **inputs(item)} for item in items])


class AudioDataModule(pl.LightningDataModule):
    """Builds train/val/test datasets from factories called with `sample_rate=` (Hydra partials).

    Items are dicts of `noisy`, `clean` (waveforms) and `vad` (10 ms labels); batches add `length`.
    Optional `test_unseen` and `test_real` factories add test splits (noises and voices training
    never drew; real recordings of speakers training never heard); tasks then log `test_unseen/*`
    and `test_real/*` beside `test/*`. A factory that returns None (a corpus that was not fetched)
    drops its split.
    """

    def __init__(self, sample_rate: int, train: DatasetFactory, val: DatasetFactory, test: DatasetFactory,
                 test_unseen: DatasetFactory | None = None, test_real: DatasetFactory | None = None,
                 batch_size: int = 32, eval_batch_size: int = 8, num_workers: int = 0,
                 shuffle_train: bool = False, real: Mapping | None = None) -> None:
        """shuffle_train: shuffle file order (folders); on-the-fly mixers draw their own items.
        real: the real-recordings corpus settings (`data.real`), which the split factories are
        given by interpolation; kept here as `self.real` for the record."""
        super().__init__()
        self.sample_rate = sample_rate
        self.factories = {"train": train, "val": val, "test": test}
        for split, factory in ((UNSEEN, test_unseen), (REAL, test_real)):
            if factory is not None:
                self.factories[split] = factory
        self.batch_size, self.eval_batch_size, self.num_workers = batch_size, eval_batch_size, num_workers
        self.shuffle_train = shuffle_train
        self.real = real
        self.datasets: dict[str, Dataset | None] = {}
        # a model's per-item front-end for training (e.g. `XiphRNNoise.training_inputs`), run in the
        # DataLoader's workers, its outputs added to each item: set by whoever pairs data and model
        self.training_inputs: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None

    def prepare_data(self) -> None:
        # Runs on one process before setup: generates any synthetic cache once for all ranks.
        for split in self.factories:
            self.dataset(split)

    def dataset(self, split: str) -> Dataset | None:
        if split not in self.datasets:
            self.datasets[split] = self.factories[split](sample_rate=self.sample_rate)
        return self.datasets[split]

    def peek(self, split: str, count: int) -> list[dict]:
        """Up to `count` items of a split (for statistics such as CMVN), leaving its training draws untouched."""
        dataset = self.dataset(split)
        draws = getattr(dataset, "draws", None)
        calls = draws.calls if draws is not None else 0
        items = [dataset[i] for i in range(min(count, len(dataset)))]
        if draws is not None:
            draws.calls = calls  # the training stream starts where it would have without the peek
        return items

    def _loader(self, split: str, batch_size: int, train: bool = False) -> DataLoader:
        collate = functools.partial(collate_with, self.training_inputs) if train and self.training_inputs else pad_collate
        return DataLoader(self.dataset(split), batch_size=batch_size, shuffle=train and self.shuffle_train,
                          drop_last=train, num_workers=self.num_workers, collate_fn=collate,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        draws = getattr(self.dataset("train"), "draws", None)
        if draws is not None and self.trainer is not None:
            # Continue the stream of fresh draws where a resumed run left off (exact with num_workers=0).
            draws.calls = self.trainer.global_step * self.trainer.accumulate_grad_batches * self.batch_size
        return self._loader("train", self.batch_size, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_batch_size)

    @property
    def test_splits(self) -> tuple[str, ...]:
        """The splits `test_dataloader` serves, in its order: test, then test_unseen and test_real
        where configured and available."""
        return tuple(split for split in self.factories if split.startswith("test") and self.dataset(split) is not None)

    def split_loader(self, split: str) -> DataLoader:
        """The evaluation loader of one split."""
        return self._loader(split, self.eval_batch_size)

    def test_dataloader(self) -> DataLoader | list[DataLoader]:
        loaders = [self.split_loader(split) for split in self.test_splits]
        return loaders[0] if len(loaders) == 1 else loaders
