"""A LightningDataModule over pdekit HDF5 files: lazy reads, a seeded split by sample, difficulty
mixes across files, normalization statistics of the training split, and data loaders that resume
mid-epoch exactly.
"""
from __future__ import annotations

import math

import h5py
import lightning as L
import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Sampler, Subset

from pdekit.data import DatasetFormatError, grid_of, open_poisson

SYSTEM_FIELDS = ("a", "f", "bc_type", "bc_value")  # what rebuilds a Poisson sample's linear system


class FieldSamples(Dataset):
    """Samples of one file as model inputs/targets: ``x`` (C_in, *grid) float32 with ``log_inputs``
    log10-transformed, ``y`` (C_out, *grid), ``mask``, ``level`` (code in ``levels``), ``file``,
    ``index``; with ``system=True`` also the arrays that rebuild the sample's linear system."""

    def __init__(self, path, inputs, target, log_inputs=(), levels=(), file_id=0, system=False):
        self.path, self.inputs, self.target = str(path), tuple(inputs), tuple(target)
        self.log_inputs, self.file_id, self.system = tuple(log_inputs), file_id, system
        with open_poisson(self.path) as h5:
            self.length = h5["u"].shape[0]
            missing = [k for k in self.inputs + self.target if k not in h5]
            if missing:
                raise DatasetFormatError(f"{self.path} has no field(s) {missing} (it holds {sorted(h5)})")
            names = [v.decode() if isinstance(v, bytes) else str(v) for v in h5["level"][()]]
        self.level_codes = np.array([list(levels).index(n) for n in names]) if levels else np.zeros(self.length, int)
        self._h5 = None

    def __len__(self):
        return self.length

    def _field(self, key, i):
        data = np.asarray(self._h5[key][i], dtype=np.float64)
        return np.log10(data) if key in self.log_inputs else data

    def __getitem__(self, i):
        if self._h5 is None:  # opened lazily: each DataLoader worker gets its own handle
            self._h5 = h5py.File(self.path, "r")
        item = {"x": torch.as_tensor(np.stack([self._field(k, i) for k in self.inputs]), dtype=torch.float32),
                "y": torch.as_tensor(np.stack([self._field(k, i) for k in self.target]), dtype=torch.float32),
                "mask": torch.as_tensor(np.asarray(self._h5["mask"][i], dtype=bool)),
                "level": int(self.level_codes[i]), "file": self.file_id, "index": i}
        if self.system:
            item.update({k: torch.as_tensor(np.asarray(self._h5[k][i])) for k in SYSTEM_FIELDS})
        return item

    def __getstate__(self):
        return {**self.__dict__, "_h5": None}


def split_indices(n: int, fractions, seed: int) -> list[np.ndarray]:
    """A seeded permutation of ``range(n)`` cut into train/val/test parts (each sorted)."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(round(fractions[1] * n)) if n > 2 else 0
    n_test = int(round(fractions[2] * n)) if n > 2 else 0
    n_train = n - n_val - n_test
    if n_train < 1:
        raise ValueError(f"a file with {n} samples leaves no training samples for split {list(fractions)}")
    cuts = np.split(order, [n_train, n_train + n_val])
    return [np.sort(c) for c in cuts]


def mix_counts(available, proportions) -> list[int]:
    """How many training samples to take from each file so they appear in the given proportions
    without repeating any: the largest total that every file can supply."""
    p = np.asarray(proportions, float)
    if len(p) != len(available) or np.any(p < 0) or p.sum() <= 0:
        raise ValueError(f"proportions {list(proportions)} must be non-negative, one per file, not all zero")
    p = p / p.sum()
    total = min(n / q for n, q in zip(available, p) if q > 0)
    return [int(math.floor(q * total + 1e-9)) for q in p]


class EpochSampler(Sampler):
    """Seeded shuffle per epoch (seed + epoch), sharded across DDP ranks, that knows how many
    batches the trainer has consumed so a checkpoint can resume the epoch where it stopped."""

    def __init__(self, n: int, seed: int, batch_size: int, shuffle: bool = True, rank: int = 0, world: int = 1):
        self.n, self.seed, self.batch_size, self.shuffle = n, seed, batch_size, shuffle
        self.rank, self.world = rank, world
        self.epoch, self.consumed = 0, 0

    def order(self) -> np.ndarray:
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        else:
            order = np.arange(self.n)
        per_rank = -(-self.n // self.world)
        order = np.resize(order, per_rank * self.world)  # pad by wrapping so ranks get equal counts
        return order[self.rank::self.world]

    def __iter__(self):
        return iter(self.order()[self.consumed * self.batch_size:].tolist())

    def __len__(self):  # the full epoch, also when resuming inside it (Lightning counts batches itself)
        return -(-self.n // self.world)

    def set_epoch(self, epoch: int):  # Lightning calls this at every epoch start
        if epoch != self.epoch:
            self.epoch, self.consumed = epoch, 0


class ResumableLoader(DataLoader):
    """A DataLoader whose position in the epoch is part of Lightning's checkpoint: Lightning saves
    and restores ``state_dict`` of loaders that have one."""

    def state_dict(self):
        return {"epoch": self.sampler.epoch, "consumed": self.sampler.consumed}

    def load_state_dict(self, state):
        self.sampler.epoch, self.sampler.consumed = int(state["epoch"]), int(state["consumed"])


class FieldDataModule(L.LightningDataModule):
    """Train/val/test data from one or more pdekit files.

    Args:
        files: dataset paths (HDF5 written by ``datagen``).
        proportions: share of each file in the training set (e.g. ``[0.7, 0.3]``); default: all
            training samples of every file.  Validation and test always use every file's part.
        inputs, target: field names that form the input and target channels.
        log_inputs: inputs given to the model as log10 (e.g. a coefficient spanning decades).
        split: train/val/test fractions of each file, by sample, fixed by ``seed``.
        normalization_samples: training samples used for the per-channel mean/std.
    """

    def __init__(self, files: list[str], proportions: list[float] | None = None,
                 inputs: list[str] = ("a", "f", "mask"), target: list[str] = ("u",),
                 log_inputs: list[str] = ("a",), split: list[float] = (0.8, 0.1, 0.1), batch_size: int = 16,
                 num_workers: int = 0, seed: int = 0, normalization_samples: int = 256):
        super().__init__()
        if not files:
            raise ValueError("data.files is empty: give at least one dataset")
        if len(split) != 3 or any(s < 0 for s in split) or abs(sum(split) - 1) > 1e-6:
            raise ValueError(f"split {list(split)} must be three non-negative fractions summing to 1")
        self.files = [str(f) for f in files]
        self.proportions = None if proportions is None else list(proportions)
        self.inputs, self.target, self.log_inputs = list(inputs), list(target), list(log_inputs)
        self.split, self.batch_size, self.num_workers = list(split), batch_size, num_workers
        self.seed, self.normalization_samples = seed, normalization_samples
        levels, dims = [], set()
        for path in self.files:
            with open_poisson(path) as h5:
                dims.add(int(h5.attrs["dim"]))
                for v in h5["level"][()]:
                    name = v.decode() if isinstance(v, bytes) else str(v)
                    if name not in levels:
                        levels.append(name)
        if len(dims) != 1:
            raise DatasetFormatError(f"files mix spatial dimensions {sorted(dims)}")
        self.dim = dims.pop()
        self.levels = levels
        self.stats = None
        self._sets = {}
        self._train_sampler = None

    @property
    def in_channels(self) -> int:
        return len(self.inputs)

    @property
    def out_channels(self) -> int:
        return len(self.target)

    def signature(self) -> dict:
        """What a model trained on this data expects of other data (checked by ``pdekit evaluate``)."""
        with open_poisson(self.files[0]) as h5:
            pde = str(h5.attrs["pde"])
        return {"pde": pde, "dim": self.dim, "inputs": self.inputs, "target": self.target,
                "log_inputs": self.log_inputs, "levels": self.levels}

    def grid(self):
        with open_poisson(self.files[0]) as h5:
            return grid_of(h5)

    def setup(self, stage=None):
        if self._sets:
            return
        parts = {"train": [], "val": [], "test": []}
        train_sizes = []
        for file_id, path in enumerate(self.files):
            splits = split_indices(FieldSamples(path, self.inputs, self.target).length, self.split,
                                   self.seed + file_id)
            train_sizes.append(len(splits[0]))
            for name, idx in zip(parts, splits):
                parts[name].append((path, file_id, idx))
        if self.proportions is not None:
            counts = mix_counts(train_sizes, self.proportions)
            rng = np.random.default_rng(self.seed)
            parts["train"] = [(p, i, np.sort(rng.choice(idx, size=c, replace=False)))
                              for (p, i, idx), c in zip(parts["train"], counts)]
        for name, chosen in parts.items():
            subsets = [Subset(FieldSamples(p, self.inputs, self.target, self.log_inputs, self.levels, i,
                                           system=name != "train"), idx.tolist()) for p, i, idx in chosen if len(idx)]
            self._sets[name] = ConcatDataset(subsets) if subsets else None
        if self._sets["train"] is None:
            raise ValueError("no training samples (check proportions and split)")
        self.stats = self._statistics(self._sets["train"])

    def _statistics(self, train) -> dict:
        take = np.random.default_rng(self.seed).permutation(len(train))[: self.normalization_samples]
        xs = torch.stack([train[int(i)]["x"] for i in take]).double()
        ys = torch.stack([train[int(i)]["y"] for i in take]).double()
        reduce = lambda t: (t.transpose(0, 1).flatten(1).mean(1), t.transpose(0, 1).flatten(1).std(1))  # noqa: E731
        (xm, xs_), (ym, ys_) = reduce(xs), reduce(ys)
        return {"x_mean": xm.float(), "x_std": xs_.clamp_min(1e-12).float(),
                "y_mean": ym.float(), "y_std": ys_.clamp_min(1e-12).float()}

    def _loader(self, name, shuffle):
        dataset = self._sets.get(name)
        if dataset is None:
            return []
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        sampler = EpochSampler(len(dataset), self.seed, self.batch_size, shuffle, rank, world)
        if name == "train":
            self._train_sampler = sampler
        return ResumableLoader(dataset, sampler=sampler, batch_size=self.batch_size, num_workers=self.num_workers,
                               persistent_workers=self.num_workers > 0)

    def on_before_batch_transfer(self, batch, dataloader_idx):
        # called once per batch the trainer actually consumes (the fetcher's look-ahead is not
        # transferred yet), which is the position a mid-epoch checkpoint must record
        if self.trainer is not None and self.trainer.training and self._train_sampler is not None:
            self._train_sampler.consumed += 1
        return batch

    def train_dataloader(self):
        return self._loader("train", shuffle=True)

    def val_dataloader(self):
        return self._loader("val", shuffle=False)

    def test_dataloader(self):
        return self._loader("test", shuffle=False)

    def predict_dataloader(self):
        return self._loader("test", shuffle=False)
