"""Config files of ``pdekit fit``: read with a safe YAML loader before LightningCLI (and torch) load,
so a missing file or a syntax error is one line, at once; and composed: a config that says
``include: trainer.yaml`` (a path relative to it) is read on top of that file, as if both were given
with ``--config`` in that order."""
from __future__ import annotations

from pathlib import Path

from pdekit.errors import ConfigError


def check_config_files(argv: list[str], _depth: int = 0) -> None:
    """Read every ``--config``/``-c`` file with a safe YAML loader first, so a missing file or a
    syntax error is reported in one line naming the file and line (jsonargparse would bury it
    under the full usage text)."""
    import yaml

    from pdekit.errors import yaml_problem

    paths = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("--config", "-c")]
    paths += [a.split("=", 1)[1] for a in argv if a.startswith("--config=")]
    if _depth > 8:
        raise ConfigError(f"config files include each other more than 8 deep ({paths[0]})")
    for path in paths:
        if Path(path).is_dir():
            raise ConfigError(f"config {path} is a folder, not a YAML file")
        try:
            with open(path) as handle:
                content = yaml.safe_load(handle)
        except FileNotFoundError:
            raise ConfigError(f"no such config file: {path}") from None
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"cannot read config {path}: {getattr(err, 'strerror', None) or err}") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"{path} is not valid YAML: {yaml_problem(err)}") from None
        if content is not None and not isinstance(content, dict):
            raise ConfigError(f"{path} must hold a mapping of settings, not a {type(content).__name__}")
        if isinstance(content, dict) and "config" in content:
            raise ConfigError(f"{path}: write `include: FILE` to build on another config (a `config:` key loses "
                              "the included file's trainer settings)")
        included = (content or {}).get("include")
        if included is not None:
            if not isinstance(included, str):
                raise ConfigError(f"{path}: include must name one YAML file, got {included!r}")
            check_config_files(["--config", str(Path(path).parent / included)], _depth + 1)


def expand_includes(argv: list[str]) -> list[str]:
    """``--config main.yaml`` with ``include: base.yaml`` in it → ``--config base.yaml --config main.yaml``
    (recursively; later files override earlier ones key by key)."""
    import yaml

    def chain(path: Path, depth: int = 0) -> list[str]:
        content = yaml.safe_load(path.read_text()) or {}
        included = content.get("include") if isinstance(content, dict) else None
        before = chain(path.parent / included, depth + 1) if included and depth < 8 else []
        return [*before, "--config", str(path)]

    out, i = [], 0
    while i < len(argv):
        if argv[i] in ("--config", "-c") and i + 1 < len(argv):
            out += chain(Path(argv[i + 1]))
            i += 2
        elif argv[i].startswith("--config="):
            out += chain(Path(argv[i].split("=", 1)[1]))
            i += 1
        else:
            out.append(argv[i])
            i += 1
    return out
