"""The console scripts are installed and work."""
import shutil
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def run(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_pdekit_check_solves_known_problem():
    exe = shutil.which("pdekit", path=str(BIN)) or "pdekit"
    out = run(exe, "check", "--resolution", "32")
    assert out.returncode == 0, out.stderr
    assert "max error" in out.stdout


def test_pdekit_info_and_datagen_help():
    assert "pdekit" in run(str(BIN / "pdekit"), "info").stdout
    assert run(str(BIN / "datagen"), "--help").returncode == 0
