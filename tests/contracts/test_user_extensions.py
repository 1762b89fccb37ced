"""Problems and dataset kinds of a user's own, named as module:object (docs/examples), work through
every command: datagen (with worker processes), pdekit fit, pdekit evaluate — and only when named
deliberately."""
import math
import os
from pathlib import Path

import h5py
import numpy as np
import torch

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


def _env(**extra):
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(EXAMPLES), os.environ.get("PYTHONPATH", "")]), **extra}


def test_a_problem_of_ones_own_gets_labels_from_worker_processes(tmp_path, run_cli):
    out = tmp_path / "labels.h5"
    result = run_cli(["datagen", "feynman-kac", "--problem", "my_problems:WAVY_SQUARE", "--n", "4", "--paths", "400",
                      "--batch", "2", "--workers", "2", "--quiet", "--out", str(out)], env=_env())
    assert result.returncode == 0, result.stderr
    with h5py.File(out) as h5:
        points, values, stderr = h5["points"][()], h5["value"][()], h5["stderr"][()]
        assert h5.attrs["problem"] == "my_problems:WAVY_SQUARE"
    exact = np.sin(np.pi * points[:, 0]) * np.sin(3 * np.pi * points[:, 1])
    # Monte Carlo labels of the known solution: within 5 standard errors (400 paths each)
    assert np.all(np.abs(values - exact) < 5 * stderr + 1e-3), (values, exact, stderr)


def test_a_problem_trains_and_evaluates_only_when_allow_listed(tmp_path, run_cli):
    config = EXAMPLES / "wavy_square_gp.yaml"  # the README's example, shortened
    fit = ["pdekit", "fit", "--config", str(config), "--trainer.default_root_dir", str(tmp_path / "run"),
           "--trainer.max_epochs", "1", "--data.init_args.steps_per_epoch", "2", "--model.init_args.points", "12",
           "--trainer.enable_progress_bar", "false"]
    refused = run_cli(fit, env=_env())
    assert refused.returncode == 2
    assert "refusing to import problem 'my_problems:WAVY_SQUARE'" in refused.stderr
    assert not (tmp_path / "run").exists()
    allowed = _env(PDEKIT_ALLOW="my_problems:WAVY_SQUARE")
    trained = run_cli(fit, env=allowed)
    assert trained.returncode == 0, trained.stderr
    checkpoint = next((tmp_path / "run").rglob("last.ckpt"))
    record = torch.load(checkpoint, weights_only=True)["pdekit"]
    assert record["hparams"]["problem"] == "my_problems:WAVY_SQUARE"
    # the checkpoint names the problem; reading it back imports nothing unless allowed
    refused = run_cli(["pdekit", "evaluate", "--ckpt", str(checkpoint), "--out", str(tmp_path / "ev")], env=_env())
    assert refused.returncode == 2 and "refusing to import problem" in refused.stderr
    evaluated = run_cli(["pdekit", "evaluate", "--ckpt", str(checkpoint), "--out", str(tmp_path / "ev")], env=allowed)
    assert evaluated.returncode == 0, evaluated.stderr
    assert (tmp_path / "ev" / "metrics.json").exists()


def test_a_dataset_kind_of_ones_own_is_a_datagen_command(tmp_path, run_cli):
    env = _env(DATAGEN_KINDS="my_kinds:ManufacturedPoisson")
    assert "manufactured" in run_cli(["datagen", "--help"], env=env).stdout
    assert "manufactured" not in run_cli(["datagen", "--help"], env=_env()).stdout  # only when named
    out = tmp_path / "m.h5"
    result = run_cli(["datagen", "manufactured", "--n", "5", "--resolution", "17", "--workers", "2", "--quiet",
                      "--out", str(out)], env=env)
    assert result.returncode == 0, result.stderr
    from pdekit.files.dataset import load_system

    for index in range(5):  # the manufactured solutions solve the rebuilt discrete systems to round-off
        op, b, u = load_system(out, index)
        assert float(op.relative_residual(u, b)) < 1e-10
    bad = run_cli(["datagen", "manufactured", "--n", "2", "--resolution", "4", "--out", str(tmp_path / "x.h5")],
                  env=env)
    assert bad.returncode == 2 and "--resolution >= 8" in bad.stderr and not (tmp_path / "x.h5").exists()


def test_a_kind_that_cannot_be_loaded_is_one_line(tmp_path, run_cli):
    for name, message in (("no_such_module:Kind", "cannot import module 'no_such_module'"),
                          ("my_kinds:NoSuchKind", "has no 'NoSuchKind'"), ("my_kinds", "must look like module:object")):
        out = run_cli(["datagen", "--help"], env=_env(DATAGEN_KINDS=name))
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        assert out.stderr.count("\n") == 1 and message in out.stderr, out.stderr


def test_the_gp_study_runs_on_a_problem_of_ones_own(tmp_path, run_cli):
    """`--problems module:object` (typed, so deliberate), the additive form and no PINN baseline:
    a row per method, GridGP's grid defaults (no per-name settings exist for it)."""
    import json
    import sys

    out = tmp_path / "study"
    result = run_cli([sys.executable, "-m", "experiments.studies.gp_hm_study", "--problems", "my_problems:TWO_SCALE",
                      "--steps", "20", "--points", "30", "--kernels", "stm,stm+matern", "--second-start", "0.5",
                      "--baseline", "none", "--out", str(out)],
                     env=_env(PYTHONPATH=os.pathsep.join([str(EXAMPLES), str(Path(__file__).resolve().parents[2])])))
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [row["method"] for row in rows] == ["GP-HM-StM", "GP-HM-StM + Matern", "FD", "FD"]
    assert all(row["problem"] == "my_problems:TWO_SCALE" and math.isfinite(row["rel L2"]) for row in rows)
    assert all(row["best of 20 (ref.)"] <= row["rel L2"] for row in rows[:2])
