"""The data modules: :class:`FieldDataModule` over pdekit HDF5 files and :class:`ProblemDataModule` for
solvers that learn an analytic problem.

A LightningDataModule over pdekit HDF5 files: lazy reads, a seeded split by sample, difficulty
mixes across files, normalization statistics of the training split, and data loaders that resume
mid-epoch exactly.
"""
from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Sampler, Subset

from pdekit.files.dataset import DatasetFormatError, LazyH5, batch_grids, grid_of, is_timeseries, level_names, levels_in, open_dataset
from pdekit.errors import ConfigError, InvalidCoefficientError
from pdekit.problems import get
from pdekit.sources import SOURCE_FAMILIES, draw_source

SYSTEM_FIELDS = ("a", "f", "bc_type", "bc_value")  # what rebuilds a Poisson sample's linear system


class FieldSamples(LazyH5, Dataset):
    """Samples of one file as model inputs/targets: ``x`` ``(C_in, *grid)`` float32 with ``log_inputs``
    log10-transformed, ``y`` ``(C_out, *grid)``, ``mask``, ``level`` (code in ``levels``), ``file``,
    ``index``; with ``system=True`` also the arrays that rebuild the sample's linear system."""

    def __init__(self, path, inputs, target, log_inputs=(), levels=(), file_id=0, system=False):
        self.path, self.inputs, self.target = str(path), tuple(inputs), tuple(target)
        self.log_inputs, self.file_id, self.system = tuple(log_inputs), file_id, system
        with open_dataset(self.path) as h5:
            self.length = h5["u"].shape[0]
            missing = [k for k in self.inputs + self.target if k not in h5]
            if missing:
                raise DatasetFormatError(f"{self.path} has no field(s) {missing} (it holds {sorted(h5)})")
            self.level_codes = _level_codes(h5, levels)
            grid = grid_of(h5)
        # each sample carries its file's grid: files of different levels differ in spacing (a
        # Neumann face moves the boundary by half a cell), and a batch mixes files
        self.spacing = torch.tensor(grid.spacing, dtype=torch.float64)
        self.origin = torch.tensor(grid.origin, dtype=torch.float64)

    def __len__(self):
        return self.length

    def _field(self, key, i):
        data = np.asarray(self.h5[key][i], dtype=np.float64)
        if key not in self.log_inputs:
            return data
        self._check_positive(key, data, i)
        return np.log10(data)

    def _check_positive(self, key, data, index):
        bad = ~(data > 0)  # NaN too
        if bad.any():
            where = tuple(int(c[0]) for c in np.nonzero(bad))
            raise InvalidCoefficientError(f"{self.path}: non-positive {key} at sample {index} (value {data[where]:g} "
                                          f"at {where}); {key} is read as log10 (data.init_args.log_inputs)")

    def check_log_inputs(self, block: int = 64) -> None:
        """Scan every sample's log-transformed fields before training, so a negative coefficient is
        named (file, sample) before any step or checkpoint (blocks of samples: bounded memory)."""
        for key in self.log_inputs:
            dataset = self.h5[key]
            for start in range(0, self.length, block):
                values = np.asarray(dataset[start:start + block])
                bad = ~(values.reshape(len(values), -1) > 0).all(axis=1)
                if bad.any():
                    i = int(np.flatnonzero(bad)[0])
                    self._check_positive(key, values[i], start + i)

    def __getitem__(self, i):
        item = {"x": torch.as_tensor(np.stack([self._field(k, i) for k in self.inputs]), dtype=torch.float32),
                "y": torch.as_tensor(np.stack([self._field(k, i) for k in self.target]), dtype=torch.float32),
                "mask": torch.as_tensor(np.asarray(self.h5["mask"][i], dtype=bool)),
                "level": int(self.level_codes[i]), "file": self.file_id, "index": i}
        if self.system:
            item.update({k: torch.as_tensor(np.asarray(self.h5[k][i])) for k in SYSTEM_FIELDS})
            item.update(spacing=self.spacing, origin=self.origin)
        return item



def _level_codes(h5, levels) -> np.ndarray:
    names = level_names(h5)
    return np.array([list(levels).index(n) for n in names]) if levels else np.zeros(len(names), int)


class TimeSeriesWindows(LazyH5, Dataset):
    """Windows of trajectories for next-step learning.  Item ``i`` of sample ``s`` starts at
    time ``k``: ``x`` = the ``history`` snapshots up to ``k`` (channels: history × components),
    ``y`` = the next ``unroll`` snapshots ``(unroll, components, *grid)``.  Item ``i`` is window
    ``i % windows`` of sample ``i // windows``, so a split by sample selects whole trajectories."""

    def __init__(self, path, fields, history=1, unroll=1, levels=(), file_id=0):
        self.path, self.fields, self.history, self.unroll = str(path), tuple(fields), history, unroll
        self.file_id = file_id
        with open_dataset(self.path) as h5:
            missing = [k for k in self.fields if k not in h5]
            if missing:
                raise DatasetFormatError(f"{self.path} has no field(s) {missing} (fields: {list(h5.attrs['fields'])})")
            self.samples, self.steps = h5[self.fields[0]].shape[:2]
            self.dim = int(h5.attrs["dim"])
            self.grid_shape = h5[self.fields[0]].shape[-self.dim:]
            self.components = sum(1 if h5[k].ndim == 2 + self.dim else h5[k].shape[2] for k in self.fields)
            self.has_mask = "mask" in h5
            self.level_codes = _level_codes(h5, levels)
        self.windows = self.steps - history - unroll + 1
        if self.windows < 1:
            raise DatasetFormatError(f"{self.path}: {self.steps} snapshots are too few for history {history} + "
                                     f"unroll {unroll}")

    def __len__(self):
        return self.samples * self.windows

    def snapshots(self, sample: int, start: int, stop: int) -> torch.Tensor:
        """``(stop - start, components, *grid)`` float32."""
        parts = []
        for key in self.fields:
            data = np.asarray(self.h5[key][sample, start:stop], dtype=np.float32)
            parts.append(data[:, None] if data.ndim == 1 + self.dim else data)
        return torch.as_tensor(np.concatenate(parts, axis=1))

    def mask(self, sample: int) -> torch.Tensor:
        if not self.has_mask:
            return torch.ones(self.grid_shape, dtype=torch.bool)
        return torch.as_tensor(np.asarray(self.h5["mask"][sample], dtype=bool))

    def __getitem__(self, i):
        sample, start = divmod(i, self.windows)
        window = self.snapshots(sample, start, start + self.history + self.unroll)
        return {"x": window[: self.history].flatten(0, 1), "y": window[self.history:], "mask": self.mask(sample),
                "level": int(self.level_codes[sample]), "file": self.file_id, "index": sample}



def split_indices(n: int, fractions, seed: int) -> list[np.ndarray]:
    """A seeded permutation of ``range(n)`` cut into train/val/test parts (each sorted)."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(round(fractions[1] * n)) if n > 2 else 0
    n_test = int(round(fractions[2] * n)) if n > 2 else 0
    n_train = n - n_val - n_test
    if n_train < 1:
        raise ConfigError(f"a file with {n} samples leaves no training samples for split {list(fractions)}")
    cuts = np.split(order, [n_train, n_train + n_val])
    return [np.sort(c) for c in cuts]


def mix_counts(available, proportions) -> list[int]:
    """How many training samples to take from each file so they appear in the given proportions
    without repeating any: the largest total that every file can supply."""
    p = np.asarray(proportions, float)
    if len(p) != len(available) or np.any(p < 0) or p.sum() <= 0:
        raise ConfigError(f"proportions {list(proportions)} must be non-negative, one per file, not all zero")
    p = p / p.sum()
    total = min(n / q for n, q in zip(available, p) if q > 0)
    return [int(math.floor(q * total + 1e-9)) for q in p]


def _check_settings(files, proportions, split, batch_size, num_workers, history, unroll, normalization_samples):
    """Refuse settings that cannot work, naming the config key (ConfigError: one line from the CLI)."""
    finite = lambda values: all(isinstance(v, (int, float)) and math.isfinite(v) and v >= 0 for v in values)  # noqa: E731
    problems = [
        (bool(files), "data.init_args.files is empty: give at least one dataset"),
        (len(split) == 3 and finite(split) and abs(sum(split) - 1) <= 1e-6,
         f"data.init_args.split {list(split)} must be three non-negative fractions (train, val, test) summing to 1"),
        (proportions is None or (len(proportions) == len(files) and finite(proportions)
                                 and abs(sum(proportions) - 1) <= 1e-6),
         f"data.init_args.proportions {proportions} must be one non-negative share per file, summing to 1"),
        (batch_size >= 1, f"data.init_args.batch_size must be >= 1, got {batch_size}"),
        (num_workers >= 0, f"data.init_args.num_workers must be >= 0, got {num_workers}"),
        (history >= 1 and unroll >= 1, f"data.init_args.history and unroll must be >= 1, got {history}, {unroll}"),
        (normalization_samples >= 1, f"data.init_args.normalization_samples must be >= 1, got {normalization_samples}"),
    ]
    for ok, message in problems:
        if not ok:
            raise ConfigError(message)


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
    """Train/val/test data from one or more pdekit files (all Poisson, or all time series).

    Args:
        files: dataset paths (HDF5 written by ``datagen``).
        proportions: share of each file in the training set (e.g. ``[0.7, 0.3]``); default: all
            training samples of every file.  Validation and test always use every file's part.
        counts: instead of proportions, exactly this many training samples from each file (drawn
            with ``seed`` from its training part), e.g. a generation budget split across levels.
        inputs, target: field names of the input and target channels (default: Poisson
            ``[a, f, mask]`` → ``[u]``; time series: every field of the file, for both).
        log_inputs: inputs given to the model as log10 (default ``[a]`` for Poisson).
        history, unroll: time series only: snapshots the model sees, and steps it is trained to
            predict by feeding its own predictions back.
        split: train/val/test fractions of each file, by sample, fixed by ``seed``.
        system: Poisson only: also give training batches the arrays that rebuild each sample's
            linear system (``a``, ``f``, ``bc_type``, ``bc_value``; validation/test always have them).
        normalization_samples: training items used for the per-channel mean/std.
        sources: Poisson with ``system`` only: draw each training sample's source anew from these
            families of :mod:`pdekit.sources` (``fourier``, ``constant``, ``smooth``, ``gaussians``,
            ``piecewise``; one chosen uniformly per sample and epoch, fixed by ``seed``, the epoch
            and the sample), keeping its geometry, coefficient and boundary conditions.  Their
            solutions are unknown, so only label-free training can use it (the training labels
            become NaN); validation and test keep the files' sources and labels.
        source_modes: the ``fourier`` family's highest mode per axis.
    """

    def __init__(self, files: list[str], proportions: list[float] | None = None, counts: list[int] | None = None,
                 inputs: list[str] | None = None, target: list[str] | None = None,
                 log_inputs: list[str] | None = None, history: int = 1, unroll: int = 1,
                 split: list[float] = (0.8, 0.1, 0.1), batch_size: int = 16, num_workers: int = 0, seed: int = 0,
                 system: bool = False, normalization_samples: int = 256, sources: list[str] | None = None,
                 source_modes: int = 8):
        super().__init__()
        _check_settings(files, proportions, split, batch_size, num_workers, history, unroll, normalization_samples)
        self.files = [str(f) for f in files]
        self.proportions = None if proportions is None else list(proportions)
        if counts is not None:
            if proportions is not None:
                raise ConfigError("give data.init_args.proportions or data.init_args.counts, not both")
            if len(counts) != len(files) or any(not isinstance(c, int) or isinstance(c, bool) or c < 0 for c in counts) \
                    or sum(counts) < 1:
                raise ConfigError(f"data.init_args.counts {list(counts)} must be one integer >= 0 per file, "
                                  "not all zero")
        self.counts = None if counts is None else list(counts)
        self.history, self.unroll = history, unroll
        self.split, self.batch_size, self.num_workers = list(split), batch_size, num_workers
        self.seed, self.normalization_samples, self.system = seed, normalization_samples, system
        kinds = set()
        for path in self.files:
            with open_dataset(path) as h5:
                kinds.add((str(h5.attrs["pde"]), int(h5.attrs["dim"])))
                timeseries = is_timeseries(h5)
                file_fields = [str(f) for f in h5.attrs["fields"]] if timeseries else None
        if len(kinds) != 1:
            raise DatasetFormatError(f"files mix PDEs or dimensions {sorted(kinds)}; give files of one kind")
        self.pde, self.dim = kinds.pop()
        self.timeseries = timeseries
        default_in, default_out = (file_fields, file_fields) if timeseries else (["a", "f", "mask"], ["u"])
        self.inputs = list(inputs) if inputs is not None else default_in
        self.target = list(target) if target is not None else default_out
        self.log_inputs = list(log_inputs) if log_inputs is not None else ([] if timeseries else ["a"])
        if timeseries and self.inputs != self.target:
            raise ConfigError("next-step learning predicts its own inputs: inputs and target must be the same fields")
        self.levels = levels_in(self.files)
        self.sources, self.source_modes = _check_sources(sources, source_modes, self)
        self.stats = None
        self._sets = {}
        self._train_sampler = None
        self._first = self._samples(self.files[0], 0, system=False)

    def _samples(self, path, file_id, system):
        if self.timeseries:
            return TimeSeriesWindows(path, self.inputs, self.history, self.unroll, self.levels, file_id)
        return FieldSamples(path, self.inputs, self.target, self.log_inputs, self.levels, file_id, system=system)

    @property
    def in_channels(self) -> int:
        return self.history * self._first.components if self.timeseries else len(self.inputs)

    @property
    def out_channels(self) -> int:
        return self._first.components if self.timeseries else len(self.target)

    def signature(self) -> dict:
        """What a model trained on this data expects of other data (checked by ``pdekit evaluate``)."""
        return {"pde": self.pde, "dim": self.dim, "timeseries": self.timeseries, "inputs": self.inputs,
                "target": self.target, "log_inputs": self.log_inputs, "history": self.history,
                "unroll": self.unroll, "levels": self.levels}

    def grid(self):
        """The first file's Poisson grid (None for time series).  Files may differ in spacing:
        batches carry each sample's grid (:func:`pdekit.files.dataset.batch_grids`)."""
        if self.timeseries:
            return None
        with open_dataset(self.files[0]) as h5:
            return grid_of(h5)

    def setup(self, stage=None):
        if self._sets:
            return
        parts = {"train": [], "val": [], "test": []}
        train_sizes = []
        for file_id, path in enumerate(self.files):
            with open_dataset(path) as h5:
                n = h5["level"].shape[0]
            splits = split_indices(n, self.split, self.seed + file_id)
            train_sizes.append(len(splits[0]))
            for name, idx in zip(parts, splits):
                parts[name].append((path, file_id, idx))
        if self.proportions is not None or self.counts is not None:
            counts = mix_counts(train_sizes, self.proportions) if self.counts is None else self.counts
            short = [(path, c, n) for path, c, n in zip(self.files, counts, train_sizes) if c > n]
            if short:
                path, c, n = short[0]
                raise ConfigError(f"data.init_args.counts asks {c} training samples of {path}, which has {n} "
                                  f"(split {self.split})")
            rng = np.random.default_rng(self.seed)
            parts["train"] = [(p, i, np.sort(rng.choice(idx, size=c, replace=False)))
                              for (p, i, idx), c in zip(parts["train"], counts)]
        for name, chosen in parts.items():
            subsets = []
            for path, file_id, idx in chosen:
                if not len(idx):
                    continue
                samples = self._samples(path, file_id, system=self.system or name != "train")
                if name == "train" and not self.timeseries:
                    samples.check_log_inputs()
                if self.timeseries:  # every window of the chosen trajectories
                    idx = (idx[:, None] * samples.windows + np.arange(samples.windows)).ravel()
                subsets.append(Subset(samples, idx.tolist()))
            self._sets[name] = ConcatDataset(subsets) if subsets else None
        if self._sets["train"] is None:
            raise ConfigError("no training samples (check data.init_args.proportions and split)")
        self.stats = self._statistics(self._sets["train"])

    def _statistics(self, train) -> dict:
        take = np.random.default_rng(self.seed).permutation(len(train))[: self.normalization_samples]
        xs = torch.stack([train[int(i)]["x"] for i in take]).double()
        ys = torch.stack([train[int(i)]["y"] for i in take]).double()
        if self.timeseries:
            ys = ys.flatten(0, 1)  # (items * unroll, components, *grid)
        reduce = lambda t: (t.transpose(0, 1).flatten(1).mean(1), t.transpose(0, 1).flatten(1).std(1))  # noqa: E731
        (xm, xs_), (ym, ys_) = reduce(xs), reduce(ys)
        # a channel constant over the training set (a = 1 on an easy level) carries no scale: dividing
        # by its ~0 std would blow up any other value met later (a model trained on easy data, tested
        # on hard), so it is only centred
        scale = lambda std, mean: torch.where(std > 1e-6 * (mean.abs() + 1), std, torch.ones_like(std))  # noqa: E731
        return {"x_mean": xm.float(), "x_std": scale(xs_, xm).float(),
                "y_mean": ym.float(), "y_std": scale(ys_, ym).float()}

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
            if self.sources:
                batch = self._with_drawn_sources(batch, self.trainer.current_epoch)
        return batch

    def _with_drawn_sources(self, batch: dict, epoch: int) -> dict:
        """The batch with each sample's ``f`` drawn from ``sources`` (zero off its active nodes),
        the ``f`` input channel following it and the labels NaN (unknown for the new sources)."""
        grids = batch_grids(batch)
        grids = grids if isinstance(grids, list) else [grids] * len(batch["f"])
        drawn = []
        for grid, mask, file_id, index in zip(grids, batch["mask"], batch["file"], batch["index"]):
            rng = np.random.default_rng([self.seed, epoch, int(file_id), int(index)])
            family = self.sources[int(rng.integers(len(self.sources)))]
            coords = grid.coordinates()
            lower = [c.min() for c in coords]
            extent = max(float(c.max() - lo) for c, lo in zip(coords, lower)) or 1.0
            unit = tuple((c - lo) / extent for c, lo in zip(coords, lower))  # the grid in [0, 1]^d
            drawn.append(draw_source(family, rng, unit, self.source_modes) * mask.numpy())
        batch = dict(batch)
        batch["f"] = torch.as_tensor(np.stack(drawn), dtype=batch["f"].dtype)
        if "f" in self.inputs:
            batch["x"] = batch["x"].clone()
            batch["x"][:, self.inputs.index("f")] = batch["f"].to(batch["x"].dtype)
        batch["y"] = torch.full_like(batch["y"], float("nan"))
        return batch

    def train_dataloader(self):
        return self._loader("train", shuffle=True)

    def val_dataloader(self):
        return self._loader("val", shuffle=False)

    def test_dataloader(self):
        return self._loader("test", shuffle=False)

    def predict_dataloader(self):
        return self._loader("test", shuffle=False)


def _check_sources(sources, modes, data) -> tuple[list[str] | None, int]:
    if sources is None:
        return None, modes
    if isinstance(sources, str) or not sources or any(family not in SOURCE_FAMILIES for family in sources):
        raise ConfigError(f"data.init_args.sources must be a list of {', '.join(SOURCE_FAMILIES)}, got {sources!r}")
    if data.timeseries or data.pde != "poisson" or not data.system:
        raise ConfigError("data.init_args.sources draws Poisson sources for label-free training: it needs Poisson "
                          "files and data.init_args.system: true")
    if "f" in data.log_inputs:
        raise ConfigError("data.init_args.sources: f cannot be a log input (drawn sources change sign)")
    if isinstance(modes, bool) or not isinstance(modes, int) or not 1 <= modes <= 1024:
        raise ConfigError(f"data.init_args.source_modes must be an integer in 1..1024, got {modes!r}")
    return list(sources), modes


# -- analytic problems -----------------------------------------------------------------------
# A data module for solvers that learn from an analytic problem instead of a dataset file
# (GP-HM, PINNs): it names the problem (pdekit.problems), optionally brings pointwise labels
# (a `datagen feynman-kac` file), and paces training: an epoch is `steps_per_epoch` optimisation
# steps, each fed a dummy batch (the solver owns its points).
class ProblemDataModule(L.LightningDataModule):
    """Args:
        problem: a registered problem name (``pdekit.problems.PROBLEMS``).
        steps_per_epoch: optimisation steps per epoch (progress, logging and checkpoints follow epochs).
        labels: an HDF5 file of Feynman–Kac labels of the same problem (``datagen feynman-kac``).
        max_labels: use only the first this many labels (None: all).
    """

    def __init__(self, problem: str, steps_per_epoch: int = 100, labels: str | None = None,
                 max_labels: int | None = None):
        super().__init__()
        self.problem = get(problem)
        if not (isinstance(steps_per_epoch, int) and steps_per_epoch >= 1):
            raise ConfigError(f"data.init_args.steps_per_epoch must be an integer >= 1, got {steps_per_epoch}")
        if max_labels is not None and not (isinstance(max_labels, int) and max_labels >= 1):
            raise ConfigError(f"data.init_args.max_labels must be an integer >= 1, got {max_labels}")
        self.steps_per_epoch = steps_per_epoch
        self.labels = labels
        self.label_arrays = read_labels(labels, self.problem.name, max_labels) if labels is not None else None
        # what pdekit fit links into every model: the problem's dimension (points in, one value out)
        self.dim, self.in_channels, self.out_channels = self.problem.dim, self.problem.dim, 1

    def train_dataloader(self):
        return DataLoader(torch.arange(self.steps_per_epoch), batch_size=1)

    def signature(self) -> dict:
        return {"problem": self.problem.name, "dim": self.problem.dim, "timeseries": False,
                "labels": None if self.label_arrays is None else int(len(self.label_arrays[0]))}


def read_labels(path, problem: str, max_labels: int | None = None):
    """(points, value, stderr) of a ``datagen feynman-kac`` file, checked to be of ``problem``."""
    from pdekit.files.dataset import LABELS_PDE, DatasetFormatError, open_dataset

    if not Path(path).is_file():
        raise ConfigError(f"data.init_args.labels: no such file {path}")
    try:
        with open_dataset(path) as h5:
            if h5.attrs["pde"] != LABELS_PDE:
                raise ConfigError(f"data.init_args.labels: {path} holds pde={h5.attrs['pde']!r} data, "
                                  "not Feynman–Kac labels")
            if h5.attrs["problem"] != problem:
                raise ConfigError(f"data.init_args.labels: {path} labels problem {h5.attrs['problem']!r}, "
                                  f"not {problem!r}")
            arrays = tuple(np.asarray(h5[key][slice(max_labels)], np.float64) for key in ("points", "value", "stderr"))
    except DatasetFormatError as err:
        raise ConfigError(f"data.init_args.labels: {err}") from None
    if not all(np.isfinite(a).all() for a in arrays):
        raise ConfigError(f"data.init_args.labels: {path} holds non-finite labels")
    return arrays
