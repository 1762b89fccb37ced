"""Benchmark (not a test): a trained DCDM network as a solver / preconditioner vs classical ones.

Held-out Poisson systems (one per level, seeds never used in training) at 64², 128², 256² and 32³
(64³ with --large), and a Navier–Stokes pressure system with as many unknowns as each 2-D grid
(channel 2n x n/2, medium-medium obstacles, Re 1000, after 20 steps from the start; row level
``ns-pressure``), to relative residual 1e-6 and 1e-8: iterations and wall time for CG,
ILU-PCG, AMG-PCG (setup included), DCDM (network directions, k = 2) and FCG with the network.
The network is trained once at the smallest size (2D 32², 3D 16³, Ritz vectors of the easy
level's operator) and applied unchanged to the larger grids.  ``--networks dcdm,lsm,unet`` also
trains the LSM and the U-Net with the same DCDM loss and data (2-D; rows FCG-lsm, FCG-unet);
``--npsolver CKPT`` adds a trained NPSolver (rows FCG-npsolver, FCG-npsolver+J2).
``--multigrid CKPT`` adds the neural multigrid (row PCG-nmg: plain PCG, one V-cycle per
iteration, kernels computed once per system and counted in the time) next to its untrained form
(row PCG-gmg: classical geometric multigrid with Galerkin coarse operators); ``--methods`` keeps
only some rows (no DCDM training unless DCDM or FCG-net is among them).  ``--sequence N``
instead times N systems in a row, each with a new geometry and coefficient (as in a simulation
with moving boundaries, or a datagen run): total seconds of AMG-PCG (setup per system) vs the
neural multigrid (kernels per system), at the first of ``--grids`` and ``--levels``.
``--amg CKPT`` adds the learned algebraic multigrid (``models.learned_amg``; rows PCG-lamg: trained,
PCG-lamg0: its untrained form = pyamg SA through the same code, PCG-sa-theta: plain SA with the
strength threshold the training chose, so the network's own share is visible) to the table and to
``--sequence``; row level ``cut-cell`` is the pressure system of the channel with cut-cell walls.

    python -m experiments.benchmarks.bench_preconditioners [--small] [--large] [--device cuda] [--networks dcdm,lsm,unet]
        [--ckpt2d file.ckpt] [--ckpt3d file.ckpt] [--npsolver file.ckpt] [--out results.json] [--plot convergence.png]
        [--multigrid file.ckpt] [--amg file.ckpt] [--methods CG,AMG-PCG,PCG-lamg] [--sequence 50]
"""
from __future__ import annotations

import argparse
import functools
import os
import platform
import tempfile
import time
from pathlib import Path

import lightning as L
import torch

from datagen.poisson import LEVELS, sample_problem
from datagen.ritz import generate_ritz
from experiments.common import refuse, write_json
from models.dcdm import DCDM
from pdekit import DiffusionOperator
from pdekit.files.dataset import write_poisson
from pdekit.files.figures import pyplot, save_figure
from pdekit.krylov import conjugate_directions, fcg, pcg
from pdekit.learning.datamodules import FieldDataModule
from pdekit.learning.solvers import load
from pdekit.precond import AMG, ILU, ModulePreconditioner

CAPS = {"CG": 5000, "ILU-PCG": 2000, "AMG-PCG": 500, "DCDM": 1000, "FCG-net": 1000, "FCG-lsm": 1000, "FCG-unet": 1000,
        "FCG-npsolver": 1000, "FCG-npsolver+J2": 1000, "PCG-gmg": 1000, "PCG-nmg": 1000, "PCG-sa-theta": 500,
        "PCG-lamg0": 500, "PCG-lamg": 500}
PRESSURE_LEVELS = ("ns-pressure", "cut-cell")  # 2-D rows: channel pressure systems (staircase / cut-cell walls)
NETWORKS = {"lsm": ("models.lsm.LSM", {"width": 16, "patch": 2}), "unet": ("models.unet.UNet", {"width": 16})}
NETWORK_CAP_3D = 150  # a 3-D network apply costs ~0.2 s at 32^3 on a 2-core CPU


def train(dim, resolution, vectors, steps, epochs, folder, device, network="dcdm"):
    """Train a network with the DCDM loss on Ritz vectors of the easy level (generated once per
    dimension); returns the checkpoint path."""
    data = Path(folder) / f"ritz_{dim}d.h5"
    if not data.exists():
        arrays, grid, info = generate_ritz("easy", resolution, dim, vectors, steps, seed=0, progress=False)
        write_poisson(data, arrays, grid=grid, config={"kind": "ritz", **info}, generator_version="bench")
    torch.manual_seed(0)
    dm = FieldDataModule([str(data)], system=True, batch_size=16, split=[0.95, 0.05, 0.0])
    if network == "dcdm":
        task = DCDM(lr=1e-3, dim=dim)
    else:
        path, kwargs = NETWORKS[network]
        task = DCDM(lr=1e-3, dim=dim, network=path, network_kwargs=kwargs)
    trainer = L.Trainer(max_epochs=epochs, accelerator=device, devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=folder, use_distributed_sampler=False,
                        enable_checkpointing=False)
    start = time.perf_counter()
    trainer.fit(task, dm, weights_only=True)
    print(f"  trained {dim}D {network} at {resolution}^{dim} on {vectors} Ritz vectors: {time.perf_counter() - start:.0f} s, "
          f"val loss {float(trainer.callback_metrics['val/loss']):.3g}")
    path = Path(folder) / f"{network}_{dim}d.ckpt"
    trainer.save_checkpoint(path)
    return path


def pressure_system(n: int, steps: int = 20, walls: str = "staircase"):
    """The pressure Poisson system of a channel flow (n^2 unknowns incl. obstacle cells) after
    ``steps`` steps, as the generator solves it (its right-hand side, zero initial guess);
    ``walls="cut-cell"``: the obstacles' true boundaries (face fractions in the operator)."""
    from datagen.navier_stokes import OBSTACLE_LEVELS, draw_obstacles
    from datagen.ns_channel import ChannelFlow
    from datagen.ns_channel_run import simulate, stable_dt

    level = OBSTACLE_LEVELS["medium-medium"]
    flow = ChannelFlow(draw_obstacles(level, 10_000), nx=2 * n, ny=n // 2, height=1.0, nu=1.0 / level.reynolds,
                       u_max=1.0, tol=1e-8, walls=walls,
                       viscosity="implicit" if walls == "cut-cell" else "explicit")
    dt = stable_dt(flow.h, flow.nu, flow.u_max)
    simulate(flow, t_end=steps * dt, interval=steps * dt, dt=dt)
    return flow.op, flow.last_solve[0]


def solve_all(op, b, ckpt, tol, device, methods=tuple(CAPS), others=None):
    """``ckpt``: the DCDM network (rows DCDM, FCG-net); ``others``: {"lsm": ckpt, ...} (rows FCG-lsm, ...)."""
    rows = {}
    others = others or {}
    methods = [m for m in methods if not m.startswith("FCG-") or m == "FCG-net" or m[4:].partition("+")[0] in others]
    methods = [m for m in methods if m != "PCG-nmg" or "multigrid" in others]
    methods = [m for m in methods if m not in ("PCG-lamg", "PCG-sa-theta") or "amg" in others]
    for method in methods:
        cap = CAPS[method]
        if method in ("DCDM", "FCG-net") and op.grid.ndim == 3:
            cap = min(cap, NETWORK_CAP_3D)
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        start = time.perf_counter()
        if method == "CG":
            res = pcg(op, b, None, tol=tol, maxiter=cap)
        elif method in ("PCG-gmg", "PCG-nmg"):
            M = multigrid(op, others.get("multigrid") if method == "PCG-nmg" else None, device)
            res = pcg(op, b, M, tol=tol, maxiter=cap)
        elif method in ("PCG-sa-theta", "PCG-lamg0", "PCG-lamg"):
            res = pcg(op, b, learned_amg(op, method, others.get("amg")), tol=tol, maxiter=cap)
        elif method in ("ILU-PCG", "AMG-PCG"):
            M = ILU(op) if method == "ILU-PCG" else AMG(op)
            res = pcg(op, b, M, tol=tol, maxiter=cap)
        else:
            if method in ("DCDM", "FCG-net"):
                M = load(ckpt, op, device=device)
            else:  # "+J2": two Jacobi sweeps after the network (pdekit.learning.solvers.load(..., smoothing=2))
                name, _, smooth = method[4:].partition("+J")
                M = load(others[name], op, device=device, smoothing=int(smooth or 0))
            solve = conjugate_directions if method == "DCDM" else fcg
            kwargs = {"k": 2} if method == "DCDM" else {"truncation": 5}
            res = solve(op, b, M, tol=tol, maxiter=cap, **kwargs)
        sync()
        rows[method] = {"iterations": int(res.iterations), "converged": bool(res.converged),
                        "seconds": time.perf_counter() - start, "history": res.history[:, 0].cpu().tolist()}
    return rows


def multigrid(op, ckpt, device):
    """The neural multigrid for ``op`` from a checkpoint, or its untrained (classical) form."""
    if ckpt is not None:
        return load(ckpt, op, device=device)
    from models.multigrid import NeuralMultigrid

    torch.manual_seed(0)
    task = NeuralMultigrid(dim=op.grid.ndim).to(device)
    return ModulePreconditioner(task.preconditioner_module(op), op, linear=True)


def learned_amg(op, method, ckpt):
    """The learned algebraic multigrid for ``op`` (``PCG-lamg``), its untrained form (``PCG-lamg0``)
    or plain SA with the trained strength threshold (``PCG-sa-theta``); setup inside."""
    from models.learned_amg import build_hierarchy

    if method in ("PCG-lamg", "PCG-sa-theta"):
        return load(ckpt, op, correction=method == "PCG-lamg")  # sa-theta: the learned threshold alone
    return AMG(op, setup=build_hierarchy)


def sequence(args):
    """``--sequence N``: N new systems in a row; total time per preconditioner (setup included)."""
    shape = tuple(int(n) for n in (args.grids or "64x64").split(",")[0].split("x"))
    level = (args.levels or "hard").split(",")[0]
    methods = {"AMG-PCG": lambda op: AMG(op), "PCG-gmg": lambda op: multigrid(op, None, args.device)}
    if args.multigrid:
        methods["PCG-nmg"] = lambda op: multigrid(op, args.multigrid, args.device)
    if args.amg:
        methods.update({m: functools.partial(learned_amg, method=m, ckpt=args.amg)
                        for m in ("PCG-sa-theta", "PCG-lamg0", "PCG-lamg")})
    if args.methods:
        methods = {m: make for m, make in methods.items() if m in args.methods.split(",")}
    totals = {m: {"seconds": 0.0, "setup": 0.0, "iterations": 0, "failed": 0} for m in methods}
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    print(f"# changing-geometry sequence: {args.sequence} systems, {level} at {'x'.join(map(str, shape))}, rtol 1e-8")
    for k in range(args.sequence):
        grid, a, mask, bc, f = sample_problem(level, shape[0], len(shape), 20_000 + k)  # a new layout each time
        op = DiffusionOperator(grid, a, mask, bc)
        b = op.rhs(f).to(args.device)
        for name, make in methods.items():
            sync()
            start = time.perf_counter()
            M = make(op)
            sync()
            setup = time.perf_counter() - start
            res = pcg(op, b, M, tol=1e-8, maxiter=CAPS["PCG-nmg"])
            sync()
            row = totals[name]
            row["seconds"] += time.perf_counter() - start
            row["setup"] += setup
            row["iterations"] += int(res.iterations)
            row["failed"] += int(not bool(res.converged))
    print("| method | total s | setup s | mean iterations | not converged |\n|---|---|---|---|---|")
    for name, row in totals.items():
        print(f"| {name} | {row['seconds']:.2f} | {row['setup']:.2f} | {row['iterations'] / args.sequence:.1f} | "
              f"{row['failed']} |")
    if args.out:
        write_json(args.out, {"level": level, "grid": list(shape), "systems": args.sequence, "totals": totals})


def check_arguments(args) -> None:
    """Bad values stop the run before any training or solving, in one line."""
    from pdekit.errors import PdekitError
    from pdekit.learning.checkpoints import load_task

    if args.sequence < 0:
        refuse(f"--sequence must be >= 0, got {args.sequence}")
    unknown = sorted(set(args.methods.split(",")) - set(CAPS)) if args.methods else []
    if unknown:
        refuse(f"--methods: unknown {', '.join(unknown)}; choose from {', '.join(CAPS)}")
    unknown = sorted(set(args.networks.split(",")) - {"dcdm", *NETWORKS})
    if unknown:
        refuse(f"--networks: unknown {', '.join(unknown)}; choose from dcdm, {', '.join(NETWORKS)}")
    grids = {"32x32", "64x64"} if args.small else {"64x64", "128x128", "256x256", "32x32x32", "64x64x64"}
    unknown = sorted(set(args.grids.split(",")) - grids) if args.grids else []
    if unknown:
        refuse(f"--grids: unknown {', '.join(unknown)}; choose from {', '.join(sorted(grids))}")
    if args.grids and "64x64x64" in args.grids.split(",") and not args.large:
        refuse("--grids 64x64x64 needs --large")
    unknown = sorted(set(args.levels.split(",")) - {*LEVELS, *PRESSURE_LEVELS}) if args.levels else []
    if unknown:
        refuse(f"--levels: unknown {', '.join(unknown)}; choose from {', '.join([*LEVELS, *PRESSURE_LEVELS])}")
    from pdekit.resources import check_device

    try:
        check_device(args.device)
    except ValueError as error:
        refuse(f"--device: {error}")
    for flag, path, attribute in (("--multigrid", args.multigrid, "linear_preconditioner"),
                                  ("--amg", args.amg, "algebraic_preconditioner"),
                                  ("--npsolver", args.npsolver, "preconditioner_module"),
                                  ("--ckpt2d", args.ckpt2d, "trained_on_residuals"),
                                  ("--ckpt3d", args.ckpt3d, "trained_on_residuals"),
                                  ("--ckpt-pressure", args.ckpt_pressure, "trained_on_residuals")):
        if path is None:
            continue
        try:
            task, _ = load_task(path)
        except (PdekitError, OSError) as error:
            refuse(f"{flag}: {error}")
        if not getattr(task, attribute, False):
            refuse(f"{flag}: {path} holds a {type(task).__name__}, not the model this option takes")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="smoke run: 2D only, small grids, short training")
    parser.add_argument("--large", action="store_true", help="add 64^3 (slow on a CPU)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--ckpt2d", default=None)
    parser.add_argument("--ckpt3d", default=None)
    parser.add_argument("--out", default=None)
    parser.add_argument("--plot", default=None)
    parser.add_argument("--grids", default=None, help="only these grids, e.g. 32x32x32,64x64")
    parser.add_argument("--levels", default=None, help="only these rows, e.g. easy,ns-pressure")
    parser.add_argument("--ckpt-pressure", default=None,
                        help="a model for the ns-pressure rows (e.g. from configs/dcdm_pressure_2d.yaml), "
                             "reported as DCDM-p / FCG-net-p next to the 2-D model")
    parser.add_argument("--npsolver", default=None,
                        help="a trained NPSolver checkpoint (2-D): rows FCG-npsolver and FCG-npsolver+J2 (two Jacobi "
                             "sweeps after the network)")
    parser.add_argument("--networks", default="dcdm",
                        help="networks trained with the DCDM loss: dcdm and any of lsm, unet (2-D rows FCG-lsm, FCG-unet)")
    parser.add_argument("--multigrid", default=None,
                        help="a trained NeuralMultigrid checkpoint (rows PCG-nmg; PCG-gmg is its untrained form)")
    parser.add_argument("--amg", default=None,
                        help="a trained LearnedAMG checkpoint (rows PCG-lamg, PCG-lamg0 = its untrained form, "
                             "PCG-sa-theta = SA with its strength threshold)")
    parser.add_argument("--methods", default=None, help="only these rows, e.g. CG,ILU-PCG,AMG-PCG,PCG-gmg,PCG-nmg")
    parser.add_argument("--sequence", type=int, default=0,
                        help="time N systems with changing geometry instead (AMG-PCG vs the neural multigrid)")
    args = parser.parse_args()
    check_arguments(args)
    if args.sequence:
        sequence(args)
        return
    print(f"# preconditioner benchmark: {platform.machine()}, {os.cpu_count()} cores, device {args.device}")
    with tempfile.TemporaryDirectory(prefix="bench_precond_") as folder:  # trained models and Ritz data
        run(args, folder)


def run(args, folder):
    extra = [n for n in args.networks.split(",") if n != "dcdm"]
    if args.small:
        sizes = [((32, 32), 2), ((64, 64), 2)]
        ckpt = {2: args.ckpt2d or train(2, 16, 400, 200, 8, folder, args.device)}
        others = {n: train(2, 16, 400, 200, 8, folder, args.device, n) for n in extra}
    else:
        sizes = [((64, 64), 2), ((128, 128), 2), ((256, 256), 2), ((32, 32, 32), 3)]
        sizes += [((64, 64, 64), 3)] if args.large else []
        wanted = args.grids.split(",") if args.grids else None
        dims = {dim for shape, dim in sizes if wanted is None or "x".join(map(str, shape)) in wanted}
        wants_dcdm = args.methods is None or {"DCDM", "FCG-net"} & set(args.methods.split(","))
        ckpt = {2: args.ckpt2d or (train(2, 32, 2000, 800, 15, folder, args.device) if 2 in dims and wants_dcdm else None),
                3: args.ckpt3d or (train(3, 16, 1000, 600, 10, folder, args.device) if 3 in dims and wants_dcdm else None)}
        others = {n: train(2, 32, 2000, 800, 15, folder, args.device, n) for n in extra} if 2 in dims else {}
    if args.npsolver:
        others["npsolver"] = args.npsolver
    methods = tuple(m for m in CAPS if args.methods is None or m in args.methods.split(","))
    if args.grids:
        sizes = [(shape, dim) for shape, dim in sizes if "x".join(map(str, shape)) in args.grids.split(",")]
    results = []
    for shape, dim in sizes:
        for level in list(LEVELS) + (list(PRESSURE_LEVELS) if dim == 2 else []):
            if args.levels and level not in args.levels.split(","):
                continue
            if level in PRESSURE_LEVELS:
                op, b = pressure_system(shape[0], walls="cut-cell" if level == "cut-cell" else "staircase")
            else:
                grid, a, mask, bc, f = sample_problem(level, shape[0], dim, 10_000)  # held-out seed
                op = DiffusionOperator(grid, a, mask, bc)
                b = op.rhs(f)
            b = b.to(args.device)
            for tol in (1e-6, 1e-8):
                extra = dict(others if dim == 2 else {})
                if args.multigrid and dim == 2:
                    extra["multigrid"] = args.multigrid
                if args.amg:
                    extra["amg"] = args.amg
                rows = solve_all(op, b, ckpt[dim], tol, args.device, methods=methods, others=extra)
                if level == "ns-pressure" and args.ckpt_pressure:
                    own = solve_all(op, b, args.ckpt_pressure, tol, args.device, methods=("DCDM", "FCG-net"))
                    rows.update({f"{m}-p": r for m, r in own.items()})
                for method, row in rows.items():
                    results.append({"grid": "x".join(map(str, shape)), "level": level, "tol": tol, "method": method,
                                    **row})
                    print(f"  {results[-1]['grid']:>9} {level:<8} {tol:.0e} {method:<8} "
                          f"{row['iterations']:>5} {'' if row['converged'] else '(cap)'} {row['seconds']:.3f} s")
    methods = list(dict.fromkeys(r["method"] for r in results))
    print(f"\n| grid | level | tol | {' | '.join(methods)} |  (iterations / seconds; * = cap; -p: pressure model)")
    print("|---|---|---|" + "---|" * len(methods))
    for key in dict.fromkeys((r["grid"], r["level"], r["tol"]) for r in results):
        cells = []
        for method in methods:
            r = next((x for x in results if (x["grid"], x["level"], x["tol"], x["method"]) == key + (method,)), None)
            if r is None:
                cells.append("")
                continue
            cells.append(f"{r['iterations']}{'' if r['converged'] else '*'} / {r['seconds']:.2f}")
        print(f"| {key[0]} | {key[1]} | {key[2]:.0e} | " + " | ".join(cells) + " |")
    if args.out:
        write_json(args.out, results)
    if args.plot:
        plot(results, args.plot)


def plot(results, path):
    plt = pyplot()

    cases = [k for k in dict.fromkeys((r["grid"], r["level"]) for r in results if r["tol"] == 1e-8)]
    cases = ([c for c in cases if c[1] in ("easy", "hard", "ns-pressure")] or cases)[-4:]
    fig, axes = plt.subplots(1, len(cases), figsize=(4 * len(cases), 3.5), squeeze=False)
    for ax, (grid, level) in zip(axes[0], cases):
        for r in results:
            if (r["grid"], r["level"], r["tol"]) == (grid, level, 1e-8):
                ax.semilogy(r["history"], label=r["method"])
        ax.set_title(f"{grid} {level}")
        ax.set_xlabel("iteration")
        ax.set_ylabel("relative residual")
        ax.set_xscale("symlog", linthresh=10)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


if __name__ == "__main__":
    from experiments.common import run_script

    run_script(main)
