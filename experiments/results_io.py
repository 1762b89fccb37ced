"""Shared by the benchmark scripts: print a markdown table; write a results file or figure atomically."""
import json
import os
import sys
from pathlib import Path

from pdekit.atomic import atomic_path


def refuse(message: str):
    """A bad argument: one line naming it, exit status 2, before any work."""
    print(f"{Path(sys.argv[0]).stem}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def enter_base(args, runs: str) -> tuple[Path, Path]:
    """For studies that train from configs: resolve ``--out`` where it was given, move into
    ``--base`` (the configs' relative ``runs/`` paths live there) and make ``runs``; returns both
    as absolute paths."""
    out = Path(args.out).resolve()
    os.chdir(args.base)
    folder = Path(runs).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return out, folder


def write_json(path, obj) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2))


def print_table(title, rows) -> None:
    """``rows``: dicts with the same keys, printed as a markdown table under ``title``."""
    print(f"\n{title}")
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in rows:
        cells = [f"{v:.3g}" if isinstance(v, float) else str(v) for v in row.values()]
        print("| " + " | ".join(cells) + " |")


def save_figure(fig, path) -> None:
    """A matplotlib figure as a PNG, written atomically, then closed."""
    import matplotlib.pyplot as plt

    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
