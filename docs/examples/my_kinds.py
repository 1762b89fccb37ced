"""A dataset kind of your own for ``datagen``: one :class:`datagen.kinds.DatasetKind` subclass, named in
the environment (``DATAGEN_KINDS=my_kinds:ManufacturedPoisson``); ``datagen`` then has a
``manufactured`` command with the common options (``--n --seed --out --workers --shard --resume
--overwrite``), its progress bar, atomic output and ``datagen merge``.

    DATAGEN_KINDS=my_kinds:ManufacturedPoisson datagen manufactured --n 8 --resolution 33 --out m.h5

Each sample is −Δu = f on the unit square with a known discrete solution u = A⁻¹f: a random
combination of sine modes, f = A u exactly (the discrete operator's own right-hand side).
"""
import numpy as np
import torch

from datagen.kinds import DatasetKind, UsageError, stack


class ManufacturedPoisson(DatasetKind):
    name = "manufactured_poisson"  # stored in every file (config `generator`)
    command = "manufactured"
    pde = "poisson"
    version = "manufactured-1"  # change it whenever what a seed produces changes
    help = "Poisson samples with manufactured discrete solutions (a user-defined kind)"
    has_levels = False

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--resolution", type=int, default=33, help="nodes per axis (default 33)")
        parser.add_argument("--modes", type=int, default=4, help="sine modes per axis (default 4)")

    def options(self, args, level):
        if args.resolution < 8 or args.modes < 1:
            raise UsageError(f"need --resolution >= 8 and --modes >= 1, got {args.resolution}, {args.modes}")
        return {}

    def config(self, args, level, resolution, extra):
        return {"generator": self.name, "pde": self.pde, "level": "manufactured", "n": args.n, "seed": args.seed,
                "resolution": args.resolution, "modes": args.modes, "dim": 2}

    def describe(self, config):
        return f"manufactured {config['resolution']}^2"

    def generate(self, config, indices, seeds, progress=None, parts=None):
        from pdekit import DiffusionOperator, Grid

        n, modes = config["resolution"], config["modes"]
        op = DiffusionOperator(Grid.box((n, n)))
        x, y = op.grid.coordinates()
        samples = []
        for seed in seeds:
            c = np.random.default_rng(seed).standard_normal((modes, modes))
            u = sum(c[i, j] * np.sin((i + 1) * np.pi * x) * np.sin((j + 1) * np.pi * y)
                    for i in range(modes) for j in range(modes))
            f = op(torch.as_tensor(u)).numpy()  # exact discrete right-hand side: u solves A u = f to round-off
            samples.append({"a": np.ones_like(u), "f": f, "u": u, "mask": np.asarray(op.mask[0], bool),
                            "bc_type": op.bc_type[0], "bc_value": op.bc_value[0], "solver_iterations": 0,
                            "solver_residual": 0.0, "solver_backward_error": 0.0, "solve_seconds": 0.0})
        return samples

    def write(self, out, samples, config):
        from pdekit import Grid
        from pdekit.files.dataset import write_poisson

        keys = ("a", "f", "u", "mask", "bc_type", "bc_value", "level", "seed", "solver_iterations", "solver_residual",
                "solver_backward_error", "solve_seconds", "sample_index")
        arrays = {key: stack(samples, key) for key in keys}
        n = config["resolution"]
        return [write_poisson(out, arrays, grid=Grid.box((n, n)), config=config, generator_version=self.version)]

    def estimate_bytes(self, config, samples):
        cells = config["resolution"] ** 2
        return samples * 50 * cells, 2 * samples * 50 * cells + 100 * cells
