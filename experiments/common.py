"""What the benchmarks and studies share: bad flags in one line (:func:`refuse`, :func:`run_script`),
comma lists (:func:`parse_list`), data through datagen's own entry (:func:`make_data`), training through
``pdekit fit``'s (:func:`derive_config`, :func:`fit`), results as tables, JSON and figures."""
import json
import os
import sys
import time
from pathlib import Path

from pdekit.files.atomic import atomic_path
from pdekit.files.figures import pyplot, save_figure  # noqa: F401 (the scripts take them from here)

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "experiments" / "configs"


def refuse(message: str):
    """A bad argument: one line naming it, exit status 2, before any work."""
    print(f"{Path(sys.argv[0]).stem}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def run_script(main) -> None:
    """A script's entry point: pdekit's own errors (bad names, missing or foreign files, refused
    settings) and a missing file end in one line with exit status 2, Ctrl-C with 130."""
    from pdekit.errors import PdekitError
    from pdekit.files.dataset import DatasetFormatError

    try:
        main()
    except (PdekitError, DatasetFormatError, FileNotFoundError, NotADirectoryError, FitFailed) as err:
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
    if not rows:
        print("(none)")
        return
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in rows:
        cells = [f"{v:.3g}" if isinstance(v, float) else "—" if v is None else str(v) for v in row.values()]
        print("| " + " | ".join(cells) + " |")


def parse_list(text: str, flag: str, convert=str, choices=None) -> list:
    """``--flag a,b,c`` as a list (empty items dropped), each converted; a bad item or one outside
    ``choices`` is refused in one line naming the flag."""
    items = [item.strip() for item in str(text).split(",") if item.strip()]
    if choices is not None:
        unknown = sorted(set(items) - set(choices))
        if unknown:
            refuse(f"{flag}: unknown {', '.join(unknown)} (choose from {', '.join(choices)})")
    try:
        return [convert(item) for item in items]
    except ValueError:
        refuse(f"{flag} must be comma-separated {'numbers' if convert in (int, float) else 'values'}, got {text!r}")


def problems_argument(text: str) -> dict:
    """``--problems a,b,module:object`` as {name: Problem}: registered names, or problems of the
    user's own (typed on the command line, so imported deliberately and allow-listed for this
    process, so the data modules and datagen runs the study starts find them too)."""
    from pdekit.learning.registry import allow
    from pdekit.problems import get

    problems = {}
    for name in parse_list(text, "--problems"):
        problems[name] = get(name, deliberate=True)
        if ":" in name:
            allow(name)
    if not problems:
        refuse("--problems: give at least one problem")
    return problems


def make_data(out: Path, command: list[str]) -> Path:
    """``datagen <command> --out <out>`` unless ``out`` exists (samples are pure functions of their
    seeds: an existing file is the same data), through datagen's own entry point."""
    import datagen.cli

    out = Path(out)
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        argv = [*map(str, command), "--out", str(out), "--quiet"]
        print(f"generating: datagen {' '.join(argv)}", flush=True)
        if datagen.cli.main(argv) != 0:
            raise SystemExit(f"datagen {' '.join(argv)} failed")
    return out


def _update(target: dict, changes: dict) -> dict:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _update(target[key], value)
        else:
            target[key] = value
    return target


def derive_config(base, run: Path, changes: dict | None = None, note: str = "") -> Path:
    """A config built on ``base`` (a name under experiments/configs or a path) for a run in folder
    ``run``: it includes ``base``, sets ``trainer.default_root_dir`` (checkpoints and logs follow it)
    and applies ``changes`` (nested mappings, merged key by key).  Written to ``run/config.yaml``."""
    import yaml

    base = Path(base) if str(base).endswith(".yaml") else CONFIGS / f"{base}.yaml"
    run = Path(run).resolve()
    config = _update({"include": str(base.resolve()), "trainer": {"default_root_dir": str(run)}}, changes or {})
    run.mkdir(parents=True, exist_ok=True)
    path = run / "config.yaml"
    with atomic_path(path) as tmp:
        tmp.write_text((f"# {note}\n" if note else "") + yaml.safe_dump(config, sort_keys=False))
    return path


class FitFailed(RuntimeError):
    """A training run that ended in an error (a diverged loss, a refused setting): the message says why."""


def fit(config: Path, *overrides: str, overwrite: bool = True) -> float:
    """``pdekit fit --config <config> [overrides]`` through its Python entry; returns the seconds it
    took.  A run that fails raises :class:`FitFailed` with its one-line reason (:func:`run_script`
    reports it; a study comparing settings that may diverge catches it)."""
    from pdekit.errors import PdekitError
    from pdekit.learning.fit import run

    argv = ["fit", "--config", str(config), *map(str, overrides), *(["--overwrite"] if overwrite else [])]
    saved = list(sys.argv)
    start = time.perf_counter()
    try:
        run(argv)
    except SystemExit as stop:
        if stop.code not in (0, None):
            raise FitFailed(f"pdekit fit --config {config} failed (exit {stop.code})") from None
    except PdekitError as err:
        raise FitFailed(f"pdekit fit --config {config}: {str(err).splitlines()[0]}") from None
    finally:
        sys.argv = saved  # LightningCLI reads sys.argv; the script's own is restored
    return time.perf_counter() - start


def last_checkpoint(run: Path) -> Path:
    """The final checkpoint of a run folder (``<run>/checkpoints/last.ckpt``)."""
    return Path(run) / "checkpoints" / "last.ckpt"


def metrics_csv(run: Path) -> Path:
    """The CSV log of a run folder's latest training."""
    versions = sorted((Path(run) / "logs").glob("version_*"), key=lambda p: int(p.name.split("_")[1]))
    return (versions[-1] if versions else Path(run) / "logs" / "version_0") / "metrics.csv"
