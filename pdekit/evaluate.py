"""`pdekit evaluate`: a trained checkpoint on a dataset → ``metrics.json`` (overall and per level)
and PNG figures.  Checkpoints are read with ``weights_only=True`` and must match the data."""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from pdekit.data import grid_of, open_poisson
from pdekit.datamodule import FieldSamples
from pdekit.errors import PdekitError
from pdekit.metrics import poisson_relative_residual, relative_l2
from pdekit.tasks import import_class


class CheckpointError(PdekitError, ValueError):
    """A checkpoint that is not pdekit's, or does not fit the model or the data."""


def load_task(path, map_location="cpu") -> tuple[L.LightningModule, dict]:
    """Rebuild the trained task from a checkpoint (``weights_only=True``: no code is unpickled)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such checkpoint: {path}")
    if not zipfile.is_zipfile(path):  # what torch.save writes
        raise CheckpointError(f"{path} is not a torch checkpoint")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # pickle errors name the forbidden global; keep the first line
        raise CheckpointError(f"{path} cannot be loaded with weights_only=True: {str(err).splitlines()[0]}") from None
    info = checkpoint.get("pdekit") if isinstance(checkpoint, dict) else None
    if not info or "task" not in info:
        raise CheckpointError(f"{path} is not a pdekit training checkpoint (no 'pdekit' record)")
    cls = import_class(info["task"])
    if not (isinstance(cls, type) and issubclass(cls, L.LightningModule)):
        raise CheckpointError(f"{path}: task {info['task']} is not a LightningModule")
    hparams = {k: v for k, v in info["hparams"].items() if not k.startswith("_")}
    task = cls(**hparams)
    try:
        task.load_state_dict(checkpoint["state_dict"], strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not fit {info['task']} with the stored hyperparameters "
                              f"({str(err).splitlines()[0]})") from None
    task.data_signature = info.get("data")
    task.levels = (info.get("data") or {}).get("levels", [])
    return task.eval(), info


def check_data(info: dict, path) -> None:
    """Refuse data the model was not trained for (other PDE, dimension or fields)."""
    expected = info.get("data") or {}
    with open_poisson(path) as h5:
        pde, dim, fields = str(h5.attrs["pde"]), int(h5.attrs["dim"]), set(h5)
    if expected.get("pde") not in (None, pde):
        raise CheckpointError(f"the model was trained on pde={expected['pde']!r} data; {path} holds {pde!r}")
    if expected.get("dim") not in (None, dim):
        raise CheckpointError(f"the model was trained on {expected['dim']}-D data; {path} is {dim}-D")
    missing = sorted((set(expected.get("inputs", [])) | set(expected.get("target", []))) - fields)
    if missing:
        raise CheckpointError(f"{path} lacks the field(s) {missing} the model reads")


def _atomic_write(path: Path, write):
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def evaluate(ckpt, data, out, *, batch_size: int = 16, device: str = "cpu", figures: int = 4) -> dict:
    """Evaluate ``ckpt`` on one or more dataset files (levels are pooled by name across files)."""
    task, info = load_task(ckpt)
    files = [data] if isinstance(data, (str, Path)) else list(data)
    for path in files:
        check_data(info, path)
    signature = info["data"]
    task = task.to(device)
    level_names, rel_l2, rel_res, levels, shown = [], [], [], [], []
    with torch.no_grad():
        for path in files:
            with open_poisson(path) as h5:
                grid = grid_of(h5)
                for v in h5["level"][()]:
                    name = v.decode() if isinstance(v, bytes) else str(v)
                    if name not in level_names:
                        level_names.append(name)
            samples = FieldSamples(path, signature["inputs"], signature["target"], signature["log_inputs"],
                                   levels=level_names, system=True)
            for batch in DataLoader(samples, batch_size=batch_size):
                prediction = task(batch["x"].to(device), batch["mask"].to(device)).cpu()
                rel_l2.append(relative_l2(prediction, batch["y"]))
                if prediction.shape[1] == 1:
                    rel_res.append(poisson_relative_residual(prediction[:, 0], grid, batch["a"], batch["f"],
                                                             batch["bc_type"], batch["bc_value"]))
                levels.append(batch["level"])
                for i in range(min(figures - len(shown), len(prediction))):
                    shown.append((f"{Path(path).stem}:{int(batch['index'][i])}", batch["y"][i, 0].numpy(),
                                  prediction[i, 0].numpy(), batch["mask"][i].numpy()))
    per_sample = {"rel_l2": torch.cat(rel_l2).double().numpy()}
    if rel_res:
        per_sample["rel_residual"] = torch.cat(rel_res).double().numpy()
    codes = torch.cat(levels).numpy()

    def summary(chosen):
        return {"samples": int(chosen.sum()),
                **{f"{k}_mean": float(v[chosen].mean()) for k, v in per_sample.items()},
                **{f"{k}_median": float(np.median(v[chosen])) for k, v in per_sample.items()}}

    metrics = {"checkpoint": str(ckpt), "data": [str(p) for p in files], "task": info["task"],
               "overall": summary(np.ones(len(codes), bool)),
               "per_level": {name: summary(codes == c) for c, name in enumerate(level_names) if (codes == c).any()}}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write(out / "metrics.json", lambda tmp: Path(tmp).write_text(json.dumps(metrics, indent=2)))
    _figures(out, shown, metrics, grid.ndim)
    return metrics


def _figures(out: Path, shown, metrics, ndim):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    take = (lambda a: a[..., a.shape[-1] // 2]) if ndim == 3 else (lambda a: a)  # noqa: E731  middle z-slice
    fig, axes = plt.subplots(len(shown), 3, figsize=(10, 3 * len(shown)), squeeze=False)
    for row, (index, truth, prediction, mask) in zip(axes, shown):
        truth, prediction, mask = take(truth), take(prediction), take(mask)
        error = np.where(mask, prediction - truth, np.nan)
        for ax, data, title in zip(row, (np.where(mask, truth, np.nan), np.where(mask, prediction, np.nan), error),
                                   ("truth", "prediction", "error")):
            im = ax.imshow(np.asarray(data, float).T, origin="lower", cmap="RdBu_r" if title == "error" else "viridis")
            ax.set_title(f"{index}: {title}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    _atomic_write(out / "samples.png", lambda tmp: fig.savefig(tmp, dpi=80, format="png"))
    plt.close(fig)

    names = list(metrics["per_level"])
    keys = [k for k in ("rel_l2_mean", "rel_residual_mean") if k in metrics["overall"]]
    fig, ax = plt.subplots(figsize=(1.5 + 1.2 * len(names), 3.5))
    width = 0.8 / len(keys)
    for j, key in enumerate(keys):
        ax.bar(np.arange(len(names)) + j * width, [metrics["per_level"][n][key] for n in names], width, label=key)
    ax.set_xticks(np.arange(len(names)) + width * (len(keys) - 1) / 2, names)
    ax.set_yscale("log")
    ax.set_ylabel("mean over samples")
    ax.set_title("error per level")
    ax.legend(fontsize=8)
    fig.tight_layout()
    _atomic_write(out / "per_level.png", lambda tmp: fig.savefig(tmp, dpi=80, format="png"))
    plt.close(fig)


def main(args) -> int:
    out = args.out or str(Path(args.ckpt).resolve().parent / "evaluation")
    metrics = evaluate(args.ckpt, args.data, out, batch_size=args.batch_size, device=args.device)
    overall = metrics["overall"]
    print(f"{metrics['overall']['samples']} samples: " + ", ".join(
        f"{k} {v:.3e}" for k, v in overall.items() if k.endswith("_mean")))
    for name, row in metrics["per_level"].items():
        print(f"  {name:<9} " + ", ".join(f"{k} {v:.3e}" for k, v in row.items() if k.endswith("_mean")))
    print(f"wrote {out}/metrics.json, samples.png, per_level.png")
    return 0

