"""Nothing left behind, nothing lost: a failed run removes its parts, an interrupted one keeps
them and says which command continues; --overwrite clears them; unreadable parts are recomputed;
a second run on the same output is refused while the first holds it; files get the umask's
permissions."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import datagen.cli
from datagen import kinds
from datagen import generators, runner
from datagen.generators import config_for

CONFIG = config_for("poisson", "medium", 6, 16, seed=3, dim=2)


def stop_at(monkeypatch, index, error):
    """Make sample ``index`` raise ``error`` (the samples before it are saved)."""
    original = kinds.get("poisson").generate

    def generate(config, indices, seeds, progress=None, parts=None):
        if index in indices:
            raise error
        return original(config, indices, seeds, progress, parts)

    monkeypatch.setattr(kinds.get("poisson"), "generate", generate)


def same(p, q):
    with h5py.File(p) as a, h5py.File(q) as b:
        return all(np.array_equal(a[k][()], b[k][()]) for k in ("a", "f", "u", "mask", "seed"))


def test_interrupt_keeps_parts_and_resume_recomputes_unreadable_ones(tmp_path, monkeypatch):
    out, parts = tmp_path / "run.h5", tmp_path / "run.h5.parts"
    stop_at(monkeypatch, 4, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        runner.run(CONFIG, out, progress=False)
    assert sorted(p.name for p in parts.glob("sample_*.npz")) == [f"sample_{k:08d}.npz" for k in range(4)]
    (parts / "sample_00000001.npz").write_bytes(b"")  # a crash mid-write on a non-atomic file system
    (parts / "sample_00000002.npz").write_bytes(b"PK\x03\x04 garbage")
    monkeypatch.undo()
    with pytest.raises(runner.StaleRunError):  # neither --resume nor --overwrite
        runner.run(CONFIG, out, progress=False)
    spent = runner.run(CONFIG, out, resume=True, progress=False)
    assert spent["samples"] == 4 and not parts.exists()  # 4, 5 and the two unreadable ones
    runner.run(CONFIG, tmp_path / "ref.h5", progress=False)
    assert same(out, tmp_path / "ref.h5")


def test_failure_removes_parts(tmp_path, monkeypatch):
    stop_at(monkeypatch, 3, RuntimeError("solver exploded"))
    with pytest.raises(generators.GenerationError, match="sample 3 .seed 6. failed: solver exploded"):
        runner.run(CONFIG, tmp_path / "run.h5", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_stale_parts_message_names_both_commands_and_overwrite_clears_them(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["poisson", "--level", "medium", "--n", "6", "--resolution", "16", "--seed", "3", "--out", "run.h5",
            "--quiet"]
    stop_at(monkeypatch, 2, KeyboardInterrupt())
    assert datagen.cli.main(argv) == 130
    assert "--resume` continues" in capsys.readouterr().err
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    assert datagen.cli.main(argv) == 2
    err = capsys.readouterr().err
    command = "datagen " + " ".join(argv)
    assert f"`{command} --resume` continues it" in err and f"`{command} --overwrite` starts over" in err
    assert datagen.cli.main(argv + ["--overwrite"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.h5"]


def test_second_run_on_the_same_output_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with runner.run_lock(tmp_path / "run.h5"):  # another run holds it
        code = datagen.cli.main(["poisson", "--level", "easy", "--n", "2", "--resolution", "16", "--out", "run.h5"])
    assert code == 2 and "in use by another run (pid" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # the lock file goes with its holder


def test_sigterm_keeps_parts_and_says_how_to_continue(tmp_path):
    args = ["poisson", "--level", "hard", "--n", "60", "--resolution", "48", "--quiet", "--out", "run.h5"]
    proc = subprocess.Popen([str(Path(sys.executable).parent / "datagen"), *args], cwd=tmp_path,
                            stderr=subprocess.PIPE, text=True)
    parts = tmp_path / "run.h5.parts"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(parts.glob("sample_*.npz"))) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "--resume` continues" in err and "Traceback" not in err
    assert len(list(parts.glob("sample_*.npz"))) >= 2 and not (tmp_path / "run.h5").exists()


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_get_the_umask_permissions(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        runner.run(config_for("poisson", "easy", 2, 16, dim=2), tmp_path / "out.h5", progress=False)
    finally:
        os.umask(old)
    assert (tmp_path / "out.h5").stat().st_mode & 0o777 == mode
