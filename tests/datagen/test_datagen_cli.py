"""`datagen poisson` as a user runs it: determinism across workers and shards, resume after a
real kill, one-line errors for bad arguments."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from pdekit.files.dataset import load_system

DATAGEN = str(Path(sys.executable).parent / "datagen")
FIELDS = ("a", "f", "u", "mask", "bc_type", "bc_value", "seed", "sample_index")


def datagen(*args, cwd):
    return subprocess.run([DATAGEN, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300)


def same_arrays(p, q):
    with h5py.File(p) as a, h5py.File(q) as b:
        return all(np.array_equal(a[k][()], b[k][()]) for k in FIELDS)


def test_workers_and_shards_give_identical_data(tmp_path):
    common = ("poisson", "--level", "hard", "--n", 6, "--resolution", 24, "--seed", 5, "--quiet")
    assert datagen(*common, "--out", "one.h5", cwd=tmp_path).returncode == 0
    assert datagen(*common, "--out", "two.h5", "--workers", 2, cwd=tmp_path).returncode == 0
    for i in range(3):
        assert datagen(*common, "--out", f"s{i}.h5", "--shard", f"{i}/3", cwd=tmp_path).returncode == 0
    out = datagen("merge", "s0.h5", "s1.h5", "s2.h5", "--out", "merged.h5", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert same_arrays(tmp_path / "one.h5", tmp_path / "two.h5")
    assert same_arrays(tmp_path / "one.h5", tmp_path / "merged.h5")
    for i in range(6):
        op, b, u = load_system(tmp_path / "merged.h5", i)
        assert float(op.relative_residual(u, b)) <= 1e-10
    bad = datagen("merge", "s0.h5", "s1.h5", "--out", "partial.h5", cwd=tmp_path)
    assert bad.returncode == 2 and "exactly once" in bad.stderr and not (tmp_path / "partial.h5").exists()


def kill_after_parts(args, cwd, count: int) -> dict:
    """Start `datagen *args`, SIGKILL it once ``count`` samples are saved; the saved parts."""
    proc = subprocess.Popen([DATAGEN, *map(str, args)], cwd=cwd)
    parts = Path(cwd) / (str(args[args.index("--out") + 1]) + ".parts")
    deadline = time.time() + 120
    while time.time() < deadline and len(list(parts.glob("sample_*.npz"))) < count:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return {p.name: p.stat().st_mtime_ns for p in parts.glob("sample_*.npz")}


def test_resume_after_kill_finishes_without_redoing(tmp_path):
    args = ("poisson", "--level", "hard", "--n", 60, "--resolution", 48, "--seed", 1, "--quiet", "--out", "run.h5")
    parts = tmp_path / "run.h5.parts"
    finished = kill_after_parts(args, tmp_path, 3)
    assert 3 <= len(finished) < 40 and not (tmp_path / "run.h5").exists()
    refused = datagen(*args, cwd=tmp_path)
    assert refused.returncode == 2 and "--resume" in refused.stderr
    done = datagen(*args, "--resume", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert not parts.exists()
    ref = datagen(*args[:-1], "ref.h5", cwd=tmp_path)
    assert ref.returncode == 0
    assert same_arrays(tmp_path / "run.h5", tmp_path / "ref.h5")


@pytest.mark.parametrize("args,message", [
    (("--level", "impossible"), "unknown level"),
    (("--resolution", 4), "--resolution must be >= 8"),
    (("--n", 0), "--n must be >= 1"),
    (("--out", "/nonexistent-dir/x.h5"), "does not exist"),
])
def test_bad_arguments_are_one_line_errors(tmp_path, args, message):
    base = {"--level": "easy", "--n": 1, "--resolution": 16, "--out": "x.h5"}
    for k, v in zip(args[::2], args[1::2]):
        base[k] = v
    out = datagen("poisson", *[x for kv in base.items() for x in kv], cwd=tmp_path)
    assert out.returncode == 2
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_existing_file_needs_overwrite(tmp_path):
    (tmp_path / "x.h5").write_text("keep me")
    out = datagen("poisson", "--level", "easy", "--n", 1, "--resolution", 16, "--out", "x.h5", cwd=tmp_path)
    assert out.returncode == 2 and "--overwrite" in out.stderr
    assert (tmp_path / "x.h5").read_text() == "keep me"


def test_plot_writes_a_png(tmp_path):
    assert datagen("poisson", "--level", "medium", "--n", 2, "--resolution", 16, "--out", "m.h5", "--quiet",
                   cwd=tmp_path).returncode == 0
    out = datagen("plot", "m.h5", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "m.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    missing = datagen("plot", "nope.h5", cwd=tmp_path)
    assert missing.returncode == 2 and "no such dataset" in missing.stderr


def test_level_from_yaml_spec(tmp_path):
    (tmp_path / "lv.yaml").write_text("name: wide\nbase: hard\ncontrast: 1.0e+4\nobstacles: [1, 2]\n")
    out = datagen("poisson", "--spec", "lv.yaml", "--n", 2, "--resolution", 24, "--out", "w.h5", "--quiet",
                  cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    with h5py.File(tmp_path / "w.h5") as h5:
        spec = json.loads(h5.attrs["config"])["level_spec"]
        assert spec["contrast"] == 1e4 and spec["obstacles"] == [1, 2] and spec["coefficient"] == "piecewise"
        assert h5["a"][0].max() / h5["a"][0].min() == pytest.approx(1e4)
        assert [v.decode() for v in h5["level"][()]] == ["wide", "wide"]
    for i in range(2):
        op, b, u = load_system(tmp_path / "w.h5", i)
        assert float(op.relative_residual(u, b)) <= 1e-10
    (tmp_path / "bad.yaml").write_text("name: x\ncontrast: 0.5\nbase: easy\n")
    bad = datagen("poisson", "--spec", "bad.yaml", "--n", 1, "--resolution", 16, "--out", "b.h5", cwd=tmp_path)
    assert bad.returncode == 2 and "contrast must be in [1" in bad.stderr and not (tmp_path / "b.h5").exists()


@pytest.mark.parametrize("dim", [2, 3])
def test_export_places_values_at_their_nodes(tmp_path, dim):
    import meshio

    assert datagen("poisson", "--level", "medium", "--dim", dim, "--n", 2, "--resolution", 10, "--out", "m.h5",
                   "--quiet", cwd=tmp_path).returncode == 0
    assert datagen("export", "m.h5", "--format", "xdmf", cwd=tmp_path).returncode == 0
    assert datagen("export", "m.h5", "--format", "vtu", cwd=tmp_path).returncode == 0
    with h5py.File(tmp_path / "m.h5") as h5:
        u1, spacing, origin = h5["u"][1], h5.attrs["spacing"], h5.attrs["origin"]
    with meshio.xdmf.TimeSeriesReader(str(tmp_path / "m-paraview.xdmf")) as reader:
        points, cells = reader.read_points_cells()
        assert reader.num_steps == 2 and cells[0].type == ("quad" if dim == 2 else "hexahedron")
        _, point_data, _ = reader.read_data(1)
    vtu = meshio.read(tmp_path / "m-paraview" / "sample_0001.vtu")
    node = np.rint((points[:, :dim] - origin) / spacing).astype(int)  # recover each point's grid index
    for values in (point_data["u"], vtu.point_data["u"]):
        assert np.array_equal(values, u1[tuple(node.T)])
    assert cells[0].data.shape[0] == 9 ** dim  # (n-1)^dim cells


def test_datagen_cost_summarises_recorded_solver_time_per_level(tmp_path, capsys):
    """With plain CG the recorded cost grows with difficulty (hard needs more iterations than
    easy); `datagen cost` reports it per level, totals equal to the files' own records."""
    import h5py
    import numpy as np

    from datagen.cli import main
    from datagen.cost import cost_by_level

    files = []
    for level in ("easy", "hard"):
        path = tmp_path / f"{level}.h5"
        assert main(["poisson", "--level", level, "--n", "3", "--resolution", "24", "--solver", "cg", "--out", path,
                     "--quiet"]) == 0
        files.append(path)
    rows = {row["level"]: row for row in cost_by_level(files)}
    assert rows["hard"]["mean_iterations"] > 2 * rows["easy"]["mean_iterations"] > 0
    for level, path in zip(("easy", "hard"), files):
        with h5py.File(path) as h5:
            assert rows[level]["total_seconds"] == pytest.approx(float(np.sum(h5["solve_seconds"][()])))
    capsys.readouterr()
    assert main(["cost", *files]) == 0
    text = capsys.readouterr().out
    assert "easy" in text and "hard" in text and "iterations" in text
    assert main(["cost", tmp_path / "absent.h5"]) == 2


def test_progress_bar_counts_whole_samples_and_shows_the_rate(tmp_path, capsys):
    from datagen.cli import main

    assert main(["poisson", "--level", "easy", "--n", "3", "--resolution", "16", "--out", str(tmp_path / "p.h5")]) == 0
    err = capsys.readouterr().err
    assert "3/3" in err and "3.0/3" not in err and "sample/s" in err, err[-500:]


def test_the_lanczos_bar_ends_at_its_total(tmp_path, capsys):
    from datagen.cli import main

    assert main(["ritz", "--level", "easy", "--resolution", "16", "--n", "4", "--lanczos-steps", "50",
                 "--out", str(tmp_path / "r.h5")]) == 0
    assert "50/50" in capsys.readouterr().err
