"""`pdekit evaluate`: a trained checkpoint on a dataset → ``metrics.json`` (overall and per level)
and PNG figures.  Checkpoints are read with ``weights_only=True`` and must match the data."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from pdekit.files.atomic import atomic_path
from pdekit.files.dataset import grid_of, levels_in, open_dataset, open_poisson
from pdekit.files.figures import pyplot, save_figure
from pdekit.learning.checkpoints import CheckpointError, load_task
from pdekit.learning.datamodules import FieldSamples, TimeSeriesWindows
from pdekit.learning.evaluation.metrics import poisson_relative_residual, relative_l2


def check_data(info: dict, path) -> None:
    """Refuse data the model was not trained for (other PDE, dimension or fields)."""
    expected = info.get("data") or {}
    with open_dataset(path) as h5:
        pde, dim, fields = str(h5.attrs["pde"]), int(h5.attrs["dim"]), set(h5)
    if expected.get("pde") not in (None, pde):
        raise CheckpointError(f"the model was trained on pde={expected['pde']!r} data; {path} holds {pde!r}")
    if expected.get("dim") not in (None, dim):
        raise CheckpointError(f"the model was trained on {expected['dim']}-D data; {path} is {dim}-D")
    missing = sorted((set(expected.get("inputs", [])) | set(expected.get("target", []))) - fields)
    if missing:
        raise CheckpointError(f"{path} lacks the field(s) {missing} the model reads")


def evaluate(ckpt, data, out, *, batch_size: int = 16, device: str = "cpu", figures: int = 4,
             rollout: bool = False, steps: int | None = None) -> dict:
    """Evaluate ``ckpt`` on one or more dataset files (levels are pooled by name across files):
    static data → errors and residuals; time series → full-trajectory rollout errors."""
    task, info = load_task(ckpt)
    if not isinstance(info.get("data"), dict):  # what the model was trained on decides what it is checked against
        raise CheckpointError(f"{ckpt} records no training data (its 'data' record is "
                              f"{type(info.get('data')).__name__}): pdekit evaluate cannot check the files against it")
    files = [] if data is None else [data] if isinstance(data, (str, Path)) else list(data)
    if (info.get("data") or {}).get("problem"):  # a solver of one analytic problem (GP-HM, FK-PINN)
        if files:
            raise CheckpointError(f"{ckpt} solves the analytic problem {info['data']['problem']!r}: evaluate it "
                                  "without --data (the exact solution is known)")
        if rollout or steps is not None:
            raise CheckpointError(f"--rollout evaluates autoregressive models on time-series files; {ckpt} solves "
                                  f"the analytic problem {info['data']['problem']!r}")
        from pdekit.learning.evaluation.problems import evaluate_problem_solver

        return evaluate_problem_solver(task, dict(info, path=str(ckpt)), out, device=device)
    if not files:
        raise CheckpointError(f"{ckpt} holds a {info['task']}: give the dataset files to evaluate it on with --data")
    if not hasattr(task, "predict_fields"):  # operator-learning, autoregressive and NPSolver tasks
        raise CheckpointError(f"{ckpt} holds a {info['task']}, which does not predict solutions: pdekit evaluate takes "
                              "operator-learning and autoregressive checkpoints (use pdekit.learning.solvers.load for a "
                              "learned preconditioner)")
    for path in files:
        check_data(info, path)
    task = task.to(device)
    suite = None
    if info["data"].get("timeseries"):
        if steps is not None:
            check_rollout_steps(files, steps)
        metrics, shown = evaluate_rollouts(task, info["data"], files, device=device, figures=figures)
        if rollout:
            from pdekit.learning.evaluation.rollout import evaluate_rollout_suite

            suite, suite_figure = evaluate_rollout_suite(task, info["data"], files, device=device, steps=steps)
            metrics["rollout_suite"] = suite
    elif rollout:
        raise CheckpointError("--rollout evaluates autoregressive models on time-series files; "
                              f"{ckpt} is a {info['task']} trained on static data")
    else:
        metrics, shown = _evaluate_static(task, info["data"], files, batch_size, device, figures)
    metrics = {"checkpoint": str(ckpt), "data": [str(p) for p in files], "task": info["task"], **metrics,
               "figure_samples": [label for label, *_ in shown]}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "metrics.json") as tmp:
        tmp.write_text(json.dumps(metrics, indent=2))
    _figures(out, shown, metrics)
    if suite is not None:
        from pdekit.learning.evaluation.rollout import rollout_figures

        rollout_figures(out, suite, suite_figure, _save)
    return metrics


def _summary(per_sample: dict, chosen) -> dict:
    return {"samples": int(chosen.sum()),
            **{f"{k}_mean": float(v[chosen].mean()) for k, v in per_sample.items()},
            **{f"{k}_median": float(np.median(v[chosen])) for k, v in per_sample.items()}}


MAX_ROLLOUT_FACTOR = 100  # --steps beyond the stored horizon: at most this many times it
MAX_ROLLOUT_BYTES = 4 * 2**30  # one trajectory's rollout is kept in memory (float64) for its metrics


def check_rollout_steps(files, steps: int) -> None:
    """Refuse a rollout length whose work or memory is out of proportion to the data, up front
    (``--steps 10000000`` would run for days, then run out of memory)."""
    for path in files:
        with open_dataset(path) as h5:
            stored = h5[str(h5.attrs["fields"][0])].shape[1]
            per_step = sum(int(np.prod(h5[str(f)].shape[2:])) for f in h5.attrs["fields"])  # values per snapshot
        limit = MAX_ROLLOUT_FACTOR * stored
        needed = steps * per_step * 8
        if steps > limit or needed > MAX_ROLLOUT_BYTES:
            raise CheckpointError(f"--steps {steps} is too long for {path}: at most {limit} ({MAX_ROLLOUT_FACTOR}x "
                                  f"its {stored} snapshots) and {MAX_ROLLOUT_BYTES // 2**30} GiB per trajectory "
                                  f"(this needs {needed / 2**30:.1f} GiB)")


def evaluate_rollouts(task, signature: dict, files, *, device="cpu", figures: int = 4):
    """Roll each trajectory out from its first ``history`` snapshots to its end; relative L2 error
    per rollout step, overall and per level."""
    levels = levels_in(files)
    history = int(signature["history"])
    curves, codes, shown = [], [], []
    quota = max(1, -(-figures // len(files)))  # samples.png shows trajectories of every file
    with torch.no_grad():
        for path in files:
            windows = TimeSeriesWindows(path, signature["inputs"], history, 1, levels)
            for sample in tqdm(range(windows.samples), desc=Path(path).name, unit="trajectory", leave=False,
                               disable=None):
                truth = windows.snapshots(sample, 0, windows.steps)
                mask = windows.mask(sample)[None].to(device)
                x = truth[:history].flatten(0, 1)[None].to(device)
                predicted = task.rollout(x, mask, windows.steps - history)[0].cpu()
                curves.append(relative_l2(predicted, truth[history:]).double().numpy())
                codes.append(windows.level_codes[sample])
                if sample < quota:
                    shown.append((f"{Path(path).stem}:{sample} last step", truth[-1, 0].numpy(), predicted[-1, 0].numpy(),
                                  mask[0].cpu().numpy()))
    curves, codes = np.stack(curves), np.asarray(codes)
    per_sample = {"rollout_rel_l2": curves.mean(1), "final_rel_l2": curves[:, -1]}
    rollout = {"step": list(range(1, curves.shape[1] + 1)), "rel_l2_mean": curves.mean(0).tolist(),
               "per_level": {n: curves[codes == c].mean(0).tolist() for c, n in enumerate(levels) if (codes == c).any()}}
    return {"overall": _summary(per_sample, np.ones(len(codes), bool)),
            "per_level": {n: _summary(per_sample, codes == c) for c, n in enumerate(levels) if (codes == c).any()},
            "rollout": rollout}, shown


def _evaluate_static(task, signature, files, batch_size, device, figures):
    """Prediction errors and residuals of every sample (static data, e.g. Poisson)."""
    level_names = levels_in(files)
    rel_l2, rel_res, levels, shown = [], [], [], []
    quota = max(1, -(-figures // len(files)))  # samples.png shows samples of every file
    with torch.no_grad():
        for path in files:
            taken = 0
            with open_poisson(path) as h5:
                grid = grid_of(h5)
            samples = FieldSamples(path, signature["inputs"], signature["target"], signature["log_inputs"],
                                   levels=level_names, system=True)
            for batch in tqdm(DataLoader(samples, batch_size=batch_size), desc=Path(path).name, unit="batch",
                              leave=False, disable=None):  # progress in a terminal only
                prediction = task.predict_fields(batch, grid).cpu()
                rel_l2.append(relative_l2(prediction, batch["y"]))
                if prediction.shape[1] == 1:
                    rel_res.append(poisson_relative_residual(prediction[:, 0], grid, batch["a"], batch["f"],
                                                             batch["bc_type"], batch["bc_value"]))
                levels.append(batch["level"])
                for i in range(min(quota - taken, len(prediction))):
                    shown.append((f"{Path(path).stem}:{int(batch['index'][i])}", batch["y"][i, 0].numpy(),
                                  prediction[i, 0].numpy(), batch["mask"][i].numpy()))
                    taken += 1
    per_sample = {"rel_l2": torch.cat(rel_l2).double().numpy()}
    if rel_res:
        per_sample["rel_residual"] = torch.cat(rel_res).double().numpy()
    codes = torch.cat(levels).numpy()
    return {"overall": _summary(per_sample, np.ones(len(codes), bool)),
            "per_level": {n: _summary(per_sample, codes == c) for c, n in enumerate(level_names) if (codes == c).any()}}, shown


def _figures(out: Path, shown, metrics):
    plt = pyplot()

    fig, axes = plt.subplots(len(shown), 3, figsize=(10, 3 * len(shown)), squeeze=False)
    for row, (label, truth, prediction, mask) in zip(axes, shown):
        for ax, panel in zip(row, sample_panels(label, truth, prediction, mask)):
            if panel["data"].ndim == 1:  # 1-D fields: curves
                ax.plot(panel["data"])
                ax.set_ylim(panel["vmin"], panel["vmax"])
            else:
                im = ax.imshow(panel["data"].T, origin="lower", cmap=panel["cmap"], vmin=panel["vmin"],
                               vmax=panel["vmax"])
                fig.colorbar(im, ax=ax, fraction=0.046)
                ax.set_xticks([])
                ax.set_yticks([])
            ax.set_title(panel["title"], fontsize=9)
    _save(fig, out / "samples.png")

    if "rollout" in metrics:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for name, curve in metrics["rollout"]["per_level"].items():
            ax.plot(metrics["rollout"]["step"], curve, label=name)
        ax.set_xlabel("rollout step")
        ax.set_ylabel("relative L2 error")
        ax.set_yscale("log")
        ax.set_title("error vs rollout step")
        _save(fig, out / "rollout.png")

    names = list(metrics["per_level"])
    keys = [k for k in metrics["overall"] if k.endswith("_mean")]
    fig, ax = plt.subplots(figsize=(1.5 + 1.2 * len(names), 3.5))
    width = 0.8 / len(keys)
    for j, key in enumerate(keys):
        ax.bar(np.arange(len(names)) + j * width, [metrics["per_level"][n][key] for n in names], width, label=key)
    ax.set_xticks(np.arange(len(names)) + width * (len(keys) - 1) / 2, names)
    ax.set_yscale("log")
    ax.set_ylabel("mean over samples")
    ax.set_title("error per level")
    _save(fig, out / "per_level.png")


def sample_panels(label: str, truth, prediction, mask) -> list[dict]:
    """Truth, prediction and error of one sample as panels: truth and prediction on one colour
    scale, the error on a diverging scale centred at 0; 3-D fields as their middle z-slice, named
    in the titles; inactive cells blank."""
    truth, prediction, mask = (np.asarray(a, float) for a in (truth, prediction, mask))
    where = ""
    if truth.ndim == 3:
        nz = truth.shape[-1]
        k = nz // 2
        truth, prediction, mask = truth[..., k], prediction[..., k], mask[..., k]
        where = f" (slice z index {k} of {nz})"
    active = mask.astype(bool)
    t, p = np.where(active, truth, np.nan), np.where(active, prediction, np.nan)
    both = np.concatenate([t[np.isfinite(t)], p[np.isfinite(p)]])
    lo, hi = (float(both.min()), float(both.max())) if both.size else (0.0, 1.0)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    error = p - t
    reach = float(np.nanmax(np.abs(error))) if np.isfinite(error).any() else 0.0
    reach = reach if reach > 0 else 1e-12
    return [{"data": t, "cmap": "viridis", "vmin": lo, "vmax": hi, "title": f"{label}: truth{where}"},
            {"data": p, "cmap": "viridis", "vmin": lo, "vmax": hi, "title": f"{label}: prediction{where}"},
            {"data": error, "cmap": "RdBu_r", "vmin": -reach, "vmax": reach,
             "title": f"{label}: error (prediction - truth){where}"}]


def _save(fig, path: Path):

    if fig.axes[0].get_legend_handles_labels()[0] and fig.axes[0].get_legend() is None:
        fig.axes[0].legend(fontsize=8)
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    save_figure(fig, path, dpi=80)


def main(args) -> int:
    out = args.out or str(Path(args.ckpt).resolve().parent / "evaluation")
    metrics = evaluate(args.ckpt, args.data, out, batch_size=args.batch_size, device=args.device,
                       rollout=args.rollout, steps=args.steps)
    if "problem" in metrics:
        residual = f", residual RMS {metrics['residual_rms']:.3e}" if "residual_rms" in metrics else ""
        print(f"{metrics['problem']}: relative L2 {metrics['rel_l2']:.3e}, max error {metrics['max_abs_error']:.3e} "
              f"at {metrics['points']} held-out points{residual}")
        print(f"wrote {out}/metrics.json, solution.png")
        return 0
    overall = metrics["overall"]
    print(f"{metrics['overall']['samples']} samples: " + ", ".join(
        f"{k} {v:.3e}" for k, v in overall.items() if k.endswith("_mean")))
    for name, row in metrics["per_level"].items():
        print(f"  {name:<9} " + ", ".join(f"{k} {v:.3e}" for k, v in row.items() if k.endswith("_mean")))
    if "rollout_suite" in metrics:
        for name, row in metrics["rollout_suite"]["per_level"].items():
            blown = f", blew up in {row['blown_up']} (first at step {row['first_blow_up_step']})" if row["blown_up"] else ""
            print(f"  {name:<9} time until corr < 0.9: {row['time_until_corr_0.9_mean']:.3g}, late spectral error "
                  f"{row['late_spectral_error_mean']:.3g}{blown}")
    print(f"wrote {out}/metrics.json, samples.png, per_level.png" + (", rollout.png" if "rollout" in metrics else "")
          + (", rollout_curves.png, spectra.png, strips.png" if "rollout_suite" in metrics else ""))
    return 0

