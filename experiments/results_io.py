"""Shared by the benchmark scripts: print a markdown table; write a results file or figure atomically."""
import json
import os
import sys
from pathlib import Path

from pdekit.files.atomic import atomic_path
from pdekit.files.figures import save_figure  # noqa: F401 (the scripts take it from here)


def refuse(message: str):
    """A bad argument: one line naming it, exit status 2, before any work."""
    print(f"{Path(sys.argv[0]).stem}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def run_script(main) -> None:
    """A script's entry point: pdekit's own errors (bad names, missing or foreign files, refused
    settings) and a missing file end in one line with exit status 2, Ctrl-C with 130."""
    from pdekit.files.dataset import DatasetFormatError
    from pdekit.errors import PdekitError

    try:
        main()
    except (PdekitError, DatasetFormatError, FileNotFoundError, NotADirectoryError) as err:
        refuse(str(err).splitlines()[0] if str(err) else type(err).__name__)
    except KeyboardInterrupt:
        print(f"{Path(sys.argv[0]).stem}: interrupted", file=sys.stderr)
        raise SystemExit(130) from None


def enter_base(args, runs: str) -> tuple[Path, Path]:
    """For studies that train from configs: resolve ``--out`` where it was given, move into
    ``--base`` (the configs' relative ``runs/`` paths live there) and make ``runs``; returns both
    as absolute paths."""
    if not Path(args.base).is_dir():
        refuse(f"--base {args.base} is not a folder")
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

