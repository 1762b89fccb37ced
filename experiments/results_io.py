"""Shared by the benchmark scripts: write a results file atomically (temporary file, then rename)."""
import json
from pathlib import Path

from pdekit.atomic import atomic_path


def write_json(path, obj) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2))
