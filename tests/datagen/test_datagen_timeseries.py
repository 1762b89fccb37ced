"""`datagen navier-stokes` and `datagen burgers` as a user runs them: the file contract,
determinism across workers, batches and shards, resume after a kill, pressure systems that solve
their own equations, plots, ParaView export, one-line errors."""
import json

import h5py
import numpy as np
import pytest

from pdekit.files.dataset import load_system, open_dataset
from tests.datagen.test_datagen_cli import datagen, kill_after_parts

SPECS = {  # tiny versions of real levels
    "periodic": ("navier-stokes", "--family", "periodic", "base: easy\nt_end: 1.0\ninterval: 0.25\nresolution: 16\n"),
    "obstacles": ("navier-stokes", "--family", "obstacles",
                  "base: medium-medium\nt_end: 0.2\ninterval: 0.1\nwarmup: 0.1\nresolution: 16\nsize: [0.12, 0.15]\n"),
    "burgers": ("burgers", "base: hard\nt_end: 0.2\ninterval: 0.05\nresolution: 64\n"),
}


def command(kind, tmp_path):
    *args, spec = SPECS[kind]
    (tmp_path / f"{kind}.yaml").write_text(spec)
    return (*args, "--spec", f"{kind}.yaml", "--quiet")


def same_data(p, q):
    with h5py.File(p) as a, h5py.File(q) as b:
        keys = [k for k in a if "seconds" not in k]
        return sorted(a) == sorted(b) and all(
            np.array_equal(a[k][()], b[k][()], equal_nan=a[k].dtype.kind == "f") for k in keys)


@pytest.mark.parametrize("kind", ["periodic", "obstacles", "burgers"])
def test_contract_and_identical_data_across_workers_batches_and_shards(tmp_path, kind):
    batch = ("--batch", 2) if kind != "obstacles" else ()
    base = (*command(kind, tmp_path), "--n", 5, "--seed", 3, *batch)
    assert datagen(*base, "--out", "one.h5", cwd=tmp_path).returncode == 0
    assert datagen(*base, "--workers", 2, "--out", "two.h5", cwd=tmp_path).returncode == 0
    for i in range(2):
        assert datagen(*base, "--shard", f"{i}/2", "--out", f"s{i}.h5", cwd=tmp_path).returncode == 0
    merged = datagen("merge", "s1.h5", "s0.h5", "--out", "merged.h5", cwd=tmp_path)
    assert merged.returncode == 0, merged.stderr
    assert same_data(tmp_path / "one.h5", tmp_path / "two.h5")
    assert same_data(tmp_path / "one.h5", tmp_path / "merged.h5")
    if batch:  # another batch size: the same trajectories up to the FFTs' round-off
        assert datagen(*base, "--batch", 3, "--out", "three.h5", cwd=tmp_path).returncode == 0
        with h5py.File(tmp_path / "one.h5") as a, h5py.File(tmp_path / "three.h5") as b:
            key = str(a.attrs["fields"][0])
            assert np.allclose(a[key][()], b[key][()], rtol=0, atol=1e-6 * np.abs(a[key][()]).max())
    with open_dataset(tmp_path / "one.h5") as h5:  # the documented contract
        fields = list(h5.attrs["fields"])
        for key in ("pde", "dim", "resolution", "domain_size", "spacing", "dt", "generator_version", "config"):
            assert key in h5.attrs
        for key in ("t", "level", "seed", "wall_seconds", "steps"):
            assert key in h5
        assert list(h5["seed"][()]) == [3, 4, 5, 6, 7]
        t = h5["t"][()]
        assert np.allclose(np.diff(t), h5.attrs["dt"])
        data = h5[fields[0]][()]
        assert data.shape[:2] == (5, len(t)) and np.isfinite(data).all()
        assert not np.array_equal(data[0], data[1])  # different seeds, different trajectories
        if kind == "obstacles":
            assert fields == ["velocity", "pressure"] and data.shape[2] == 2
            for key in ("reynolds", "n_obstacles", "pressure_iterations", "drag", "lift", "mask", "t_force"):
                assert key in h5
            assert h5["drag"].shape == (5, len(h5["t_force"]), 4)  # steps x max obstacles (NaN padded)
            counts = h5["n_obstacles"][()]
            assert all(np.isfinite(h5["drag"][i, :, :c]).all() and np.isnan(h5["drag"][i, :, c:]).all()
                       for i, c in enumerate(counts))
            assert (h5["max_relative_divergence"][()] <= 1e-6 * (1 + 1e-6)).all()
            velocity = h5["velocity"][()]
            assert (velocity[:, :, :, h5["mask"][0] == 0][0] == 0).all()  # zero inside the obstacles
        else:
            assert "viscosity" in h5


def test_pressure_systems_file_solves_its_own_equations(tmp_path):
    out = datagen(*command("obstacles", tmp_path), "--n", 2, "--out", "ns.h5", "--pressure-systems", "p.h5",
                  "--pressure-tol", "1e-9", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    with h5py.File(tmp_path / "ns.h5") as ns, open_dataset(tmp_path / "p.h5") as p:
        assert p.attrs["pde"] == "poisson" and p["u"].shape[0] == 2 * len(ns["t"]) - 2  # the snapshots after t = 0
        assert np.array_equal(p["mask"][0], ns["mask"][0].astype(bool))
        assert json.loads(p.attrs["config"])["kind"] == "pressure_systems"
        assert np.allclose(p["u"][1], ns["pressure"][0, 2], atol=1e-6 * np.abs(p["u"][1]).max())
    for i in range(4):
        op, b, u = load_system(tmp_path / "p.h5", i)
        assert float(op.relative_residual(u, b)) <= 1e-9 * (1 + 1e-6)
    # DCDM training vectors from this very operator (`datagen ritz --system FILE:INDEX`)
    out = datagen("ritz", "--system", "p.h5:1", "--n", 12, "--lanczos-steps", 40, "--out", "r.h5", "--quiet",
                  cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    pressure_op, _, _ = load_system(tmp_path / "p.h5", 1)
    for i in (0, 11):
        op, b, u = load_system(tmp_path / "r.h5", i)
        assert np.array_equal(op.bc_type, pressure_op.bc_type) and abs(float(b.norm()) - 1) < 1e-12
        assert float(op.relative_residual(u, b)) <= 1e-10
    bad = datagen("ritz", "--system", "p.h5:x", "--n", 2, "--out", "r2.h5", cwd=tmp_path)
    assert bad.returncode == 2 and "FILE:INDEX" in bad.stderr


def test_resume_after_kill(tmp_path):
    args = (*command("obstacles", tmp_path), "--n", 12, "--out", "run.h5")
    finished = kill_after_parts(args, tmp_path, 2)
    assert 2 <= len(finished) < 12 and not (tmp_path / "run.h5").exists()
    done = datagen(*args, "--resume", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "run.h5.parts").exists()
    assert f"({12 - len(finished)} samples computed" in done.stdout
    assert datagen(*args[:-1], "ref.h5", cwd=tmp_path).returncode == 0
    assert same_data(tmp_path / "run.h5", tmp_path / "ref.h5")


@pytest.mark.parametrize("kind", ["periodic", "obstacles", "burgers"])
def test_plot_and_paraview_export(tmp_path, kind):
    import meshio

    assert datagen(*command(kind, tmp_path), "--n", 2, "--out", "d.h5", cwd=tmp_path).returncode == 0
    out = datagen("plot", "d.h5", "--trajectory", 1, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "d.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    animation = next(tmp_path.glob("d-trajectory1.*"))
    assert animation.read_bytes()[:4] in (b"GIF8", b"\x00\x00\x00\x20", b"\x00\x00\x00\x1c")
    if kind == "obstacles":
        assert (tmp_path / "d-forces.png").exists()
    assert datagen("export", "d.h5", "--trajectory", 1, cwd=tmp_path).returncode == 0
    with h5py.File(tmp_path / "d.h5") as h5:
        field = str(h5.attrs["fields"][0])
        expected, t = h5[field][1, -1], h5["t"][()]
    with meshio.xdmf.TimeSeriesReader(str(tmp_path / "d-trajectory1-paraview.xdmf")) as reader:
        reader.read_points_cells()
        assert reader.num_steps == len(t)
        time_value, point_data, _ = reader.read_data(len(t) - 1)
    assert time_value == pytest.approx(t[-1])
    got = point_data[field]
    if expected.ndim == 3:  # velocity: components last, padded to 3
        assert np.array_equal(got[:, :2], np.moveaxis(expected, 0, -1).reshape(-1, 2)) and not got[:, 2].any()
    else:
        assert np.array_equal(got, expected.ravel())
    bad = datagen("plot", "d.h5", "--trajectory", 5, cwd=tmp_path)
    assert bad.returncode == 2 and "out of range" in bad.stderr


def test_levels_lists_every_family(tmp_path):
    out = datagen("levels", "--resolution", 16, cwd=tmp_path)
    assert out.returncode == 0
    for text in ("navier-stokes --family periodic", "--family obstacles", "hard-medium", "burgers", "1e-05"):
        assert text in out.stdout


@pytest.mark.parametrize("args,message", [
    (("navier-stokes", "--family", "periodic", "--level", "nope"), "unknown level 'nope'"),
    (("navier-stokes", "--family", "obstacles", "--level", "easy", "--pressure-precond", "magic"),
     "--pressure-precond must be one of"),
    (("navier-stokes", "--family", "obstacles", "--level", "easy", "--pressure-tol", "2"), "--pressure-tol"),
    (("burgers", "--level", "easy", "--batch", "0"), "--batch must be >= 1"),
    (("burgers", "--level", "easy", "--device", "nonsense"), "device 'nonsense' is not a torch device"),
    (("burgers", "--level", "easy", "--resolution", "4"), "--resolution must be >= 8"),
])
def test_bad_arguments_are_one_line_errors(tmp_path, args, message):
    out = datagen(*args, "--n", 1, "--out", "x.h5", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_bad_level_spec_names_the_key(tmp_path):
    (tmp_path / "s.yaml").write_text("base: easy\nviscosity: -1\n")
    out = datagen("navier-stokes", "--family", "periodic", "--spec", "s.yaml", "--n", 1, "--out", "x.h5",
                  cwd=tmp_path)
    assert out.returncode == 2 and "viscosity must be > 0" in out.stderr
    (tmp_path / "t.yaml").write_text("base: easy\nreynolds: [1, 2]\n")
    out = datagen("navier-stokes", "--family", "obstacles", "--spec", "t.yaml", "--n", 1, "--out", "x.h5",
                  cwd=tmp_path)
    assert out.returncode == 2 and "bad value for reynolds" in out.stderr
