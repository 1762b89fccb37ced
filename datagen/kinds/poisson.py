"""``datagen poisson``: Poisson problems −∇·(a∇u) = f at a difficulty level (:mod:`datagen.poisson`)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from datagen.kinds import DatasetKind, UsageError, parse_omega, register, shared, stack

SOLVER_CHOICES = ("auto", "ssor-pcg", "cg", "amg-pcg")  # datagen.poisson.solve_sample's (here: --help imports no solver)
POISSON_KEYS = ("a", "f", "u", "mask", "bc_type", "bc_value", "level", "seed", "solver_iterations",
                "solver_residual", "solver_backward_error", "solve_seconds", "sample_index")


class Poisson(DatasetKind):
    name = command = pde = "poisson"
    version = "poisson-3"
    help = "Poisson problems -div(a grad u) = f at a difficulty level"

    def level_classes(self):
        from datagen.poisson import LEVELS, Level

        return Level, LEVELS

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--dim", type=int, default=2, help="2 or 3 (default 2)")
        parser.add_argument("--solver", choices=SOLVER_CHOICES, default="auto",
                            help="auto: sparse LU where fastest, else AMG-PCG (default); ssor-pcg: CG preconditioned "
                                 "by SSOR with relaxation --omega; cg: plain CG; amg-pcg: AMG-preconditioned CG (the "
                                 "iterative solvers make the recorded solve_seconds grow with difficulty)")
        parser.add_argument("--omega", default=None,
                            help="ssor-pcg: the relaxation in (0, 2), or auto (default): an online bandit learns it "
                                 "across the run from each solve's iterations (recorded per sample as `omega`)")

    def options(self, args, level) -> dict:
        if args.dim not in (2, 3):
            raise UsageError(f"--dim must be 2 or 3, got {args.dim}")
        extra = {"dim": args.dim}
        # --solver ssor-pcg --omega auto|VALUE as entries (none for the default solver: default runs keep their config)
        if args.solver != "ssor-pcg":
            if args.omega is not None:
                raise UsageError("--omega sets SSOR's relaxation: it needs --solver ssor-pcg")
            return extra if args.solver == "auto" else {**extra, "solver": args.solver}
        omega = parse_omega(args.omega)
        if omega == "auto" and args.workers > 1:
            raise UsageError("--omega auto learns from one solve to the next: run it with --workers 1 "
                             "(or one shard per process)")
        return {**extra, "solver": args.solver, "omega": omega}

    def resource_hint(self, args, config) -> str:
        return f"--n {args.n} at --resolution {config['resolution']} --dim {config['dim']}"

    def print_levels(self, args) -> None:
        from tqdm import tqdm

        from datagen.poisson import LEVELS, sample_problem
        from pdekit import DiffusionOperator
        from pdekit.krylov import cg, pcg
        from pdekit.precond import AMG

        print(f"poisson levels (typical iterations to 1e-8, measured now at {args.resolution}^2 over 2 seeds)")
        print(f"{'level':<9} {'CG':>7} {'AMG-PCG':>8}  varies")
        bar = tqdm(total=2 * len(LEVELS), desc="measuring", unit="solve", leave=False, disable=None)  # a terminal only
        for name, level in LEVELS.items():
            its = []
            for seed in range(2):
                grid, a, mask, bc, f = sample_problem(name, args.resolution, 2, seed)
                op = DiffusionOperator(grid, a, mask, bc)
                b = op.rhs(f)
                its.append((int(cg(op, b, tol=1e-8, maxiter=100000).iterations),
                            int(pcg(op, b, AMG(op), tol=1e-8).iterations)))
                bar.update(1)
            mean = np.mean(its, axis=0)
            bar.write(f"{name:<9} {mean[0]:>7.0f} {mean[1]:>8.1f}  {level.description}", file=sys.stdout)
            sys.stdout.flush()  # each row as soon as it is measured, also into a pipe
        bar.close()

    def generate(self, config, indices, seeds, progress=None, parts=None):
        from datagen.poisson import solve_sample

        samples = []
        for k, seed in zip(indices, seeds):
            solver = config.get("solver", "auto")
            chooser = _chooser_before(config, k, parts) if config.get("omega") == "auto" else None
            omega = chooser.choose() if chooser else config.get("omega")
            out = solve_sample(self.level(config), config["resolution"], config["dim"], seed, solver=solver,
                               omega=omega)
            if chooser:
                chooser.update(omega, out["solver_iterations"])
                out["omega_chooser"] = json.dumps(chooser.state_dict())
            grid = out.pop("grid")
            out.update(spacing=np.asarray(grid.spacing), origin=np.asarray(grid.origin))
            samples.append(out)
        return samples

    def write(self, out, samples, config):
        from pdekit import Grid
        from pdekit.files.dataset import write_poisson

        arrays = {key: stack(samples, key) for key in POISSON_KEYS + (("omega",) if "omega" in samples[0] else ())}
        grid = Grid(arrays["u"].shape[1:], spacing=tuple(shared(samples, "spacing")),
                    origin=tuple(shared(samples, "origin")))
        return [write_poisson(out, arrays, grid=grid, config=config, generator_version=self.version)]

    def estimate_bytes(self, config, samples):
        # writing the file holds every sample twice (the parts read back and the stacked arrays), plus one
        # job's working set (operator, AMG hierarchy, Krylov vectors, in float64)
        n, dim = int(config["resolution"]), int(config["dim"])
        cells = n**dim
        per_sample = 25 * cells + 9 * (n + 2) ** dim  # a, f, u float64, mask; padded bc_type, bc_value
        return samples * per_sample, 2 * samples * per_sample + 400 * cells


def _chooser_before(config, k: int, parts):
    """The ω chooser as it was after this run's previous sample (stored in that sample's part, so
    a resumed run learns exactly as an uninterrupted one): a fresh one for the first sample."""
    from pdekit.relaxation import TsallisINF, from_state_dict

    count = int(config.get("shard", "0/1").split("/")[1])
    previous = k - count  # samples run in index order; a shard takes every count-th
    if previous < 0:
        return TsallisINF(seed=config["seed"])
    if parts is None:
        raise RuntimeError("omega auto learns across the run: generate it through datagen.runner")
    with np.load(Path(parts) / f"sample_{previous:08d}.npz") as data:
        return from_state_dict(json.loads(str(data["omega_chooser"])))


register(Poisson)
