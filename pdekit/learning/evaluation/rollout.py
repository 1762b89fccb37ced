"""``pdekit evaluate --rollout``: the rollout-stability suite of an autoregressive model on
time-series files.  Every trajectory is rolled out from its first ``history`` snapshots over the
stored horizon (``steps`` extends it, to catch late blow-up); per trajectory and summarised per
level: relative L2 and Pearson correlation vs step, time until the correlation drops below
0.8 / 0.9 / 0.95, the late-time spectral error and spectra, invariant drift, Burgers shock
position/height errors, and the blow-up step (values non-finite or beyond 100× the truth's
largest magnitude), which is reported, never raised.  Figures: ``rollout_curves.png``,
``spectra.png``, ``strips.png``."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from pdekit.files.dataset import levels_in, open_dataset
from pdekit.files.figures import pyplot
from pdekit.learning.datamodules import TimeSeriesWindows
from pdekit.learning.evaluation import rollout_metrics as rm

THRESHOLDS = (0.8, 0.9, 0.95)
BOUND_FACTOR = 100.0


def roll_out(task, x, mask, steps: int, bound: float) -> torch.Tensor:
    """Step by step (stopping once blown up: the rest stays NaN) → ``(steps, components, *grid)``."""
    states = []
    with torch.no_grad():
        for _ in range(steps):
            state = task(x, mask)
            states.append(state[0].cpu())
            if not torch.isfinite(state).all() or float(state.abs().max()) > bound:
                states += [torch.full_like(states[-1], float("nan"))] * (steps - len(states))
                break
            x = task.advance(x, state)
    return torch.stack(states)


def trajectory_metrics(predicted: np.ndarray, truth: np.ndarray, *, dim: int, spacing, dt: float,
                       vorticity: bool, bound: float) -> dict:
    """Metrics of one trajectory: ``predicted`` over the whole rollout, ``truth`` over the stored
    steps it overlaps (both start one step after the initial history)."""
    stored = len(truth)
    times = dt * np.arange(1, len(predicted) + 1)
    corr = rm.correlation(predicted[:stored], truth)
    out = {"rel_l2": rm.relative_l2_per_step(predicted[:stored], truth).tolist(), "correlation": corr.tolist(),
           "blow_up_step": rm.blow_up_step(predicted, bound)}
    for threshold in THRESHOLDS:
        out[f"time_until_corr_{threshold}"] = rm.time_until_below(corr, threshold, times[:stored])
    last = stored - 1
    out["late_spectral_error"] = rm.spectral_error(np.nan_to_num(predicted[last]), truth[last], dim) \
        if np.isfinite(predicted[last]).all() else float("nan")
    scalar = (lambda a: a[:, 0]) if truth.shape[1] == 1 else (lambda a: a)  # noqa: E731  one component: a scalar
    pred_inv = rm.invariants(scalar(np.nan_to_num(predicted[:stored])), dim, spacing, vorticity=vorticity)
    true_inv = rm.invariants(scalar(truth), dim, spacing, vorticity=vorticity)
    for name, values in true_inv.items():
        scale = max(float(np.abs(values).max()), 1e-12)
        out[f"{name}_drift"] = float(np.abs(pred_inv[name][-1] - values[-1]) / scale)
    if dim == 1 and truth.shape[1] == 1:  # a 1-D scalar (Burgers): its steepest front
        u_pred, u_true = np.nan_to_num(predicted[:stored]).reshape(stored, -1), truth.reshape(stored, -1)
        (xp, hp), (xt, ht) = rm.steepest_gradient(u_pred, spacing[0]), rm.steepest_gradient(u_true, spacing[0])
        period = spacing[0] * u_true.shape[-1]
        gap = np.abs(xp - xt)
        out["shock_position_error"] = float(np.minimum(gap, period - gap)[-1])
        out["shock_height_error"] = float(np.abs(hp - ht)[-1] / max(float(ht[-1]), 1e-12))
    return out


def evaluate_rollout_suite(task, signature: dict, files, *, device="cpu", steps: int | None = None) -> tuple[dict, dict]:
    """(metrics, figure data) over every trajectory of ``files``."""
    levels = levels_in(files)
    history = int(signature["history"])
    per_trajectory, figure = [], {"spectra": {}, "strip": None}
    for path in files:
        windows = TimeSeriesWindows(path, signature["inputs"], history, 1, levels)
        with open_dataset(path) as h5:
            spacing = [float(s) for s in h5.attrs["spacing"]]
            dt = float(h5.attrs["dt"])
        vorticity = "vorticity" in signature["inputs"]
        for sample in range(windows.samples):
            truth = windows.snapshots(sample, 0, windows.steps)
            mask = windows.mask(sample)[None].to(device)
            x = truth[:history].flatten(0, 1)[None].to(device)
            horizon = max(windows.steps - history, steps or 0)
            bound = BOUND_FACTOR * max(float(truth.abs().max()), 1e-12)
            predicted = roll_out(task, x, mask, horizon, bound).double().numpy()
            future = truth[history:].double().numpy()
            metrics = trajectory_metrics(predicted, future, dim=windows.dim, spacing=spacing, dt=dt,
                                         vorticity=vorticity, bound=bound)
            metrics.update(file=str(path), sample=sample, level=levels[windows.level_codes[sample]])
            per_trajectory.append(metrics)
            level = metrics["level"]
            if windows.dim >= 1 and level not in figure["spectra"]:
                chosen = sorted({0, len(future) // 2, len(future) - 1})
                figure["spectra"][level] = [(int(j + 1), rm.energy_spectrum(future[j], windows.dim),
                                             rm.energy_spectrum(np.nan_to_num(predicted[j]), windows.dim))
                                            for j in chosen]
            if figure["strip"] is None:
                figure["strip"] = (f"{Path(path).stem}:{sample}", future, predicted[: len(future)])
    return _summarise(per_trajectory, levels), figure


def _summarise(rows, levels) -> dict:
    scalar_keys = [k for k, v in rows[0].items() if isinstance(v, (int, float)) or v is None]
    scalar_keys = [k for k in scalar_keys if k not in ("sample", "blow_up_step")]

    def summary(chosen):
        out = {"trajectories": len(chosen)}
        for key in scalar_keys:
            values = np.array([r[key] for r in chosen], float)
            out[f"{key}_mean"] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
        blown = [r["blow_up_step"] for r in chosen if r["blow_up_step"] is not None]
        out["blown_up"] = len(blown)
        out["first_blow_up_step"] = min(blown) if blown else None
        for curve in ("rel_l2", "correlation"):
            stacked = np.array([r[curve] for r in chosen], float)
            with warnings.catch_warnings():  # every trajectory blown up by that step: NaN, as it should be
                warnings.simplefilter("ignore", RuntimeWarning)
                out[f"{curve}_vs_step"] = np.nanmean(stacked, 0).tolist()
        return out

    return {"overall": summary(rows),
            "per_level": {n: summary([r for r in rows if r["level"] == n]) for n in levels
                          if any(r["level"] == n for r in rows)},
            "trajectories": rows}


def rollout_figures(out: Path, suite: dict, figure: dict, save) -> list[str]:
    plt = pyplot()

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
    for name, row in suite["per_level"].items():
        steps = np.arange(1, len(row["rel_l2_vs_step"]) + 1)
        axes[0].plot(steps, row["rel_l2_vs_step"], label=name)
        axes[1].plot(steps, row["correlation_vs_step"], label=name)
    axes[0].set(yscale="log", xlabel="rollout step", ylabel="relative L2 error", title="error vs step")
    for threshold in THRESHOLDS:
        axes[1].axhline(threshold, color="grey", lw=0.6, ls=":")
    axes[1].set(xlabel="rollout step", ylabel="Pearson correlation", title="correlation with the truth")
    axes[0].legend(fontsize=8)
    save(fig, out / "rollout_curves.png")

    fig, axes = plt.subplots(1, max(1, len(figure["spectra"])), figsize=(4.5 * max(1, len(figure["spectra"])), 3.6),
                             squeeze=False, layout="constrained")
    for ax, (level, spectra) in zip(axes[0], figure["spectra"].items()):
        for i, (step, true_e, pred_e) in enumerate(spectra):
            k = np.arange(1, len(true_e))
            ax.loglog(k, true_e[1:], color=f"C{i}", label=f"truth, step {step}")
            ax.loglog(k, np.maximum(pred_e[1:], 1e-30), color=f"C{i}", ls="--", label=f"prediction, step {step}")
        ax.set(xlabel="wavenumber k", ylabel="E(k)", title=f"energy spectrum ({level})")
        ax.legend(fontsize=7)
    save(fig, out / "spectra.png")

    label, truth, predicted = figure["strip"]
    chosen = sorted({0, len(truth) // 4, len(truth) // 2, len(truth) - 1})
    fig, axes = plt.subplots(3, len(chosen), figsize=(3.2 * len(chosen), 7.5), squeeze=False, layout="constrained")
    for column, j in enumerate(chosen):
        t, p = truth[j, 0], predicted[j, 0]
        e = p - t
        for row, (data, name) in enumerate(((t, "truth"), (p, "prediction"), (e, "error"))):
            ax = axes[row, column]
            if data.ndim == 1:
                ax.plot(data)
                if row < 2:
                    ax.set_ylim(float(np.nanmin(truth[j, 0])) - 0.1, float(np.nanmax(truth[j, 0])) + 0.1)
            else:
                lim = float(np.nanmax(np.abs(t))) or 1.0
                reach = float(np.nanmax(np.abs(e))) if np.isfinite(e).any() else 1.0
                vmin, vmax = (-lim, lim) if row < 2 else (-reach or -1, reach or 1)
                ax.imshow(data.T, origin="lower", cmap="RdBu_r", vmin=vmin, vmax=vmax)
                ax.set_xticks([])
                ax.set_yticks([])
            ax.set_title(f"{label} {name}, step {j + 1}", fontsize=8)
    save(fig, out / "strips.png")
    return ["rollout_curves.png", "spectra.png", "strips.png"]
