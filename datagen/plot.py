"""PNG grid of a few samples of a Poisson dataset: coefficient, mask, source, solution."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pdekit.atomic import atomic_path
from pdekit.data import level_names, open_poisson


def plot_poisson(path, out=None, samples: int = 4) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    out = Path(out) if out else path.with_suffix(".png")
    with open_poisson(path) as h5:
        count = min(samples, h5["u"].shape[0])
        if h5.attrs["dim"] == 3:  # middle slice along z
            take = lambda key, i: h5[key][i][..., h5[key].shape[-1] // 2]  # noqa: E731
        else:
            take = lambda key, i: h5[key][i]  # noqa: E731
        levels = level_names(h5)
        fig, axes = plt.subplots(count, 4, figsize=(12, 3 * count), squeeze=False)
        for i in range(count):
            mask = take("mask", i).astype(bool)
            level = levels[i]
            panels = (("a", np.log10(take("a", i)), "log10 a"), ("mask", mask, "mask"),
                      ("f", take("f", i), "f"), ("u", np.where(mask, take("u", i), np.nan), "u"))
            for ax, (key, data, title) in zip(axes[i], panels):
                im = ax.imshow(np.asarray(data, float).T, origin="lower", cmap="viridis" if key != "f" else "RdBu_r")
                ax.set_title(f"{title} (sample {i}, {level})", fontsize=9)
                ax.set_xticks([])
                ax.set_yticks([])
                fig.colorbar(im, ax=ax, fraction=0.046)
        fig.tight_layout()
        with atomic_path(out, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=80)
        plt.close(fig)
    return out
