"""Navier–Stokes generator throughput: periodic solver steps/s and FFT share, channel solver
steps/s and pressure-solve share, and the cost of one trajectory per difficulty level; with
``--cylinder``, the Schäfer–Turek cylinder benchmarks instead (experiments/specs/cylinder_2d*.yaml):
2D-1 (steady, Re 20) time to steady state with explicit vs implicit viscosity and the drag, lift
and front-back pressure difference per resolution with the observed order and Richardson
extrapolation; 2D-2 (periodic shedding, Re 100) drag and lift maxima and Strouhal number; DFG 2D-3
(from rest under the inflow 1.5 sin(pi t / 8)) drag and lift maxima and the pressure difference at
t = 8 with observed orders.

    python -m experiments.benchmarks.bench_navier_stokes [--small] [--device cuda] [--out results.json]
    python -m experiments.benchmarks.bench_navier_stokes --cylinder [--cells 10,20,40] [--explicit-cells 10,20]
                                              [--unsteady-cells 10,20] [--transient-cells 10,20,40]
                                              [--steady-schemes march,implicit] [--window T] [--out cylinder.json]

Cost per level is extrapolated from a short run of every level (``--fraction`` of its simulated
time, default 5%) at the level's default resolution: seconds per trajectory = measured seconds
per simulated time unit x (warm-up + t_end).
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from datagen.burgers import LEVELS as BURGERS_LEVELS
from datagen.navier_stokes import OBSTACLE_LEVELS, PERIODIC_LEVELS, draw_obstacles
from datagen.ns_channel import ChannelFlow
from datagen.ns_channel_run import simulate as simulate_channel
from datagen.ns_periodic import Forcing, gaussian_random_field
from datagen.ns_periodic import simulate as simulate_periodic
from experiments.common import print_table, refuse, write_json


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _initial(n, batch, device):
    gen = torch.Generator().manual_seed(0)
    return torch.stack([gaussian_random_field(n, gen) for _ in range(batch)]).to(device)


def periodic_table(sizes, batches, device, steps):
    rows = []
    for n in sizes:
        for batch in batches:
            w0 = _initial(n, batch, device)
            # a fixed number of steps: interval = steps * dt with dt pinned by max_dt (CFL far below 1 here)
            kwargs = dict(nu=1e-4, forcing=Forcing("fno"), cfl=1.0, max_dt=1e-4)
            simulate_periodic(w0, t_end=2e-4, interval=2e-4, **kwargs)  # warm-up (plans, allocations)
            _sync(device)
            t0 = time.perf_counter()
            simulate_periodic(w0, t_end=steps * 1e-4, interval=steps * 1e-4, **kwargs)
            _sync(device)
            step = (time.perf_counter() - t0) / steps
            w_hat = torch.fft.rfft2(w0)
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(steps):  # the 10 transforms of one Heun step (2 x (4 inverse + 1 forward))
                for _ in range(2):
                    for _ in range(4):
                        field = torch.fft.irfft2(w_hat, s=(n, n))
                    w_hat = torch.fft.rfft2(field)
            _sync(device)
            fft = (time.perf_counter() - t0) / steps
            rows.append({"grid": f"{n}^2", "batch": batch, "steps_per_s": 1 / step,
                         "trajectory_steps_per_s": batch / step, "fft_ms_per_step": 1e3 * fft,
                         "step_ms": 1e3 * step, "fft_share_pct": 100 * fft / step})
    return rows


def channel_table(grids, device, steps):
    rows = []
    level = OBSTACLE_LEVELS["medium-medium"]
    shapes = draw_obstacles(level, 0)
    for nx, ny in grids:
        for precond in ("amg",):
            flow = ChannelFlow(shapes, nx=nx, ny=ny, height=1.0, nu=1.0 / level.reynolds, u_max=1.0,
                               pressure_precond=precond, tol=1e-6, device=device)
            dt = 0.4 / ny / 2.5
            simulate_channel(flow, t_end=5 * dt, interval=5 * dt, dt=dt)  # warm-up
            flow.pressure_seconds, flow.pressure_iterations = 0.0, 0
            _sync(device)
            t0 = time.perf_counter()
            out = simulate_channel(flow, t_end=steps * dt, interval=steps * dt, dt=dt)
            _sync(device)
            wall = time.perf_counter() - t0
            rows.append({"grid": f"{nx}x{ny}", "pressure": f"{precond}-pcg 1e-6", "steps_per_s": steps / wall,
                         "pressure_its_per_step": out["pressure_iterations"] / steps,
                         "pressure_share_pct": 100 * out["pressure_seconds"] / wall})
    return rows


def level_costs(fraction, device):
    """Seconds per trajectory for every level, with one torch thread as `datagen` runs them."""
    from dataclasses import replace

    from datagen.burgers import burgers_samples
    from datagen.navier_stokes import obstacle_sample, periodic_samples

    rows = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)

    def add(family, name, resolution, simulated, run, total):
        t0 = time.perf_counter()
        run()
        _sync(device)
        seconds = time.perf_counter() - t0
        rows.append({"family": family, "level": name, "grid": resolution, "simulated": simulated,
                     "measured_s": seconds, "s_per_trajectory": seconds / simulated * total})

    for name, lv in PERIODIC_LEVELS.items():
        short = replace(lv, t_end=max(lv.interval, round(lv.t_end * fraction)))
        add("periodic", name, f"{lv.resolution}^2", short.t_end,
            lambda: periodic_samples(short, lv.resolution, [0], [0], device=device), lv.t_end + lv.warmup)
    for name, lv in OBSTACLE_LEVELS.items():
        if "-" not in name:
            continue
        span = (lv.t_end + lv.warmup) * fraction
        short = replace(lv, warmup=0.0, t_end=max(lv.interval, round(span / lv.interval) * lv.interval))
        add("obstacles", name, f"{int(lv.aspect * lv.resolution)}x{lv.resolution}", short.t_end,
            lambda: obstacle_sample(short, lv.resolution, 0, 0, device=device), lv.t_end + lv.warmup)
    for name, lv in BURGERS_LEVELS.items():
        add("burgers", name, str(lv.resolution), lv.t_end,
            lambda: burgers_samples(lv, lv.resolution, [0], [0], device=device), lv.t_end)
    torch.set_num_threads(threads)
    return rows


SPECS = Path(__file__).resolve().parents[1] / "specs"
# Schäfer & Turek (1996) reference intervals
REFERENCE_2D1 = {"drag": (5.57, 5.59), "lift": (0.0104, 0.0110), "dp": (0.1172, 0.1176)}
REFERENCE_2D2 = {"drag_max": (3.22, 3.24), "lift_max": (0.99, 1.01), "strouhal": (0.295, 0.305)}
# DFG 2D-3 (inflow 1.5 sin(pi t / 8) from rest); reference values of John (2004)
REFERENCE_2D3 = {"drag max": 2.950, "lift max": 0.478, "dp(8)": -0.111}


def _cylinder_run(spec: str, cells: int, scheme: str, device, walls: str = "staircase", **changes):
    from dataclasses import replace

    from datagen.generators import resolve_level
    from datagen.navier_stokes import obstacle_sample

    level = replace(resolve_level("navier_stokes_obstacles", None, str(SPECS / spec)), viscous_scheme=scheme,
                    walls=walls, **changes)
    ny = round(level.height / (0.1 / cells))  # 0.1: the cylinder's diameter
    t0 = time.perf_counter()
    sample = obstacle_sample(level, ny, 0, f"{spec} {cells} cells/D {scheme} {walls}", device=device)
    return sample, time.perf_counter() - t0


def _order(values, cells):
    """Observed order and Richardson-extrapolated value from three results on grids refined by a
    constant ratio (NaN when the ratio is not constant or the values are not monotone)."""
    import math

    a, b, c = values
    ratio = cells[1] / cells[0]
    if abs(cells[2] / cells[1] - ratio) > 1e-9 or (b - a) * (c - b) <= 0 or b == c:
        return float("nan"), float("nan")
    order = math.log(abs(b - a) / abs(c - b)) / math.log(ratio)
    return order, c + (c - b) / (ratio**order - 1)


def transient_table(cells, device):
    """DFG 2D-3 on cut-cell walls at each resolution: C_D,max, C_L,max and dp(t = 8), and their
    observed order and extrapolation over the last three resolutions."""
    import numpy as np

    rows = []
    if not cells:
        return [], []
    for n in cells:
        sample, seconds = _cylinder_run("cylinder_2d3.yaml", n, "implicit", device, "cut-cell")
        t, probes = sample["t_force"], sample["probes"]
        drag, lift = sample["drag"][:, 0], sample["lift"][:, 0]
        rows.append({"cells/D": n, "dt": float(sample["solver_dt"]), "steps": int(sample["steps"]), "wall s": seconds,
                     "drag max": float(np.max(drag)), "t(drag max)": float(t[np.argmax(drag)]),
                     "lift max": float(np.max(lift)), "t(lift max)": float(t[np.argmax(lift)]),
                     "dp(8)": float(probes[-1, 2, 0] - probes[-1, 2, 1])})
        print(f"2D-3 {n} cells/D: drag max {rows[-1]['drag max']:.4f}, lift max {rows[-1]['lift max']:.4f}, "
              f"dp(8) {rows[-1]['dp(8)']:.4f}, {seconds:.0f} s", flush=True)
    convergence = []
    for key, reference in REFERENCE_2D3.items():
        row = {"quantity": key, **{f"{r['cells/D']} cells/D": r[key] for r in rows}, "reference": reference,
               "finest error %": 100 * (rows[-1][key] - reference) / abs(reference) if rows else float("nan")}
        if len(rows) >= 3:
            row["observed order"], row["extrapolated"] = _order([r[key] for r in rows[-3:]],
                                                                 [r["cells/D"] for r in rows[-3:]])
        convergence.append(row)
    return rows, convergence


def cylinder_tables(cells, explicit_cells, unsteady_cells, device, window=None, walls=("staircase",),
                    steady_schemes=("march",)):
    """``window``: run every 2D-1 case for this many time units only (no steady stop), to measure
    the cost per simulated time unit where reaching the steady state is too long.  ``walls``: the
    wall treatments to compare (explicit viscosity runs with staircase walls only; cut cells need
    implicit viscosity)."""
    import numpy as np

    from datagen.ns_channel_run import strouhal

    steady, unsteady = [], []
    runs = [(wall, n, scheme, steady) for wall in walls for n in cells for scheme in ("explicit", "implicit")
            for steady in steady_schemes
            if (scheme == "implicit" or (wall == "staircase" and n in explicit_cells))
            and (steady == "march" or (scheme == "implicit" and not window))]
    for wall, n, scheme, steady_scheme in runs:
        changes = {"t_end": window, "interval": window, "steady_tol": 0.0} if window else {}
        changes["steady_scheme"] = steady_scheme
        sample, seconds = _cylinder_run("cylinder_2d1.yaml", n, scheme, device, wall, **changes)
        last = int(sample["steps"]) - 1  # the steady state (the rows after the stop repeat it)
        dp = float(sample["probes"][last, 2, 0] - sample["probes"][last, 2, 1])
        simulated = float(sample["steps"] * sample["solver_dt"])
        steady.append({"walls": wall, "cells/D": n, "viscosity": scheme, "steady scheme": steady_scheme,
                       "pseudo steps": int(sample["pseudo_steps"]), "dt": float(sample["solver_dt"]),
                       "steps to steady": int(sample["steady_step"]),
                       "time to steady": float(sample["steady_step"] * sample["solver_dt"])
                       if sample["steady_step"] > 0 else float("nan"),
                       "wall s": seconds, "wall s per time unit": seconds / simulated if simulated else float("nan"),
                       "drag": float(sample["drag"][last, 0]),
                       "lift": float(sample["lift"][last, 0]), "dp": dp,
                       "drag pressure": float(sample["drag_pressure"][last, 0]),
                       "drag viscous": float(sample["drag_viscous"][last, 0])})
        print(f"2D-1 {wall} {n} cells/D {scheme} {steady_scheme}: drag {steady[-1]['drag']:.6f}, {seconds:.0f} s",
              flush=True)
    for wall, n in [(wall, n) for wall in walls for n in unsteady_cells]:
        scheme = "explicit" if wall == "staircase" else "implicit"  # 2D-2's step is advection-limited
        sample, seconds = _cylinder_run("cylinder_2d2.yaml", n, scheme, device, wall)
        t, lift, drag = sample["t_force"], sample["lift"][:, 0], sample["drag"][:, 0]
        unsteady.append({"walls": wall, "cells/D": n, "viscosity": scheme, "wall s": seconds, "drag max": float(np.max(drag)),
                         "lift max": float(np.max(lift)), "strouhal": strouhal(t, lift, 0.1, 1.0)})
        print(f"2D-2 {wall} {n} cells/D: drag max {unsteady[-1]['drag max']:.4f}, {seconds:.0f} s", flush=True)
    convergence = []
    for wall in walls:
        implicit = [r for r in steady if r["viscosity"] == "implicit" and r["walls"] == wall
                    and r["steady scheme"] == steady_schemes[0]]
        if len(implicit) < 3:
            continue
        for key in ("drag", "lift", "dp"):
            values = [r[key] for r in implicit[-3:]]
            order, extrapolated = _order(values, [r["cells/D"] for r in implicit[-3:]])
            low, high = REFERENCE_2D1[key]
            convergence.append({"walls": wall, "quantity": key, **{f"{r['cells/D']} cells/D": r[key] for r in implicit[-3:]},
                                "observed order": order, "extrapolated": extrapolated,
                                "reference": f"{low}-{high}",
                                "finest error %": 100 * (values[-1] - (low + high) / 2) / ((low + high) / 2)})
    return {"steady": steady, "convergence": convergence, "unsteady": unsteady}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--fraction", type=float, default=0.05, help="share of each level's time span to run")
    parser.add_argument("--out", default=None, help="write the tables as JSON")
    parser.add_argument("--levels-only", action="store_true", help="only the cost-per-level table")
    parser.add_argument("--cylinder", action="store_true", help="the Schäfer–Turek cylinder benchmarks")
    parser.add_argument("--cells", default="10,20,40", help="--cylinder: cells per diameter (2D-1, implicit)")
    parser.add_argument("--explicit-cells", default="10,20", help="--cylinder: 2D-1 with explicit viscosity")
    parser.add_argument("--unsteady-cells", default="10,20", help="--cylinder: 2D-2 resolutions")
    parser.add_argument("--transient-cells", default="10,20,40",
                        help="--cylinder: DFG 2D-3 resolutions (cut-cell walls; inflow 1.5 sin(pi t / 8))")
    parser.add_argument("--walls", default="staircase",
                        help="--cylinder: comma-separated wall treatments, staircase and/or cut-cell")
    parser.add_argument("--steady-schemes", default="march",
                        help="--cylinder: 2D-1's ways to the steady state, march and/or implicit (comma-separated)")
    parser.add_argument("--window", type=float, default=None,
                        help="--cylinder: run 2D-1 for this many time units only (cost per time unit)")
    args = parser.parse_args()
    if args.cylinder:
        ints = lambda text: [int(c) for c in text.split(",") if c]  # noqa: E731
        try:
            cells, explicit_cells, unsteady_cells = ints(args.cells), ints(args.explicit_cells), ints(args.unsteady_cells)
            transient_cells = ints(args.transient_cells)
        except ValueError:
            refuse("--cells, --explicit-cells, --unsteady-cells and --transient-cells are comma-separated whole "
                   "numbers of cells per diameter")
        if any(c < 5 for c in cells + explicit_cells + unsteady_cells + transient_cells):
            refuse("need at least 5 cells per diameter")
        if args.window is not None and not args.window > 0:
            refuse("--window must be > 0 time units")
        from datagen.ns_channel import WALLS

        walls = tuple(w for w in args.walls.split(",") if w)
        if not walls or not set(walls) <= set(WALLS):
            refuse(f"--walls must be a comma-separated list from {', '.join(WALLS)}, got {args.walls!r}")
        from datagen.ns_channel_run import STEADY_SCHEMES

        steady_schemes = tuple(w for w in args.steady_schemes.split(",") if w)
        if not steady_schemes or not set(steady_schemes) <= set(STEADY_SCHEMES):
            refuse(f"--steady-schemes must be a comma-separated list from {', '.join(STEADY_SCHEMES)}, "
                   f"got {args.steady_schemes!r}")
        tables = cylinder_tables(cells, explicit_cells, unsteady_cells, args.device, args.window, walls,
                                 steady_schemes)
        tables["transient"], tables["transient convergence"] = transient_table(transient_cells, args.device)
        titles = {"steady": "Schäfer–Turek 2D-1 (Re 20, steady): time to steady state and forces",
                  "convergence": "2D-1 grid convergence (implicit viscosity; reference interval from the benchmark)",
                  "unsteady": "Schäfer–Turek 2D-2 (Re 100, shedding; reference drag max 3.22-3.24, lift max "
                              "0.99-1.01, St 0.295-0.305)",
                  "transient": "DFG 2D-3 (inflow 1.5 sin(pi t / 8) from rest, t in [0, 8]; cut-cell walls)",
                  "transient convergence": "2D-3 against the reference (John 2004: drag max 2.950, lift max 0.478, "
                                           "dp(8) -0.111)"}
        for key, title in titles.items():
            if tables[key]:
                print_table(title, tables[key])
        if args.out:
            write_json(args.out, tables)
        return
    if args.levels_only:
        print_table("cost per trajectory and level", level_costs(args.fraction, args.device))
        return
    if args.small:
        sizes, batches, grids, steps = [32], [1, 4], [(64, 16)], 5
    else:
        sizes, batches, grids, steps = [64, 256, 512], [1, 16], [(256, 64), (512, 128)], 20
    print(f"# navier-stokes benchmark: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, device {args.device}, float64")
    tables = {"periodic": periodic_table(sizes, batches, args.device, steps),
              "channel": channel_table(grids, args.device, steps)}
    print_table("1. periodic vorticity solver (Heun + Crank-Nicolson, 10 FFTs per step)", tables["periodic"])
    print_table("2. channel solver (medium-medium geometry, Re 1000)", tables["channel"])
    if not args.small:
        tables["levels"] = level_costs(args.fraction, args.device)
        print_table(f"3. cost per trajectory and level (extrapolated from {100 * args.fraction:g}% of each run)",
                    tables["levels"])
    if args.out:
        write_json(args.out, tables)


if __name__ == "__main__":
    from experiments.common import run_script

    run_script(main)
