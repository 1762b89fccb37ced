"""``datagen feynman-kac``: Monte Carlo Feynman–Kac labels u(x) ± standard error at random points of an
analytic problem (:mod:`datagen.feynman_kac`), for FK-PINNs."""
from __future__ import annotations

from datagen.kinds import DatasetKind, UsageError, check_device, register, stack


class FeynmanKac(DatasetKind):
    name = pde = "feynman_kac"
    command = "feynman-kac"
    version = "feynman-kac-1"
    help = "Monte Carlo Feynman–Kac labels u(x) ± standard error at random points of an analytic problem (for FK-PINNs)"
    noun = "labels"
    batched = True
    has_levels = False

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--problem", required=True,
                            help="a problem name (`pdekit problems` lists them) or your own as module:object")
        parser.add_argument("--paths", type=int, default=1000, help="random walks per point (default 1000)")
        parser.add_argument("--sampler", default="walk-on-spheres",
                            help="walk-on-spheres (default; no time-step bias, no drift) or euler-maruyama (any "
                                 "drift; biased by O(sqrt(dt)) at the exit)")
        parser.add_argument("--epsilon", type=float, default=1e-4,
                            help="walk-on-spheres: stop within this of the boundary")
        parser.add_argument("--dt", type=float, default=1e-4, help="euler-maruyama: the time step")
        parser.add_argument("--device", default="cpu", help="torch device of the walks (cpu, cuda)")
        parser.add_argument("--batch", type=int, default=16, help="points whose walks run together (default 16)")

    def options(self, args, level) -> dict:
        from datagen.feynman_kac import SAMPLERS
        from pdekit.errors import ConfigError
        from pdekit.problems import get

        try:
            problem = get(args.problem, deliberate=True)  # typed on the command line
        except (ConfigError, ValueError) as err:
            raise UsageError(str(err)) from None
        checks = [(args.paths >= 2, f"--paths must be >= 2, got {args.paths}"),
                  (args.batch >= 1, f"--batch must be >= 1, got {args.batch}"),
                  (0 < args.epsilon < 1, f"--epsilon must be in (0, 1), got {args.epsilon}"),
                  (0 < args.dt < 1, f"--dt must be in (0, 1), got {args.dt}"),
                  (args.sampler in SAMPLERS, f"--sampler must be one of {', '.join(SAMPLERS)}, got {args.sampler!r}"),
                  (not (args.sampler == "walk-on-spheres" and problem.drift is not None),
                   f"walk-on-spheres cannot follow the drift of {problem.name}; use --sampler euler-maruyama"),
                  (not (args.sampler == "walk-on-spheres" and problem.dim < 2),
                   "walk-on-spheres needs dimension >= 2; use --sampler euler-maruyama"),
                  (problem.allen_cahn == 0, f"{problem.name} is nonlinear (Allen–Cahn): no Feynman–Kac formula")]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)
        _check_sampler_accuracy(problem, args)
        check_device(args.device)
        return {"problem": problem}

    def config(self, args, level, resolution, extra) -> dict:
        problem = extra["problem"]
        return {"generator": self.name, "pde": self.pde, "problem": problem.name, "level": problem.name,
                "equation": problem.description, "dim": problem.dim, "sampler": args.sampler, "paths": args.paths,
                "epsilon": args.epsilon, "dt": args.dt, "n": args.n, "seed": args.seed, "batch": args.batch,
                "device": args.device}

    def resource_hint(self, args, config) -> str:
        return f"--paths {args.paths} with --batch {args.batch}"

    def describe(self, config) -> str:
        return f"{config['level']} {config['sampler']}, {config['paths']} paths"

    def generate(self, config, indices, seeds, progress=None, parts=None):
        from datagen.feynman_kac import label_samples

        return label_samples(config, indices, seeds, device=config.get("device") or "cpu")

    def write(self, out, samples, config):
        from pdekit.files.dataset import write_labels

        arrays = {key: stack(samples, key) for key in samples[0]}
        return [write_labels(out, arrays, config=config, generator_version=self.version)]

    def estimate_bytes(self, config, samples):
        # a point, a value and a few scalars per sample; paths × points walkers
        dim, walkers = int(config["dim"]), int(config["paths"]) * self.batch_size(config)
        return samples * 8 * (dim + 6), 2 * samples * 8 * (dim + 6) + 64 * walkers * (dim + 8)


def _check_sampler_accuracy(problem, args) -> None:
    """Refuse sampler settings whose bias or work is out of proportion to the problem: walk-on-spheres
    is biased by O(epsilon / L), Euler–Maruyama by O(sqrt(dt / T)) and needs ~T / dt steps per path,
    with L the domain's size and T ~ L^2 / (8 a d) the walkers' typical exit time."""
    from datagen.feynman_kac import MAX_STEPS

    size = max(hi - lo for lo, hi in problem.bounds)
    exit_time = size**2 / (8 * problem.diffusion * problem.dim)
    if args.sampler == "walk-on-spheres" and args.epsilon > 0.01 * size:
        raise UsageError(f"--epsilon {args.epsilon:g} is too large for {problem.name} (size {size:.3g}): the labels "
                         f"are biased by O(epsilon / size); use at most {0.01 * size:.3g}")
    if args.sampler == "euler-maruyama":
        if args.dt > 0.01 * exit_time:
            raise UsageError(f"--dt {args.dt:g} is too large for {problem.name} (exit time ~{exit_time:.3g}): the "
                             f"labels are biased by O(sqrt(dt / T)); use at most {0.01 * exit_time:.3g}")
        if exit_time / args.dt > MAX_STEPS:
            raise UsageError(f"--dt {args.dt:g} is too small for {problem.name}: walkers need ~{exit_time / args.dt:.2g} "
                             f"steps to exit (the sampler stops at {MAX_STEPS:.0e}); use at least "
                             f"{exit_time / MAX_STEPS:.2g}")


register(FeynmanKac)
