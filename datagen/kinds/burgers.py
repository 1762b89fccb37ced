"""``datagen burgers``: 1-D viscous Burgers trajectories at a difficulty level (:mod:`datagen.burgers`)."""
from __future__ import annotations

import sys

import numpy as np

from datagen.kinds import (DatasetKind, add_time_series_options, register, shared, snapshot_count, stack,
                           time_series_options)


class Burgers(DatasetKind):
    name = command = pde = "burgers"
    version = "burgers-2"
    help = "1-D viscous Burgers trajectories at a difficulty level"
    resolution_help = "grid points (default: the level's)"
    batched = True

    def level_classes(self):
        from datagen.burgers import LEVELS, BurgersLevel

        return BurgersLevel, LEVELS

    @classmethod
    def add_arguments(cls, parser):
        add_time_series_options(parser, batch=32)

    def options(self, args, level) -> dict:
        return time_series_options(args)

    def generate(self, config, indices, seeds, progress=None, parts=None):
        from datagen.burgers import burgers_samples

        return burgers_samples(self.level(config), config["resolution"], seeds, names=list(indices),
                               device=config.get("device") or "cpu")

    def write(self, out, samples, config):
        from pdekit.files.dataset import write_timeseries

        arrays = {key: stack(samples, key) for key in samples[0] if key != "t"}
        arrays["t"] = shared(samples, "t")
        n = config["resolution"]
        attrs = {"domain_size": [2 * np.pi], "origin": [0.0], "boundary": "periodic", "equation": "u_t + u u_x = nu u_xx"}
        return [write_timeseries(out, arrays, pde=config["pde"], fields=["u"], spacing=(2 * np.pi / n,),
                                 dt=config["level_spec"]["interval"], config=config, generator_version=self.version,
                                 attrs=attrs)]

    def estimate_bytes(self, config, samples):
        n, batch, steps = int(config["resolution"]), self.batch_size(config), snapshot_count(config)
        per_sample = 4 * steps * n
        return samples * per_sample, 2 * samples * per_sample + 8 * 32 * n * batch + 8 * steps * n * batch

    def after_write(self, out) -> None:
        """Trajectories the generator flagged under-resolved (``under_resolved``): say so."""
        import h5py

        with h5py.File(out, "r") as h5:
            if "under_resolved" not in h5:
                return
            flags = np.asarray(h5["under_resolved"][()], bool)
            if flags.any():
                tail = float(np.max(h5["spectral_tail"][()]))
                print(f"datagen: warning: {int(flags.sum())} of {len(flags)} trajectories are under-resolved (energy "
                      f"fraction {tail:.1e} in the top third of wavenumbers: Gibbs oscillations at the fronts); raise "
                      "--resolution (the level's default resolves them). Flag: the 'under_resolved' field",
                      file=sys.stderr)

    def print_levels(self, args) -> None:
        from datagen.burgers import LEVELS

        print("\nburgers (1-D, periodic; levels along viscosity)")
        print(f"{'level':<9} {'nu':>8} {'grid':>6}  varies")
        for name, lv in LEVELS.items():
            print(f"{name:<9} {lv.viscosity:>8g} {lv.resolution:>6}  {lv.description}")


register(Burgers)
