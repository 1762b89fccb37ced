"""Figures of datasets: a PNG grid of a few samples (Poisson: coefficient, mask, source, solution;
time series: snapshots over time, plus drag/lift for channel flows) and an animation of one
trajectory (MP4 when ffmpeg is available, else GIF through Pillow)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pdekit.files.atomic import atomic_path
from pdekit.files.dataset import LABELS_PDE, is_timeseries, level_names, open_dataset, open_poisson
from pdekit.files.figures import pyplot, save_figure


def plot_poisson(path, out=None, samples: int = 4) -> Path:
    plt = pyplot()

    path = Path(path)
    out = Path(out) if out else path.with_suffix(".png")
    with open_poisson(path) as h5:
        count = min(samples, h5["u"].shape[0])
        where = ""
        if h5.attrs["dim"] == 3:  # middle slice along z, named in the titles
            nz = h5["u"].shape[-1]
            take = lambda key, i: h5[key][i][..., nz // 2]  # noqa: E731
            where = f", slice z index {nz // 2} of {nz}"
        else:
            take = lambda key, i: h5[key][i]  # noqa: E731
        levels = level_names(h5)
        fig, axes = plt.subplots(count, 4, figsize=(12, 3 * count), squeeze=False)
        for i in range(count):
            mask = take("mask", i).astype(bool)
            level = levels[i]
            f = take("f", i)
            reach = float(np.abs(f).max()) or 1.0
            # (title, data, colour map, limits): the mask on a fixed 0/1 scale (a constant mask shows
            # as one colour), the source on a diverging scale centred at 0
            panels = (("log10 a", np.log10(take("a", i)), "viridis", (None, None)),
                      ("mask (1 = active)", mask, "gray", (0, 1)), ("f", f, "RdBu_r", (-reach, reach)),
                      ("u", np.where(mask, take("u", i), np.nan), "viridis", (None, None)))
            for ax, (title, data, cmap, (lo, hi)) in zip(axes[i], panels):
                im = ax.imshow(np.asarray(data, float).T, origin="lower", cmap=cmap, vmin=lo, vmax=hi,
                               interpolation="nearest")
                ax.set_title(f"{title}\nsample {i} ({level}){where}", fontsize=9)
                ax.set_xticks([])
                ax.set_yticks([])
                fig.colorbar(im, ax=ax, fraction=0.046)
        fig.tight_layout()
        save_figure(fig, out, dpi=80)
    return out


def plot_labels(path, out=None) -> Path:
    """Feynman–Kac labels: label against the exact value with ±2 standard errors, and the
    standardised error (label − exact)/stderr at the points (the first two coordinates)."""
    plt = pyplot()

    path = Path(path)
    out = Path(out) if out else path.with_suffix(".png")
    with open_dataset(path) as h5:
        points, value, stderr, exact = (h5[k][()] for k in ("points", "value", "stderr", "exact"))
        title = f"{h5.attrs['problem']}: {h5.attrs['sampler']}, {int(h5.attrs['paths'])} paths per label"
    known = np.isfinite(exact)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), layout="constrained")
    if known.any():
        axes[0].errorbar(exact[known], value[known], yerr=2 * stderr[known], fmt=".", ms=3, lw=0.6)
        low, high = float(np.min(exact[known])), float(np.max(exact[known]))
        axes[0].plot([low, high], [low, high], "k:", lw=0.8)
        axes[0].set(xlabel="exact u(x)", ylabel="label ± 2 stderr")
        with np.errstate(divide="ignore", invalid="ignore"):  # a point within ε of the boundary: every walk agrees
            z = np.where(stderr > 0, (value - exact) / np.where(stderr > 0, stderr, 1.0), np.nan)
        limit = max(4.0, float(np.nanmax(np.abs(z[known]), initial=0.0)))
        image = axes[1].scatter(points[known, 0], points[known, 1] if points.shape[1] > 1 else value[known],
                                c=z[known], cmap="RdBu_r", vmin=-limit, vmax=limit, s=12)
        fig.colorbar(image, ax=axes[1], label="(label − exact) / stderr")
    else:
        image = axes[1].scatter(points[:, 0], points[:, 1] if points.shape[1] > 1 else value, c=value, s=12)
        fig.colorbar(image, ax=axes[1], label="label")
        axes[0].hist(stderr, bins=30)
        axes[0].set(xlabel="standard error", ylabel="labels")
    axes[1].set(xlabel="x₁", ylabel="x₂" if points.shape[1] > 1 else "label", aspect="equal" if points.shape[1] > 1 else "auto")
    fig.suptitle(title)
    save_figure(fig, out, dpi=80)
    return out


def plot(path, out=None, samples: int = 4, *, animate: bool = True, trajectory: int = 0) -> list[Path]:
    """Figures for any pdekit dataset; returns the files written."""
    with open_dataset(path) as h5:
        timeseries, labels = is_timeseries(h5), h5.attrs["pde"] == LABELS_PDE
    if labels:
        return [plot_labels(path, out)]
    if not timeseries:
        return [plot_poisson(path, out, samples)]
    return plot_timeseries(path, out, samples, animate=animate, trajectory=trajectory)


def _frames(h5, i: int):
    """(title, frames (T, ...) as numpy, mask or None, kind) of sample ``i`` for display."""
    if "vorticity" in h5:
        return "vorticity", h5["vorticity"][i], None
    if "velocity" in h5:
        velocity = h5["velocity"][i].astype(float)  # (T, 2, nx, ny)
        spacing = h5.attrs["spacing"]
        mask = h5["mask"][i].astype(bool)
        curl = np.gradient(velocity[:, 1], spacing[0], axis=1) - np.gradient(velocity[:, 0], spacing[1], axis=2)
        return "vorticity", np.where(mask, curl, np.nan), mask
    return "u", h5["u"][i], None


def _image(ax, data, title, limit):
    im = ax.imshow(np.asarray(data, float).T, origin="lower", cmap="RdBu_r", vmin=-limit, vmax=limit,
                   interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    return im


def plot_timeseries(path, out=None, samples: int = 4, *, animate: bool = True, trajectory: int = 0) -> list[Path]:
    plt = pyplot()

    path = Path(path)
    out = Path(out) if out else path.with_suffix(".png")
    written = []
    with open_dataset(path) as h5:
        n, t = h5["level"].shape[0], h5["t"][()]
        if not 0 <= trajectory < n:
            raise ValueError(f"--trajectory {trajectory} out of range: the file has {n} samples")
        levels = level_names(h5)
        count = min(samples, n)
        columns = np.unique(np.linspace(0, len(t) - 1, min(6, len(t))).round().astype(int))
        one_d = int(h5.attrs["dim"]) == 1
        aspect = 1.0 if one_d else _aspect(h5)
        wide = aspect >= 2  # channels: snapshots stacked down a column per sample
        if one_d:
            fig, axes = plt.subplots(count, 1, squeeze=False, figsize=(8, 2.2 * count), layout="constrained")
        elif wide:  # size the canvas from the panels (width w, height w / aspect + a title line) so they fill it
            w = 4.5
            fig, axes = plt.subplots(len(columns), count, squeeze=False, layout="constrained",
                                     figsize=((w + 0.9) * count, (w / aspect + 0.35) * len(columns)))
            axes = axes.T  # axes[sample, snapshot] either way
        else:
            fig, axes = plt.subplots(count, len(columns), squeeze=False, figsize=(2.6 * len(columns), 2.4 * count),
                                     layout="constrained")
        for i in range(count):
            name, frames, _ = _frames(h5, i)
            if one_d:
                x = np.arange(frames.shape[-1]) * h5.attrs["spacing"][0]
                for j in columns:
                    axes[i, 0].plot(x, frames[j], label=f"t = {t[j]:.3g}", lw=1)
                axes[i, 0].set_title(f"sample {i} ({levels[i]})", fontsize=8)
                axes[i, 0].legend(fontsize=6, ncol=len(columns))
                continue
            limit = float(np.nanpercentile(np.abs(frames), 99.5)) or 1.0
            for ax, j in zip(axes[i], columns):
                im = _image(ax, frames[j], f"{name}, sample {i} ({levels[i]}), t = {t[j]:.3g}", limit)
            fig.colorbar(im, ax=axes[i].tolist(), fraction=0.046 if not wide else 0.02)
        save_figure(fig, out, dpi=80)
        written.append(out)
        if "drag" in h5:
            written.append(_plot_forces(h5, out.with_name(out.stem + "-forces.png"), trajectory))
        if animate:
            written.append(_animate(h5, out, trajectory))
    return written


def _aspect(h5) -> float:
    shape = h5[str(h5.attrs["fields"][0])].shape[-2:]
    return max(1.0, shape[0] / shape[1])


def _plot_forces(h5, out: Path, i: int) -> Path:
    import matplotlib.pyplot as plt

    t = h5["t_force"][()]
    fig, axes = plt.subplots(2, 1, figsize=(8, 4.5), sharex=True)
    for k in range(int(h5["n_obstacles"][i])):
        axes[0].plot(t, h5["drag"][i, :, k], lw=1, label=f"obstacle {k + 1}")
        axes[1].plot(t, h5["lift"][i, :, k], lw=1)
    axes[0].set_ylabel("drag coefficient")
    axes[1].set_ylabel("lift coefficient")
    axes[1].set_xlabel("t (after the warm-up)")
    axes[0].set_title(f"sample {i}, Re = {float(h5['reynolds'][i]):g}", fontsize=9)
    if int(h5["n_obstacles"][i]):
        axes[0].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out, dpi=80)
    return out


def _animate(h5, out: Path, i: int) -> Path:
    import matplotlib.pyplot as plt
    from matplotlib import animation

    name, frames, _ = _frames(h5, i)
    t = h5["t"][()]
    mp4 = animation.writers.is_available("ffmpeg")
    target = out.with_name(f"{out.stem}-trajectory{i}" + (".mp4" if mp4 else ".gif"))
    writer = animation.FFMpegWriter(fps=10) if mp4 else animation.PillowWriter(fps=10)
    fig, ax = plt.subplots(figsize=(6 * (_aspect(h5) if frames.ndim == 3 else 1), 4))
    with atomic_path(target, suffix=target.suffix) as tmp, writer.saving(fig, str(tmp), dpi=70):
        if frames.ndim == 2:  # 1-D: a moving line
            x = np.arange(frames.shape[-1]) * h5.attrs["spacing"][0]
            (line,) = ax.plot(x, frames[0])
            ax.set_ylim(float(np.min(frames)) * 1.1, float(np.max(frames)) * 1.1)
            for j in range(len(t)):
                line.set_ydata(frames[j])
                ax.set_title(f"{name}, sample {i}, t = {t[j]:.3g}")
                writer.grab_frame()
        else:
            limit = float(np.nanpercentile(np.abs(frames), 99.5)) or 1.0
            im = _image(ax, frames[0], "", limit)
            for j in range(len(t)):
                im.set_data(np.asarray(frames[j], float).T)
                ax.set_title(f"{name}, sample {i}, t = {t[j]:.3g}", fontsize=9)
                writer.grab_frame()
    plt.close(fig)
    return target
