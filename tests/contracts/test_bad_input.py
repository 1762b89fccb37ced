"""The bad-input suite: every user-facing command given a bad value answers with one line naming the
problem, exit status 2, no traceback, and leaves nothing on disk.  Commands run in-process (the
same `main` the console scripts call) so the ~200 cases stay fast."""
from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

import datagen.cli
import pdekit.learning.cli

# ------------------------------------------------------------------------------------- datagen
GENERATORS = {
    "poisson": ["poisson", "--level", "easy", "--n", "2", "--resolution", "16"],
    "periodic": ["navier-stokes", "--family", "periodic", "--level", "easy", "--n", "1", "--resolution", "16"],
    "obstacles": ["navier-stokes", "--family", "obstacles", "--level", "easy", "--n", "1", "--resolution", "16"],
    "burgers": ["burgers", "--level", "easy", "--n", "1", "--resolution", "64"],
}

# (option changes, expected message); "-" as a value removes the option, FILES[...] are made per case
COMMON = [
    ({"--n": "0"}, "--n must be >= 1"),
    ({"--n": "-5"}, "--n must be >= 1"),
    ({"--n": "abc"}, "invalid int value"),
    ({"--n": "1.5"}, "invalid int value"),
    ({"--resolution": "4"}, "--resolution must be >= 8"),
    ({"--resolution": "abc"}, "invalid int value"),
    ({"--seed": "-1"}, "--seed must be >= 0"),
    ({"--seed": "abc"}, "invalid int value"),
    ({"--seed": str(2**63 - 1), "--n": "3"}, "exceeds"),
    ({"--shard": "abc"}, "--shard must look like i/n"),
    ({"--shard": "3/3"}, "need 0 <= i < n"),
    ({"--shard": "0/0"}, "need 0 <= i < n"),
    ({"--shard": "-1/2"}, "need 0 <= i < n"),
    ({"--shard": "2/3"}, "holds no samples"),
    ({"--out": "."}, "is a folder"),
    ({"--out": "/nonexistent-pdekit-dir/x.h5"}, "does not exist"),
    ({"--out": "/proc/pdekit-test.h5"}, "folder /proc is not writable"),
    ({"--out": "/sys/pdekit-test.h5"}, "folder /sys is not writable"),
    ({"--out": "existing.h5"}, "--overwrite"),
    ({"--level": "nope"}, "unknown level"),
    ({"--level": "-"}, "give exactly one of --level NAME or --spec"),
    ({"--spec": "missing.yaml"}, "give exactly one of --level NAME or --spec"),
    ({"--level": "-", "--spec": "missing.yaml"}, "no such level spec"),
    ({"--level": "-", "--spec": "folder"}, "is a folder"),
    ({"--level": "-", "--spec": "broken.yaml"}, "(line 3, column 4)"),
    ({"--level": "-", "--spec": "list.yaml"}, "expected a mapping"),
    ({"--level": "-", "--spec": "unknown_key.yaml"}, "unknown key(s) ['bogus']"),
    ({"--level": "-", "--spec": "bad_base.yaml"}, "unknown base level 'nope'"),
    ({"--level": "-", "--spec": "binary.yaml"}, "level spec"),
    ({"--workers": "0"}, "--workers must be >= 1"),
    ({"--workers": "-3"}, "--workers must be >= 1"),
    ({"--n": "10000000", "--resolution": "100000"}, "bytes"),
    ({"--bogus": "1"}, "unrecognized arguments"),
]

# spec files (YAML text) that make one level axis bad, per generator, and the message
SPECS = {
    "poisson": [
        ("base: hard\ncontrast: 1e300\n", "contrast must be in [1, 1e+08]"),
        ("base: hard\ncontrast: .nan\n", "expected a finite number"),
        ("base: hard\ncontrast: .inf\n", "expected a finite number"),
        ("base: hard\ncontrast: 0.5\n", "contrast must be in"),
        ("base: hard\nsource_modes: 99999999999999999999\n", "too large"),
        ("base: hard\nsource_modes: 2.7\n", "expected an integer, got 2.7"),
        ("base: hard\nobstacles: [2.7, 4]\n", "expected an integer, got 2.7"),
        ("base: hard\nobstacles: [4, 2]\n", "obstacles must be [min, max]"),
        ("base: hard\nobstacles: [1, 1000]\n", "at most 64 obstacles"),
        ("base: hard\nobstacles: 3\n", "expected a list"),
        ("base: hard\ncoefficient: bogus\n", "coefficient must be one of"),
        ("base: darcy\nsource: bogus\n", "source must be one of"),
        ("base: hard\nneumann_faces: 7\n", "neumann_faces must be 0..3"),
        ("base: hard\nchannels: maybe\n", "expected true/false"),
        ("base: hard\ncontrast: ten\n", "expected a number"),
        ("base: hard\nname: [1]\n", "expected text"),
    ],
    "periodic": [
        ("base: easy\nviscosity: -1\n", "viscosity must be > 0"),
        ("base: easy\ninterval: 0\n", "need 0 < interval <= t_end"),
        ("base: easy\ncfl: 2\n", "cfl must be in (0, 1]"),
        ("base: easy\nforcing: bogus\n", "forcing must be"),
        ("base: easy\nmax_dt: 0\n", "max_dt must be > 0"),
        ("base: easy\nforcing_wavenumber: 2.7\n", "expected an integer"),
        ("base: easy\nt_end: 10.5\n", "t_end must be a whole number of intervals"),
    ],
    "obstacles": [
        ("base: easy\nreynolds: .nan\n", "expected a finite number"),
        ("base: easy\nobstacles: [2.7, 3]\n", "expected an integer"),
        ("base: easy\ncfl: 0\n", "cfl must be in (0, 1]"),
        ("base: easy\ninterval: -1\n", "need 0 < interval <= t_end"),
        ("base: easy\nt_end: 1.0\ninterval: 0.3\n", "t_end must be a whole number of intervals"),
        ("base: easy\nobstacles: [{shape: star, center: [1, 0.5], radius: 0.1}]\n", "shape must be one of"),
        ("base: easy\nobstacles: [{shape: circle, center: [1, 0.5]}]\n", "radius must be a positive number"),
        ("base: easy\nobstacles: [{shape: circle, center: [1], radius: 0.1}]\n", "center must be a point"),
        ("base: easy\nobstacles: [{shape: circle, center: [1, 0.5], radius: 0.1, spin: 2}]\n", "unknown key(s) ['spin']"),
        ("base: easy\nobstacles: [{shape: polygon, vertices: [[1, 0.4], [1.2, 0.6], [1.2, 0.4]]}]\n",
         "convex with its vertices counter-clockwise"),
        ("base: easy\nlength: 4\naspect: 4\n", "give length or aspect, not both"),
        ("base: easy-easy\ngeometry: '[{\"shape\": \"circle\", \"center\": [1.0, 0.5], \"radius\": -0.1}]'\n",
         "radius must be a positive number"),
        ("base: easy-easy\ngeometry: 'not json'\n", "geometry is not JSON"),
        ("base: easy-easy\nu_max: 1e-300\nt_end: 0.2\ninterval: 0.1\n", "non-finite drag"),
        ("base: easy-easy\nviscosity: 1e6\n", "viscous_scheme: implicit lifts the viscous limit"),
        ("base: easy\nviscosity: 0.01\nreynolds: 100\n", "give viscosity or reynolds, not both"),
        ("base: easy\nviscosity: -0.01\n", "viscosity must be a positive number"),
        ("base: easy\nprobes: [[0.1]]\n", "probe 1 must be a point [x, y]"),
        ("base: easy\nprobes: 3\n", "probes must be a list of points"),
        ("base: easy\nprobes: [[9.0, 0.5]]\n", "probe point [9.0, 0.5] lies outside the channel"),
        ("base: easy\nviscous_scheme: magic\n", "viscous_scheme must be one of explicit, implicit"),
        ("base: easy\ninflow: square\n", "waveform must be one of constant, ramp, sine, table"),
        ("base: easy\noutflow: open\n", "outflow must be one of convective, do-nothing"),
        ("base: easy\nsteady_scheme: newton\n", "steady_scheme must be one of march, implicit"),
        ("base: easy\nsteady_scheme: implicit\n", "steady_scheme: implicit needs steady_tol > 0"),
        ("base: easy\ninflow: {waveform: sine, period: 0}\n", "period must be a positive finite number"),
        ("base: easy\ninflow: {waveform: table, points: [[1, 0], [0, 1]]}\n", "times must increase strictly"),
        ("base: easy\nwalls: smooth\n", "walls must be one of staircase, cut-cell"),
        ("base: easy\nwalls: cut-cell\n", "walls: cut-cell needs viscous_scheme: implicit"),
        ("base: easy\nsteady_tol: -1\n", "steady_tol must be >= 0"),
    ],
    "burgers": [
        ("base: easy\nviscosity: 0\n", "viscosity must be > 0"),
        ("base: easy\nmodes: 0\n", "modes must be >= 1"),
        ("base: easy\namplitude: -1\n", "amplitude must be > 0"),
        ("base: easy\nmodes: 1.5\n", "expected an integer"),
    ],
}

SPECIFIC = {
    "poisson": [({"--dim": "4"}, "--dim must be 2 or 3"), ({"--dim": "x"}, "invalid int value"),
                ({"--solver": "ssor-pcg", "--omega": "2"}, "--omega must be auto or a number in (0, 2)"),
                ({"--solver": "ssor-pcg", "--omega": "nan"}, "--omega must be auto or a number in (0, 2)"),
                ({"--solver": "ssor-pcg", "--omega": "fast"}, "--omega must be auto or a number in (0, 2)"),
                ({"--omega": "1.5"}, "needs --solver ssor-pcg"),
                ({"--solver": "ssor-pcg", "--workers": "2"}, "run it with --workers 1"),
                ({"--solver": "bogus"}, "invalid choice")],
    "periodic": [({"--batch": "0"}, "--batch must be >= 1"), ({"--omega": "1.5"}, "needs --family obstacles"), ({"--device": "cuda:7"}, "device"),
                 ({"--device": "bogus"}, "not a torch device"), ({"--family": "bogus"}, "invalid choice")],
    "obstacles": [({"--pressure-precond": "bogus"}, "--pressure-precond must be one of"),
                  ({"--pressure-precond": "PICKLED"}, "refuses to unpickle"),
                  ({"--pressure-precond": "TRUNCATED"}, "truncated"),
                  ({"--pressure-precond": "solution-predictor.ckpt"}, "trained to predict solutions"),
                  ({"--pressure-precond": "broken.yaml"}, "not a torch checkpoint"),
                  ({"--pressure-tol": "0"}, "--pressure-tol must be in (0, 1)"),
                  ({"--pressure-tol": "nan"}, "--pressure-tol must be in (0, 1)"),
                  ({"--pressure-tol": "2"}, "--pressure-tol must be in (0, 1)"),
                  ({"--pressure-systems": "."}, "is a folder"),
                  ({"--omega": "1.5"}, "needs --pressure-precond ssor"),
                  ({"--pressure-precond": "ssor", "--omega": "0"}, "--omega must be auto or a number in (0, 2)"),
                  ({"--device": "cuda:7"}, "device")],
    "burgers": [({"--batch": "0"}, "--batch must be >= 1"), ({"--batch": "-2"}, "--batch must be >= 1"),
                ({"--device": "bogus"}, "not a torch device")],
}


def _generator_cases():
    for name in GENERATORS:
        for i, (change, message) in enumerate(COMMON):
            yield pytest.param(name, change, message, id=f"{name}-common{i}")
        for i, (text, message) in enumerate(SPECS[name]):
            yield pytest.param(name, {"--level": "-", "--spec": ("SPEC", text)}, message, id=f"{name}-spec{i}")
        for i, (change, message) in enumerate(SPECIFIC[name]):
            yield pytest.param(name, change, message, id=f"{name}-specific{i}")


@pytest.fixture
def workdir(tmp_path, monkeypatch, pickled_checkpoint, truncated_checkpoint, fno_checkpoint):
    """A folder with the input files the cases refer to; returns (folder, names of inputs)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    (tmp_path / "existing.h5").write_text("keep me")
    (tmp_path / "broken.yaml").write_text("base: hard\ncontrast: [1\n  x: :\n")
    (tmp_path / "list.yaml").write_text("- base\n- hard\n")
    (tmp_path / "unknown_key.yaml").write_text("base: easy\nbogus: 1\n")
    (tmp_path / "bad_base.yaml").write_text("base: nope\n")
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00binary")
    (tmp_path / "includes_absent.yaml").write_text("include: absent_base.yaml\n")
    (tmp_path / "includes_list.yaml").write_text("include: [a.yaml, b.yaml]\n")
    (tmp_path / "nested_config.yaml").write_text("config: list.yaml\n")
    shutil.copy(pickled_checkpoint, tmp_path / "pickled.ckpt")
    shutil.copy(truncated_checkpoint, tmp_path / "truncated.ckpt")
    shutil.copy(fno_checkpoint, tmp_path / "solution-predictor.ckpt")
    return tmp_path


def _tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*")}


def expect_one_line_error(main, argv, message, folder, capsys, prog):
    before = _tree(folder)
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    errors = [line for line in err.splitlines() if line.startswith(f"{prog}: error:") or
              line.startswith(f"{prog} ") and ": error:" in line]
    assert code == 2, (code, out[-500:], err[-2000:])
    assert "Traceback" not in err and "Traceback" not in out, err[-3000:]
    assert len(errors) == 1, err[-3000:]
    assert message in errors[0], errors[0]
    assert _tree(folder) == before, "the command left files behind"
    return errors[0]


@pytest.mark.parametrize("name,change,message", list(_generator_cases()))
def test_datagen_generators(workdir, capsys, name, change, message):
    options = dict(zip(GENERATORS[name][1::2], GENERATORS[name][2::2]))
    command = GENERATORS[name][0]
    options.update({"--out": "out.h5", "--quiet": None})
    for key, value in change.items():
        if value == "-":
            options.pop(key, None)
        elif isinstance(value, tuple):  # a spec file written for this case
            (workdir / "case.yaml").write_text(value[1])
            options[key] = "case.yaml"
        else:
            options[key] = {"PICKLED": "pickled.ckpt", "TRUNCATED": "truncated.ckpt"}.get(value, value)
    argv = [command] + [x for k, v in options.items()
                        for x in ((k,) if v is None else (f"{k}={v}",) if v.startswith("-") else (k, v))]
    expect_one_line_error(datagen.cli.main, argv, message, workdir, capsys, "datagen")


# merge / plot / export / ritz / levels
@pytest.fixture
def files(workdir, poisson_file, burgers_file):
    shutil.copy(poisson_file, workdir / "p.h5")
    shutil.copy(burgers_file, workdir / "b.h5")
    with h5py.File(workdir / "foreign.h5", "w") as h5:
        h5["u"] = np.zeros((2, 4, 4))
    (workdir / "text.h5").write_text("not hdf5")
    (workdir / "link.xdmf").symlink_to(workdir / "existing.h5")
    from pdekit.files.dataset import write_labels

    write_labels(workdir / "labels.h5", {"points": np.zeros((2, 2)), "value": np.zeros(2), "stderr": np.ones(2),
                                         "steps": np.ones(2), "seconds": np.ones(2), "exact": np.zeros(2),
                                         "level": np.array(["poisson-ball-2d"] * 2), "seed": np.arange(2),
                                         "sample_index": np.arange(2)},
                 config={"problem": "poisson-ball-2d", "sampler": "walk-on-spheres", "paths": 10},
                 generator_version="feynman-kac-1")
    return workdir


FK_BALL = ["feynman-kac", "--problem", "poisson-ball-2d", "--n", "2", "--out", "f.h5"]  # later options override
OTHER_DATAGEN = [
    (["merge", "absent.h5", "--out", "m.h5"], "no such file"),
    (["merge", "p.h5", "--out", "p.h5", "--overwrite"], "is also one of the shards"),
    (["merge", "p.h5", "--out", "folder"], "is a folder"),
    (["merge", "p.h5", "--out", "existing.h5"], "--overwrite"),
    (["merge", "foreign.h5", "--out", "m.h5"], "not a pdekit dataset"),
    (["merge", "text.h5", "--out", "m.h5"], "not a readable HDF5 file"),
    (["merge", "p.h5", "b.h5", "--out", "m.h5"], "different configurations"),
    (["merge", "MERGED", "--out", "m2.h5"], "already a merged dataset"),
    (["merge", "p.h5", "MERGED", "--out", "m2.h5"], "already a merged dataset"),
    (["merge", "p.h5", "p.h5", "--out", "m2.h5"], "exactly once"),
    (["plot", "absent.h5"], "no such dataset"),
    (["plot", "p.h5", "--samples", "0"], "--samples >= 1"),
    (["plot", "p.h5", "--trajectory", "-1"], "--trajectory >= 0"),
    (["plot", "foreign.h5"], "not a pdekit dataset"),
    (["plot", "text.h5"], "not a readable HDF5 file"),
    (["plot", "p.h5", "--samples", "x"], "invalid int value"),
    (["export", "p.h5", "--samples", "0"], "--samples >= 1"),
    (["export", "p.h5", "--samples", "-1"], "--samples >= 1"),
    (["export", "b.h5", "--trajectory", "-1"], "--trajectory >= 0"),
    (["export", "p.h5", "--format", "bogus"], "invalid choice"),
    (["export", "absent.h5"], "no such dataset"),
    (["export", "foreign.h5"], "not a pdekit dataset"),
    (["export", "text.h5"], "not a readable HDF5 file"),
    # never replace what the export did not make (an existing folder, the working folder, another
    # dataset sharing the XDMF side file's name, an earlier The Well export, a link)
    (["export", "p.h5", "--format", "vtu", "--out", "folder"], "add --overwrite"),
    (["export", "p.h5", "--format", "vtu", "--out", ".", "--overwrite"], "working folder"),
    (["export", "b.h5", "--format", "the-well", "--out", "."], "working folder"),
    (["export", "b.h5", "--format", "the-well", "--out", "existing.h5"], "is not a folder"),
    (["export", "b.h5", "--out", "p.xdmf"], "is not its own"),
    (["export", "b.h5", "--out", "p.xdmf", "--overwrite"], "is not its own"),
    (["export", "b.h5", "--out", "existing.xdmf"], "is not its own"),
    (["export", "b.h5", "--out", "link.xdmf"], "symbolic link"),
    (["export", "b.h5", "--format", "the-well", "--split", "0.5,0.6,0"], "--split must be three"),
    (["export", "b.h5", "--format", "the-well", "--split", "a,b"], "--split must look like"),
    (["export", "b.h5", "--format", "the-well", "--split", "0,0.5,0.5"], "leaves no training"),
    (["export", "p.h5", "--split", "1,0,0"], "the-well only"),
    (["ritz", "--n", "0", "--resolution", "16", "--out", "r.h5"], "need --n >= 1"),
    (["ritz", "--n", "4", "--resolution", "16", "--lanczos-steps", "1", "--out", "r.h5"], "--lanczos-steps >= 2"),
    (["ritz", "--n", "4", "--resolution", "4", "--out", "r.h5"], "--resolution >= 8"),
    (["ritz", "--n", "4", "--resolution", "16", "--dim", "5", "--out", "r.h5"], "--dim must be 2 or 3"),
    (["ritz", "--n", "4", "--resolution", "16", "--seed", "-1", "--out", "r.h5"], "--seed must be >= 0"),
    (["ritz", "--n", "4", "--resolution", "16", "--out", "folder"], "is a folder"),
    (["ritz", "--n", "4", "--resolution", "16", "--level", "nope", "--out", "r.h5"], "unknown level"),
    (["ritz", "--n", "4", "--system", "absent.h5:0", "--out", "r.h5"], "no such file"),
    (["ritz", "--n", "4", "--system", "p.h5:abc", "--out", "r.h5"], "FILE:INDEX"),
    (["ritz", "--n", "4", "--system", "p.h5:99", "--out", "r.h5"], "out of range"),
    (["ritz", "--n", "4", "--system", "b.h5:0", "--out", "r.h5"], "expected 'poisson'"),
    (["ritz", "--n", "4000000", "--resolution", "4096", "--out", "r.h5"], "bytes"),
    (["feynman-kac", "--problem", "nope", "--n", "2", "--out", "f.h5"], "unknown problem 'nope'"),
    (FK_BALL + ["--n", "0"], "--n must be >= 1"),
    (FK_BALL + ["--paths", "-3"], "--paths must be >= 2"),
    (FK_BALL + ["--paths", "1"], "--paths must be >= 2"),
    (FK_BALL + ["--sampler", "mcmc"], "--sampler must be one of"),
    (FK_BALL + ["--epsilon", "0"], "--epsilon must be in (0, 1)"),
    (FK_BALL + ["--dt", "-1"], "--dt must be in (0, 1)"),
    (FK_BALL + ["--batch", "0"], "--batch must be >= 1"),
    (FK_BALL + ["--problem", "committor-double-well-2d"], "walk-on-spheres cannot follow the drift"),
    (FK_BALL + ["--problem", "poisson-1d-sin100"], "walk-on-spheres needs dimension >= 2"),
    (FK_BALL + ["--problem", "allen-cahn-1d-sin100", "--sampler", "euler-maruyama"], "nonlinear"),
    (FK_BALL + ["--seed", "-1"], "--seed must be >= 0"),
    (FK_BALL + ["--out", "folder"], "is a folder"),
    (FK_BALL + ["--device", "tpu"], "device"),
    (FK_BALL + ["--paths", "100000000000"], "bytes"),
    (FK_BALL + ["--shard", "2/3"], "holds no samples"),
    (FK_BALL + ["--epsilon", "0.9"], "--epsilon 0.9 is too large"),
    (FK_BALL + ["--sampler", "euler-maruyama", "--dt", "0.9"], "--dt 0.9 is too large"),
    (FK_BALL + ["--sampler", "euler-maruyama", "--dt", "1e-9"], "--dt 1e-09 is too small"),
    (["export", "labels.h5"], "not fields on a grid"),
    (["export", "labels.h5", "--format", "the-well"], "not fields on a grid"),
    (["ritz", "--n", "4", "--system", "labels.h5:0", "--out", "r.h5"], "expected 'poisson'"),
    (["levels", "--resolution", "0"], "--resolution must be in 8..256"),
    (["levels", "--resolution", "100000"], "--resolution must be in 8..256"),
    ([], "required"),
    (["bogus"], "invalid choice"),
]


@pytest.mark.parametrize("argv,message", OTHER_DATAGEN, ids=[" ".join(a)[:40] for a, _ in OTHER_DATAGEN])
def test_datagen_other_commands(files, capsys, argv, message):
    if "MERGED" in argv:
        assert datagen.cli.main(["merge", "p.h5", "--out", "merged.h5"]) == 0
        capsys.readouterr()
        argv = [a.replace("MERGED", "merged.h5") for a in argv]
    expect_one_line_error(datagen.cli.main, argv, message, files, capsys, "datagen")


# ---------------------------------------------------------------------------------------- pdekit
def fit_config(folder: Path, data_file: Path, **changes) -> dict:
    cfg = {"seed_everything": 0,
           "trainer": {"max_epochs": 1, "accelerator": "cpu", "devices": 1, "default_root_dir": str(folder / "run"),
                       "enable_progress_bar": False, "enable_model_summary": False, "logger": False,
                       "enable_checkpointing": False},
           "model": {"class_path": "pdekit.learning.tasks.OperatorLearning",
                     "init_args": {"network": "neuralop.models.FNO",
                                   "network_kwargs": {"n_modes": [4, 4], "hidden_channels": 8, "n_layers": 2}}},
           "data": {"class_path": "pdekit.learning.datamodules.FieldDataModule",
                    "init_args": {"files": [str(data_file)], "batch_size": 8}}}
    for dotted, value in changes.items():
        node = cfg
        *path, last = dotted.split(".")
        for key in path:
            node = node[key]
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return cfg


PROBLEM_DATA = {"class_path": "pdekit.learning.datamodules.ProblemDataModule",
                "init_args": {"problem": "poisson-1d-sin100", "steps_per_epoch": 2}}
FIT_CASES = [  # (config changes, extra argv, message)
    ({"model.init_args.lr": -1.0}, [], "lr must be a positive finite number"),
    ({"model.init_args.lr": 0.0}, [], "lr must be a positive finite number"),
    ({}, ["--model.init_args.lr", "nan"], "lr"),
    ({"model.init_args.lr": float("inf")}, [], "lr must be a positive finite number"),
    ({"model.init_args.weight_decay": -1.0}, [], "weight_decay must be a non-negative"),
    ({"data.init_args.batch_size": 0}, [], "batch_size must be >= 1"),
    ({"data.init_args.batch_size": -4}, [], "batch_size must be >= 1"),
    ({"data.init_args.split": [0.5, 0.2, 0.2]}, [], "summing to 1"),
    ({"data.init_args.split": [1.2, -0.1, -0.1]}, [], "summing to 1"),
    ({"data.init_args.split": [0.5, 0.5]}, [], "three non-negative fractions"),
    ({"data.init_args.proportions": [0.7, 0.7]}, [], "proportions"),
    ({"data.init_args.proportions": [0.5, 0.5]}, [], "one non-negative share per file"),
    ({"data.init_args.num_workers": -1}, [], "num_workers must be >= 0"),
    ({"data.init_args.normalization_samples": 0}, [], "normalization_samples must be >= 1"),
    ({"trainer.max_epochs": -2}, [], "max_epochs"),
    ({"model.class_path": "foo.Bar"}, [], "model.class_path 'foo.Bar'"),
    ({"model.class_path": "lightning.pytorch.demos.boring_classes.BoringModel", "model.init_args": None}, [],
     "allow-list"),
    ({}, ["--model.init_args.lrr", "0.1"], "'lrr' is not accepted"),
    ({"trainer.max_epoch": 1}, [], "trainer.max_epoch"),
    ({"trainr": {"max_epochs": 1}}, [], "trainr"),
    ({"model.init_args.network_kwarg": {"n_modes": [4, 4]}}, [], "network_kwarg"),
    ({"model.init_args.network": "torch.hub.load"}, [], "refusing to build network 'torch.hub.load'"),
    ({"model.init_args.network": "os.system"}, [], "refusing to build network 'os.system'"),
    ({"model.init_args.network_kwargs": {"n_modes": [4, 4], "hidden_channels": 8, "n_modez": 3}}, [], "n_modez"),
    ({"model.init_args.network_kwargs": {"hidden_channels": 8}}, [], "needs ['n_modes']"),
    ({"model.init_args.loss": "bogus"}, [], "unknown loss 'bogus'"),
    ({"model.class_path": "pdekit.learning.tasks.Autoregressive", "model.init_args.regularizer": "bogus",
      "data.init_args.files": ["BURGERS"]}, [], "unknown regularizer 'bogus'"),
    ({"model.class_path": "pdekit.learning.tasks.Autoregressive", "model.init_args.jacobian_weight": -1.0,
      "data.init_args.files": ["BURGERS"]}, [], "jacobian_weight must be a finite number >= 0"),
    ({"model.class_path": "models.npsolver.NPSolver", "model.init_args": {"loss": "bogus"},
      "data.init_args.system": True}, [], "loss must be one of"),
    ({"model.class_path": "models.npsolver.NPSolver", "model.init_args": {"pcg_steps": 0},
      "data.init_args.system": True}, [], "pcg_steps must be an integer in 1..10000"),
    ({"model.class_path": "models.npsolver.NPSolver", "model.init_args": {"inner": "ilu"},
      "data.init_args.system": True}, [], "inner must be one of"),
    ({"model.class_path": "models.npsolver.NPSolver", "model.init_args": {"omega": -1.0},
      "data.init_args.system": True}, [], "omega must be a non-negative number"),
    ({"model.class_path": "models.npsolver.NPSolver", "model.init_args": {"network_kwargs": {"width": 30}},
      "data.init_args.system": True}, [], "width 30 must be a multiple of heads"),
    ({"model.class_path": "models.npsolver.NPSolver", "model.init_args": {}}, [], "set data.init_args.system: true"),
    ({"model.class_path": "models.npsolver.NPSolver", "model.init_args": {"loss": "pcg"},
      "data.init_args.files": ["BURGERS"]}, [], "NPSolver learns Poisson problems"),
    ({"model.class_path": "models.multigrid.NeuralMultigrid", "model.init_args": {"omega": 2.5},
      "data.init_args.system": True}, [], "omega must lie in (0, 2)"),
    ({"model.class_path": "models.multigrid.NeuralMultigrid", "model.init_args": {"sweeps": 0},
      "data.init_args.system": True}, [], "sweeps must be an integer in 1..50"),
    ({"model.class_path": "models.multigrid.NeuralMultigrid", "model.init_args": {}}, [],
     "set data.init_args.system: true"),
    ({"model.class_path": "models.multigrid.NeuralMultigrid", "model.init_args": {},
      "data.init_args.files": ["BURGERS"]}, [], "NeuralMultigrid works on 2-D and 3-D grids"),
    # sizes that build a network silently wrong, or one that cannot run
    ({"model.init_args.network_kwargs": {"n_modes": [0, 4], "hidden_channels": 8}}, [], "n_modes"),
    ({"model.init_args.network": "neuralop.models.TFNO",
      "model.init_args.network_kwargs": {"n_modes": [4, 4], "hidden_channels": 8, "rank": 0}}, [], "rank"),
    ({"model.init_args.network_kwargs": {"n_modes": [4, 4], "hidden_channels": 0}}, [], "hidden_channels"),
    ({"model.init_args.network": "models.lsm.LSM", "model.init_args.network_kwargs": {"tokens": 0}}, [], "tokens"),
    ({"model.init_args.network": "models.lsm.LSM", "model.init_args.network_kwargs": {"patch": 500}}, [], "patch"),
    ({"model.init_args.network": "models.unet.UNet", "model.init_args.network_kwargs": {"dim": 7}}, [], "dim"),
    ({"model.class_path": "models.npsolver.NPSolver", "model.init_args": {"network_kwargs": {"heads": 0}},
      "data.init_args.system": True}, [], "heads"),
    ({"model.class_path": "models.npsolver.NPSolver", "model.init_args": {"network_kwargs": {"width": -32}},
      "data.init_args.system": True}, [], "width"),
    ({"model.class_path": "models.dcdm.DCDM", "model.init_args": {"network": "models.transolver.BATransolver"},
      "data.init_args.system": True}, [], "network"),
    ({"model.class_path": "models.multigrid.NeuralMultigrid", "model.init_args": {"sweeps": 1000000000},
      "data.init_args.system": True}, [], "sweeps"),
    ({"model.class_path": "models.gp_hm.task.GPHM", "model.init_args": {"jitter": -1e-3},
      "data": PROBLEM_DATA}, [], "jitter"),
    ({"model.class_path": "models.gp_hm.task.GPHM", "model.init_args": {"points": 100000000},
      "data": PROBLEM_DATA}, [], "points"),
    ({"data": PROBLEM_DATA}, [], "OperatorLearning"),
    ({"model.class_path": "models.fkpinn.FKPINN", "model.init_args": {}}, [], "FKPINN"),
    ({"model.class_path": "models.npsolver.NPSolver", "model.init_args": {"pcg_steps": 10**9},
      "data.init_args.system": True}, [], "pcg_steps"),
    ({"data.init_args.files": ["absent.h5"]}, [], "no such dataset"),
    ({"data.init_args.files": ["FOREIGN"]}, [], "not a pdekit dataset"),
    ({"data.init_args.files": ["NEGATIVE"]}, [], "non-positive a at sample 5"),
    ({"data.init_args.files": []}, [], "files is empty"),
    ({"data.init_args.files": ["BURGERS"]}, [], "needs static (Poisson) data"),
    ({"data.init_args.history": 0}, [], "history and unroll must be >= 1"),
    ({"data.init_args.batch_size": "abc"}, [], "data.init_args.batch_size"),
    ({"model.class_path": "models.learned_amg.LearnedAMG", "model.init_args": {"pcg_steps": 0},
      "data.init_args.system": True}, [], "pcg_steps must be an integer in 1..100"),
    ({"model.class_path": "models.learned_amg.LearnedAMG", "model.init_args": {"strength_theta": 1.5},
      "data.init_args.system": True}, [], "strength_theta must be a number in [0, 1)"),
    ({}, ["--ckpt_path", "PICKLED"], "refuses to unpickle"),
    ({}, ["--ckpt_path", "TRUNCATED"], "truncated"),
    ({}, ["--ckpt_path", "DCDM"], "holds a models.dcdm.DCDM model"),
    ({}, ["--ckpt_path", "cfg.yaml"], "not a torch checkpoint"),
    ({}, ["--ckpt_path", "absent.ckpt"], "no such checkpoint"),
    ({}, ["--ckpt_path", "folder"], "is a folder"),
]


@pytest.fixture
def fit_files(files, poisson_file, dcdm_checkpoint):
    negative = files / "negative.h5"
    shutil.copy(poisson_file, negative)
    with h5py.File(negative, "r+") as h5:
        h5["a"][5, 3, 4] = -1.0
    shutil.copy(dcdm_checkpoint, files / "dcdm.ckpt")
    return files


def _substitute(value, folder):
    names = {"FOREIGN": "foreign.h5", "NEGATIVE": "negative.h5", "BURGERS": "b.h5", "PICKLED": "pickled.ckpt",
             "TRUNCATED": "truncated.ckpt", "DCDM": "dcdm.ckpt"}
    if isinstance(value, list):
        return [_substitute(v, folder) for v in value]
    return str(folder / names[value]) if isinstance(value, str) and value in names else value


@pytest.mark.parametrize("changes,extra,message", FIT_CASES,
                         ids=[f"fit{i}" for i in range(len(FIT_CASES))])
def test_pdekit_fit(fit_files, capsys, monkeypatch, changes, extra, message):
    monkeypatch.setattr("sys.argv", ["pdekit"])
    changes = {k: _substitute(v, fit_files) for k, v in changes.items()}
    cfg = fit_config(fit_files, fit_files / "p.h5", **changes)
    (fit_files / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    argv = ["fit", "--config", "cfg.yaml", *[_substitute(a, fit_files) for a in extra]]
    expect_one_line_error(pdekit.learning.cli.main, argv, message, fit_files, capsys, "pdekit")


CONFIG_FILE_CASES = [
    ("absent.yaml", "no such config file"),
    ("folder", "is a folder"),
    ("broken.yaml", "not valid YAML"),
    ("list.yaml", "must hold a mapping"),
    ("binary.yaml", "cannot read config"),
    ("includes_absent.yaml", "no such config file: absent_base.yaml"),
    ("includes_list.yaml", "include must name one YAML file"),
    ("nested_config.yaml", "write `include: FILE`"),
]


def test_a_derived_checkpoint_folder_is_refused(files, capsys, monkeypatch):
    monkeypatch.setattr("sys.argv", ["pdekit"])
    (files / "ok.yaml").write_text("trainer: {max_steps: 1}\n")
    expect_one_line_error(pdekit.learning.cli.main, ["fit", "--config", "ok.yaml", "--checkpoint.dirpath", "elsewhere"],
                          "checkpoint.dirpath follows trainer.default_root_dir", files, capsys, "pdekit")


@pytest.mark.parametrize("subcommand,config,message", [
    (s, c, m) for s, (c, m) in itertools.product(("fit", "validate", "test", "predict"), CONFIG_FILE_CASES)])
def test_pdekit_config_files(files, capsys, monkeypatch, subcommand, config, message):
    monkeypatch.setattr("sys.argv", ["pdekit"])
    expect_one_line_error(pdekit.learning.cli.main, [subcommand, "--config", config], message, files, capsys, "pdekit")


PDEKIT_CASES = [
    (["evaluate", "--ckpt", "FNO", "--data", "p.h5", "--batch-size", "0"], "--batch-size must be >= 1"),
    (["evaluate", "--ckpt", "FNO", "--data", "p.h5", "--batch-size", "-3"], "--batch-size must be >= 1"),
    (["evaluate", "--ckpt", "FNO", "--data", "p.h5", "--device", "cuda:7"], "device 'cuda:7'"),
    (["evaluate", "--ckpt", "FNO", "--data", "p.h5", "--device", "bogus"], "not a torch device"),
    (["evaluate", "--ckpt", "DCDM", "--data", "p.h5"], "does not predict solutions"),
    (["evaluate", "--ckpt", "absent.ckpt", "--data", "p.h5"], "no such checkpoint"),
    (["evaluate", "--ckpt", "PICKLED", "--data", "p.h5"], "refuses to unpickle"),
    (["evaluate", "--ckpt", "TRUNCATED", "--data", "p.h5"], "truncated"),
    (["evaluate", "--ckpt", "folder", "--data", "p.h5"], "is a folder"),
    (["evaluate", "--ckpt", "FNO", "--data", "absent.h5"], "no such dataset"),
    (["evaluate", "--ckpt", "FNO"], "give the dataset files to evaluate it on with --data"),
    (["evaluate", "--ckpt", "FNO", "--data", "b.h5"], "trained on pde='poisson'"),
    (["evaluate", "--ckpt", "FNO", "--data", "foreign.h5"], "not a pdekit dataset"),
    (["evaluate", "--ckpt", "FNO", "--data", "text.h5"], "not a readable HDF5 file"),
    (["evaluate", "--ckpt", "FNO", "--data", "p.h5", "--rollout", "--steps", "0"], "--steps needs --rollout"),
    (["evaluate", "--ckpt", "FNO", "--data", "p.h5", "--steps", "10"], "--steps needs --rollout"),
    (["evaluate", "--ckpt", "FNO", "--data", "p.h5", "--rollout"], "--rollout evaluates autoregressive models"),
    (["evaluate", "--ckpt", "AUTOREG", "--data", "b.h5", "--rollout", "--steps", "10000000"], "--steps 10000000 is too long"),
    (["evaluate", "--ckpt", "GP", "--rollout"], "--rollout evaluates autoregressive models"),
    (["check", "--resolution", "0"], "--resolution must be >= 3"),
    (["check", "--resolution", "1"], "--resolution must be >= 3"),
    (["check", "--resolution", "-3"], "--resolution must be >= 3"),
    (["check", "--resolution", "abc"], "invalid int value"),
    (["check", "--resolution", "100000"], "<= 4096"),
    (["check", "--device", "cuda:7"], "device 'cuda:7'"),
    (["check", "--device", "bogus"], "not a torch device"),
    (["bogus"], "invalid choice"),
    ([], "required"),
]


@pytest.mark.parametrize("argv,message", PDEKIT_CASES, ids=[" ".join(a)[:40] for a, _ in PDEKIT_CASES])
def test_pdekit_commands(fit_files, fno_checkpoint, autoregressive_checkpoint, gp_checkpoint, capsys, argv, message):
    shutil.copy(fno_checkpoint, fit_files / "fno.ckpt")
    shutil.copy(autoregressive_checkpoint, fit_files / "autoregressive.ckpt")
    shutil.copy(gp_checkpoint, fit_files / "gp.ckpt")
    argv = [{"FNO": "fno.ckpt", "DCDM": "dcdm.ckpt", "PICKLED": "pickled.ckpt", "TRUNCATED": "truncated.ckpt",
             "AUTOREG": "autoregressive.ckpt", "GP": "gp.ckpt"}.get(a, a) for a in argv]
    expect_one_line_error(pdekit.learning.cli.main, argv, message, fit_files, capsys, "pdekit")


def test_the_suite_is_large_enough():
    generated = sum(len(COMMON) + len(SPECS[n]) + len(SPECIFIC[n]) for n in GENERATORS)
    total = generated + len(OTHER_DATAGEN) + len(FIT_CASES) + 4 * len(CONFIG_FILE_CASES) + len(PDEKIT_CASES)
    assert total >= 150, total


def test_links_and_special_files_are_never_followed_or_replaced(workdir, capsys):
    """A lock or parts path planted as a link, a link or a device as --out: refused in one line, and
    the file or folder they point to is untouched."""
    base = ["poisson", "--level", "easy", "--n", "2", "--resolution", "16", "--quiet"]
    victim = workdir / "victim.txt"
    victim.write_text("keep")
    (workdir / "out.h5.lock").symlink_to(victim)
    expect_one_line_error(datagen.cli.main, base + ["--out", "out.h5"], "lock", workdir, capsys, "datagen")
    (workdir / "out.h5.lock").unlink()
    (workdir / "out.h5.parts").symlink_to(workdir / "folder")
    expect_one_line_error(datagen.cli.main, base + ["--out", "out.h5", "--overwrite"], "parts", workdir, capsys,
                          "datagen")
    (workdir / "out.h5.parts").unlink()
    (workdir / "linked.h5").symlink_to(victim)
    expect_one_line_error(datagen.cli.main, base + ["--out", "linked.h5", "--overwrite"], "symbolic link", workdir,
                          capsys, "datagen")
    expect_one_line_error(datagen.cli.main, base + ["--out", "/dev/null", "--overwrite"], "not a regular file",
                          workdir, capsys, "datagen")
    assert victim.read_text() == "keep" and not any((workdir / "folder").iterdir())


@pytest.mark.parametrize("variable,value", [("PDEKIT_THREADS", "abc"), ("PDEKIT_THREADS", "0"),
                                            ("OMP_NUM_THREADS", "abc")])
@pytest.mark.parametrize("command", [["check", "--resolution", "8"], ["fit", "--config", "missing.yaml"]])
def test_bad_thread_variables_are_one_line(workdir, capsys, monkeypatch, variable, value, command):
    if variable != "PDEKIT_THREADS":
        monkeypatch.delenv("PDEKIT_THREADS")
    monkeypatch.setenv(variable, value)
    expect_one_line_error(pdekit.learning.cli.main, command, f"{variable} must be a positive integer", workdir, capsys,
                          "pdekit")
