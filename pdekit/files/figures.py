"""Figures: matplotlib on its file-only backend, and PNGs written atomically."""
from __future__ import annotations

from pathlib import Path

from pdekit.files.atomic import atomic_path


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (writes files; needs no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path, dpi: int = 80) -> Path:
    """Write ``fig`` as a PNG to ``path`` atomically (a temporary file renamed over it, with the
    user's umask), then close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=dpi, format="png")
    finally:
        plt.close(fig)
    return path
