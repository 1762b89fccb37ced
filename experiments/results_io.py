"""Shared by the benchmark scripts: write a results file atomically (temporary file, then rename)."""
import json
from pathlib import Path


def write_json(path, obj) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    tmp.replace(path)
