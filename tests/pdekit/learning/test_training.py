"""Training from YAML with `pdekit fit` and `pdekit evaluate`, as a user runs them: exact resume
after a real kill mid-epoch, DDP on CPU, difficulty mixes, and clear errors for bad input."""
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml

from datagen import runner
from datagen.generators import config_for
from pdekit.files.dataset import load_system
from pdekit.learning.datamodules import FieldDataModule, mix_counts
from pdekit.learning.evaluation.metrics import poisson_relative_residual

PDEKIT = str(Path(sys.executable).parent / "pdekit")
TESTS = str(Path(__file__).resolve().parents[3])  # the repository root: tests.training_helpers imports from it


def make_data(folder, level, n, resolution=16):
    path = Path(folder) / f"{level}.h5"
    runner.run(config_for("poisson", level, n, resolution, dim=2), path, progress=False)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    return {level: make_data(folder, level, n) for level, n in (("easy", 40), ("medium", 24))}


def config(tmp_path, files, task="pdekit.learning.tasks.OperatorLearning", n_modes=(6, 6), data=None, **trainer):
    cfg = {"seed_everything": 0,
           "trainer": {"max_epochs": 2, "accelerator": "cpu", "devices": 1, "default_root_dir": str(tmp_path),
                       "enable_progress_bar": False, "enable_model_summary": False, "log_every_n_steps": 1,
                       "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger",
                                  "init_args": {"save_dir": str(tmp_path), "name": "logs"}},
                       "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                                      "init_args": {"dirpath": str(tmp_path / "ckpt"), "save_last": True,
                                                    "save_top_k": 0, "every_n_train_steps": 1}}],
                       **trainer},
           "model": {"class_path": task,
                     "init_args": {"network": "neuralop.models.FNO",
                                   "network_kwargs": {"n_modes": list(n_modes), "hidden_channels": 8, "n_layers": 2}}},
           "data": {"class_path": "pdekit.learning.datamodules.FieldDataModule",
                    "init_args": {"files": [str(f) for f in files], "batch_size": 8, "seed": 0, **(data or {})}}}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def pdekit(*args, cwd, timeout=300):
    env = dict(os.environ, PYTHONPATH=TESTS + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([PDEKIT, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


def test_resume_after_kill_mid_epoch_is_exact(tmp_path, data):
    files = [data["easy"], data["medium"]]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    whole = pdekit("fit", "--config", config(tmp_path / "a", files, max_epochs=3), cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr[-2000:]
    # 51 training samples / batch 8 = 7 steps per epoch: step 10 is in the middle of epoch 2
    cfg_b = config(tmp_path / "b", files, max_epochs=3)
    killed = pdekit("fit", "--config", cfg_b, "--trainer.callbacks+=tests.training_helpers.KillAtStep",
                    "--trainer.callbacks.step=10", cwd=tmp_path)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert torch.load(tmp_path / "b/ckpt/last.ckpt", weights_only=True)["global_step"] == 10
    resumed = pdekit("fit", "--config", cfg_b, "--ckpt_path", "last", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    final_a, final_b = weights(tmp_path / "a/ckpt/last.ckpt"), weights(tmp_path / "b/ckpt/last.ckpt")
    assert torch.load(tmp_path / "b/ckpt/last.ckpt", weights_only=True)["global_step"] == 21
    for key in final_a:
        torch.testing.assert_close(final_b[key], final_a[key], rtol=0, atol=0, msg=key)

    # SIGTERM (a scheduler's pre-emption) with checkpoints only at epoch ends: the run is not
    # reported finished, the interruption writes last.ckpt, and the printed command resumes exactly
    (tmp_path / "c").mkdir()
    cfg_c = config(tmp_path / "c", files, max_epochs=3)
    raw = yaml.safe_load(cfg_c.read_text())
    for key in ("every_n_train_steps", "save_top_k"):  # the default: one checkpoint per epoch
        raw["trainer"]["callbacks"][0]["init_args"].pop(key)
    cfg_c.write_text(yaml.safe_dump(raw))
    stopped = pdekit("fit", "--config", cfg_c, "--trainer.callbacks+=tests.training_helpers.SignalAtStep",
                     "--trainer.callbacks.step=10", cwd=tmp_path)
    assert stopped.returncode == 143, stopped.stderr[-2000:]
    line = stopped.stderr.strip().splitlines()[-1]
    step = int(line.split("stopped by SIGTERM at step ", 1)[1].split(",")[0])
    assert step in (10, 11), line  # the step under way when the signal came is finished first
    assert torch.load(tmp_path / "c/ckpt/last.ckpt", weights_only=True)["global_step"] == step
    resume = shlex.split(line.split("resume with: ", 1)[1])
    assert resume[:3] == ["pdekit", "fit", "--config"] and resume[-2:] == ["--ckpt_path", "last"]
    resumed = pdekit(*resume[1:], cwd=tmp_path)  # the printed command, as the user runs it
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert torch.load(tmp_path / "c/ckpt/last.ckpt", weights_only=True)["global_step"] == 21
    final_c = weights(tmp_path / "c/ckpt/last.ckpt")
    for key in final_a:
        torch.testing.assert_close(final_c[key], final_a[key], rtol=0, atol=0, msg=key)


def test_ctrl_c_stops_training_with_status_130_and_keeps_its_work(tmp_path, data):
    cfg = config(tmp_path, [data["easy"]], max_epochs=50)
    stopped = pdekit("fit", "--config", cfg, "--trainer.callbacks+=tests.training_helpers.SignalAtStep",
                     "--trainer.callbacks.step=3", "--trainer.callbacks.signal_name=SIGINT", cwd=tmp_path)
    assert stopped.returncode == 130, stopped.stderr[-2000:]
    assert "stopped by SIGINT at step" in stopped.stderr and "Traceback" not in stopped.stderr
    step = int(stopped.stderr.split("stopped by SIGINT at step ", 1)[1].split(",")[0])
    assert step >= 3 and torch.load(tmp_path / "ckpt/last.ckpt", weights_only=True)["global_step"] == step


def test_a_second_run_into_the_same_checkpoint_folder_is_refused_unless_overwrite(tmp_path, data):
    cfg = config(tmp_path, [data["easy"]], max_epochs=1)
    env = dict(os.environ, PYTHONPATH=TESTS + os.pathsep + os.environ.get("PYTHONPATH", ""))
    first_run = subprocess.run([PDEKIT, "fit", "--config", str(cfg)], cwd=tmp_path, capture_output=True, text=True,
                               timeout=300, env=env, preexec_fn=lambda: os.umask(0o027))
    assert first_run.returncode == 0, first_run.stderr[-2000:]
    assert (tmp_path / "ckpt/last.ckpt").stat().st_mode & 0o777 == 0o640  # the umask's permissions
    first = (tmp_path / "ckpt/last.ckpt").read_bytes()
    again = pdekit("fit", "--config", cfg, cwd=tmp_path)
    errors = [line for line in again.stderr.splitlines() if line.startswith("pdekit: error:")]
    assert again.returncode == 2 and len(errors) == 1 and "Traceback" not in again.stderr, again.stderr
    assert "already holds checkpoints" in errors[0] and "--overwrite" in errors[0]
    assert (tmp_path / "ckpt/last.ckpt").read_bytes() == first and not list((tmp_path / "ckpt").glob("*-v1.ckpt"))
    fresh = pdekit("fit", "--config", cfg, "--overwrite", "--trainer.max_epochs", "2", cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "ckpt").glob("*.ckpt")) == ["last.ckpt"]
    assert torch.load(tmp_path / "ckpt/last.ckpt", weights_only=True)["epoch"] == 1


def test_evaluate_writes_metrics_and_figures_and_refuses_mismatch(tmp_path, data):
    files = [data["easy"], data["medium"]]
    fit = pdekit("fit", "--config", config(tmp_path, files), cwd=tmp_path)
    assert fit.returncode == 0, fit.stderr[-2000:]
    ckpt = tmp_path / "ckpt" / "last.ckpt"
    out = pdekit("evaluate", "--ckpt", ckpt, "--data", data["medium"], "--out", tmp_path / "ev", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["overall"]["samples"] == 24 and set(metrics["per_level"]) == {"medium"}
    assert 0 < metrics["overall"]["rel_l2_mean"] < 10 and metrics["overall"]["rel_residual_mean"] > 0
    for png in ("samples.png", "per_level.png"):
        assert (tmp_path / "ev" / png).read_bytes()[:4] == b"\x89PNG"
    # a dataset without the fields the model reads
    with h5py.File(data["easy"]) as src, h5py.File(tmp_path / "no_a.h5", "w") as dst:
        for key in src:
            if key != "a":
                src.copy(key, dst)
        dst.attrs.update(src.attrs)
    bad = pdekit("evaluate", "--ckpt", ckpt, "--data", tmp_path / "no_a.h5", cwd=tmp_path)
    assert bad.returncode == 2 and "is missing datasets ['a']" in bad.stderr
    not_ckpt = pdekit("evaluate", "--ckpt", data["easy"], "--data", data["easy"], cwd=tmp_path)
    assert not_ckpt.returncode == 2 and "not a torch checkpoint" in not_ckpt.stderr
    # the same trained FNO as a (nonlinear) preconditioner of a held-out system, in flexible CG
    from pdekit.krylov import fcg
    from pdekit.learning.solvers import load

    op, b, u = load_system(data["medium"], 0)
    M = load(ckpt, op)
    correction = M(b)
    assert correction.shape == b.shape and not correction[~torch.as_tensor(op.mask[0])].any()
    result = fcg(op, b, M, tol=1e-8, maxiter=50)
    energy = lambda e: float((e * op(e)).sum())  # noqa: E731  flexible CG never increases ||u - x||_A
    assert energy(u - result.x) < energy(u)


def test_ddp_on_two_cpu_processes(tmp_path, data):
    out = pdekit("fit", "--config", config(tmp_path, [data["easy"]], max_epochs=1, strategy="ddp", devices=2),
                 cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    checkpoint = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)
    # 32 training samples, 2 ranks x batch 8: 2 steps per epoch (each rank sees half)
    assert checkpoint["global_step"] == 2


# (the other bad inputs of `pdekit fit` are in tests/contracts/test_bad_input.py, run in-process)
@pytest.mark.parametrize("change,message", [
    ("nan", "NaN/Inf in inputs of sample(s)"),
])
def test_bad_input_is_named(tmp_path, data, change, message):
    files = [data["easy"]]
    if change == "missing":
        files = [tmp_path / "absent.h5"]
    if change == "foreign":
        with h5py.File(tmp_path / "foreign.h5", "w") as h5:
            h5["u"] = np.zeros((2, 4, 4))
        files = [tmp_path / "foreign.h5"]
    if change == "nan":
        nan_file = tmp_path / "nan.h5"
        nan_file.write_bytes(Path(data["easy"]).read_bytes())
        with h5py.File(nan_file, "r+") as h5:
            h5["f"][3] = np.nan
        files = [nan_file]
    cfg = config(tmp_path, files, max_epochs=1)
    if change == "yaml":
        cfg.write_text(cfg.read_text() + "\n  bad: [unclosed\n")
    if change == "network":
        cfg.write_text(cfg.read_text().replace("neuralop.models.FNO", "neuralop.models.NoSuchNet"))
    if change == "nan":  # the NaN sample must reach training: use every sample for training
        cfg = config(tmp_path, files, max_epochs=1, data={"split": [1.0, 0.0, 0.0]})
    out = pdekit("fit", "--config", cfg, cwd=tmp_path)
    assert out.returncode != 0
    assert message in out.stderr, out.stderr[-3000:]
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) < 40


def test_mix_split_and_normalization(data):
    assert mix_counts([32, 19], [0.7, 0.3]) == [32, 13]  # 45.7 total: easy limits it
    assert mix_counts([100, 10], [0.5, 0.5]) == [10, 10]
    dm = FieldDataModule([str(data["easy"]), str(data["medium"])], proportions=[0.5, 0.5], seed=3)
    dm.setup("fit")
    train = dm._sets["train"]
    levels = [train[i]["level"] for i in range(len(train))]
    assert levels.count(0) == levels.count(1) == 20 and dm.levels == ["easy", "medium"]
    again = FieldDataModule([str(data["easy"]), str(data["medium"])], proportions=[0.5, 0.5], seed=3)
    again.setup("fit")
    keys = lambda ds: {(ds[i]["file"], ds[i]["index"]) for i in range(len(ds))}  # noqa: E731
    assert keys(train) == keys(again._sets["train"])
    assert not keys(train) & keys(dm._sets["val"]) and not keys(dm._sets["val"]) & keys(dm._sets["test"])
    # statistics are those of the training split: check one channel against numpy
    f_train = np.stack([train[i]["x"][1].numpy() for i in range(len(train))])
    assert float(dm.stats["x_mean"][1]) == pytest.approx(f_train.mean(), rel=1e-5)
    assert float(dm.stats["x_std"][1]) == pytest.approx(f_train.std(ddof=1), rel=1e-4)


def test_residual_metric_on_known_answers(data):
    path = data["medium"]
    with h5py.File(path) as h5:
        u, a, f, bt, bv = (h5[k][:4] for k in ("u", "a", "f", "bc_type", "bc_value"))
    op, _, _ = load_system(path, 0)
    residual = poisson_relative_residual(torch.as_tensor(u), op.grid, a, f, bt, bv)
    assert float(residual.max()) <= 1e-10
    zero = poisson_relative_residual(torch.zeros_like(torch.as_tensor(u)), op.grid, a, f, bt, bv)
    torch.testing.assert_close(zero, torch.ones(4, dtype=torch.float64))


CONFIGS = Path(__file__).resolve().parents[3] / "experiments/configs"


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.yaml") if p.name != "trainer.yaml"))
def test_example_configs_resolve(tmp_path, name, monkeypatch, capsys):
    import pdekit.learning.cli

    cfg = Path(__file__).resolve().parents[3] / "experiments/configs" / name
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["pdekit"])
    assert pdekit.learning.cli.main(["fit", "--config", str(cfg), "--print_config"]) == 0, capsys.readouterr().err[-2000:]
    resolved = yaml.safe_load(capsys.readouterr().out)
    assert resolved["model"]["class_path"] in ("pdekit.learning.tasks.OperatorLearning", "pdekit.learning.tasks.Autoregressive",
                                               "models.dcdm.DCDM", "models.gp_hm.task.GPHM", "models.fkpinn.FKPINN",
                                               "models.npsolver.NPSolver", "models.multigrid.NeuralMultigrid",
                                               "models.learned_amg.LearnedAMG")
    assert resolved["weights_only"] is True  # resuming reads checkpoints with weights_only=True
    # composed on the shared file, naming the run once: its settings arrive, checkpoints and logs follow the run
    shared = yaml.safe_load((CONFIGS / "trainer.yaml").read_text())
    assert resolved["trainer"]["devices"] == shared["trainer"]["devices"]
    assert resolved["checkpoint"]["save_last"] is True
    assert "dirpath" not in (resolved.get("checkpoint") or {}) and "logger" not in yaml.safe_load(cfg.read_text())["trainer"]


def test_tfno_baseline_trains_in_process(tmp_path, data):
    import lightning as L

    from pdekit.learning.tasks import OperatorLearning

    dm = FieldDataModule([str(data["easy"])], batch_size=8)
    task = OperatorLearning(network="neuralop.models.TFNO", in_channels=dm.in_channels, out_channels=1, dim=2,
                            network_kwargs={"n_modes": [6, 6], "hidden_channels": 8, "n_layers": 2,
                                            "factorization": "tucker", "rank": 0.5})
    trainer = L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, use_distributed_sampler=False, default_root_dir=tmp_path)
    trainer.fit(task, dm, weights_only=True)
    assert bool(task.normalizer.fitted) and torch.isfinite(trainer.callback_metrics["val/rel_l2"])
    assert "val/rel_residual/easy" in trainer.callback_metrics


def heat_file(path, samples=12, steps=16, n=32, nu=0.05, dt=0.1):
    from tests.training_helpers import heat_trajectories

    from pdekit.files.dataset import write_timeseries

    t, u = heat_trajectories(samples, steps, n, nu, dt)
    levels = np.array(["smooth"] * (samples // 2) + ["rough"] * (samples - samples // 2))
    return write_timeseries(path, {"u": u, "t": t, "level": levels, "seed": np.arange(samples)}, pde="heat",
                            fields=["u"], spacing=[2 * np.pi / n], dt=dt, config={"nu": nu}, generator_version="test")


def test_rollout_of_the_exact_propagator_is_exact(tmp_path, monkeypatch):
    from pdekit.learning.evaluation.fields import evaluate_rollouts
    from pdekit.learning.tasks import Autoregressive

    monkeypatch.setenv("PDEKIT_ALLOW", "tests.training_helpers.PeriodicHeatPropagator")  # a test's own network

    path = heat_file(tmp_path / "heat.h5")
    signature = {"inputs": ["u"], "history": 1}

    def rollout_curve(nu):
        task = Autoregressive(network="tests.training_helpers.PeriodicHeatPropagator", in_channels=1, out_channels=1,
                              dim=1, network_kwargs={"nu": nu, "dt": 0.1, "n": 32})
        metrics, _ = evaluate_rollouts(task, signature, [path])
        return np.array(metrics["rollout"]["rel_l2_mean"]), metrics

    exact, metrics = rollout_curve(0.05)
    assert len(exact) == 15 and exact.max() < 1e-5  # float32 round-off only
    assert set(metrics["per_level"]) == {"smooth", "rough"} and metrics["overall"]["samples"] == 12
    wrong, _ = rollout_curve(0.1)  # the wrong viscosity: error accumulates step by step
    assert wrong[0] > 1e-3 and np.all(np.diff(wrong) > 0)


def test_autoregressive_training_and_rollout_evaluation(tmp_path):
    path = heat_file(tmp_path / "heat.h5", samples=16)
    cfg = config(tmp_path, [path], task="pdekit.learning.tasks.Autoregressive", n_modes=[8], data={"unroll": 2})
    fit = pdekit("fit", "--config", cfg, cwd=tmp_path)
    assert fit.returncode == 0, fit.stderr[-3000:]
    out = pdekit("evaluate", "--ckpt", tmp_path / "ckpt" / "last.ckpt", "--data", path, "--out", tmp_path / "ev",
                 cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert len(metrics["rollout"]["step"]) == 15 and set(metrics["rollout"]["per_level"]) == {"smooth", "rough"}
    assert (tmp_path / "ev" / "rollout.png").read_bytes()[:4] == b"\x89PNG"
    # a static-data task on time-series data is refused with a pointer to the right task
    wrong = config(tmp_path, [path], n_modes=[8])
    refused = pdekit("fit", "--config", wrong, cwd=tmp_path)
    assert refused.returncode == 2 and "use pdekit.learning.tasks.Autoregressive" in refused.stderr, refused.stderr[-2000:]
