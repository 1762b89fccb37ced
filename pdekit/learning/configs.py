"""Config files of ``pdekit fit``: read with a safe YAML loader before LightningCLI (and torch) load,
so a missing file or a syntax error is one line, at once."""
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
        included = (content or {}).get("config")  # a config composed on a shared one (relative to this file)
        if included is not None:
            if not isinstance(included, str):
                raise ConfigError(f"{path}: config must name one YAML file, got {included!r}")
            check_config_files(["--config", str(Path(path).parent / included)], _depth + 1)
