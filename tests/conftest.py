import os
import sys
from pathlib import Path

# One thread per test worker, the same on every machine: a short training's outcome depends on the
# thread count (the order of floating-point reductions), and pdekit's commands would otherwise size
# their pool from the cores idle at the moment they start. Set before torch is imported, and
# inherited by the commands tests run in subprocesses.
for _variable in ("PDEKIT_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

sys.path.insert(0, os.path.dirname(__file__))  # tests/manufactured.py

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


# ------------------------------------------------------------------ session-scoped data and models
# Built once per test process (xdist worker) and shared: small files, untrained but real models.

@pytest.fixture
def run_cli():
    """Run one of the installed console scripts (``pdekit``, ``datagen``): ``run_cli([name, *args])``."""
    import subprocess
    import sys

    def run(argv, timeout=300, env=None):
        exe = Path(sys.executable).parent / argv[0]
        return subprocess.run([str(exe), *argv[1:]], capture_output=True, text=True, timeout=timeout, env=env)

    return run


@pytest.fixture(scope="session")
def shared_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("shared")


@pytest.fixture(scope="session")
def poisson_file(shared_dir) -> Path:
    """24 easy 2-D Poisson samples at 16^2."""
    from datagen import runner
    from datagen.generators import config_for

    path = shared_dir / "easy16.h5"
    runner.run(config_for("poisson", "easy", 24, 16, dim=2), path, progress=False)
    return path


@pytest.fixture(scope="session")
def burgers_file(shared_dir) -> Path:
    """Two short Burgers trajectories at 64 points (a time-series file)."""
    from datagen import runner
    from datagen.generators import config_for

    path = shared_dir / "burgers64.h5"
    runner.run(config_for("burgers", "easy", 2, 64, device="cpu", batch=2), path, progress=False)
    return path


@pytest.fixture(scope="session")
def channel_file(shared_dir) -> Path:
    """One short channel-flow trajectory past an obstacle at 16 cells across."""
    from datagen import runner
    from datagen.generators import config_for

    path = shared_dir / "channel16.h5"
    runner.run(config_for("navier_stokes_obstacles", "easy", 1, 16, device="cpu", pressure_precond="amg",
                          pressure_tol=1e-6), path, progress=False)
    return path


@pytest.fixture(scope="session")
def ritz_file(shared_dir) -> Path:
    """600 Ritz-vector right-hand sides of the easy level's operator at 16^2 (DCDM training data)."""
    from datagen.cli import main

    path = shared_dir / "ritz16.h5"
    assert main(["ritz", "--level", "easy", "--resolution", "16", "--n", "600", "--lanczos-steps", "256",
                 "--out", str(path), "--quiet"]) == 0
    return path


def save_task_checkpoint(task, path: Path, data_signature: dict | None) -> Path:
    """A checkpoint as `pdekit fit` writes it (weights + pdekit record), without training."""
    from pdekit.learning.task import checkpoint_record

    torch.save({"state_dict": task.state_dict(), "pdekit": checkpoint_record(task, data_signature)}, path)
    return path


def poisson_signature(dim: int = 2) -> dict:
    return {"pde": "poisson", "dim": dim, "timeseries": False, "inputs": ["a", "f", "mask"], "target": ["u"],
            "log_inputs": ["a"], "history": 1, "unroll": 1, "levels": ["easy"]}


@pytest.fixture(scope="session")
def fno_checkpoint(shared_dir) -> Path:
    """An (untrained) FNO operator-learning checkpoint for 2-D Poisson data."""
    from pdekit.learning.tasks import OperatorLearning

    torch.manual_seed(0)
    task = OperatorLearning(network_kwargs={"n_modes": [4, 4], "hidden_channels": 8, "n_layers": 2})
    return save_task_checkpoint(task, shared_dir / "fno.ckpt", poisson_signature())


@pytest.fixture(scope="session")
def dcdm_checkpoint(shared_dir) -> Path:
    """An (untrained) 2-D DCDM checkpoint."""
    from models.dcdm import DCDM

    torch.manual_seed(0)
    task = DCDM(channels=4, fine=2, coarse=2, post=2)
    return save_task_checkpoint(task, shared_dir / "dcdm.ckpt", poisson_signature())


@pytest.fixture(scope="session")
def pickled_checkpoint(shared_dir) -> Path:
    """A checkpoint that pickles a Python object (not loadable with weights_only=True)."""
    import argparse

    path = shared_dir / "pickled.ckpt"
    torch.save({"state_dict": {}, "pdekit": {"task": "pdekit.learning.tasks.OperatorLearning"},
                "hyper_parameters": argparse.Namespace(evil=True)}, path)
    return path


@pytest.fixture(scope="session")
def truncated_checkpoint(fno_checkpoint, shared_dir) -> Path:
    path = shared_dir / "truncated.ckpt"
    data = fno_checkpoint.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.fixture(scope="session")
def autoregressive_checkpoint(shared_dir) -> Path:
    """An (untrained) next-step FNO checkpoint for 1-D Burgers data."""
    from pdekit.learning.tasks import Autoregressive

    torch.manual_seed(0)
    task = Autoregressive(network_kwargs={"n_modes": [4], "hidden_channels": 4, "n_layers": 1}, in_channels=1,
                          out_channels=1, dim=1)
    signature = {"pde": "burgers", "dim": 1, "timeseries": True, "inputs": ["u"], "target": ["u"], "log_inputs": [],
                 "history": 1, "unroll": 1, "levels": ["easy"]}
    return save_task_checkpoint(task, shared_dir / "autoregressive.ckpt", signature)


@pytest.fixture(scope="session")
def gp_checkpoint(shared_dir) -> Path:
    """An (untrained) GP-HM checkpoint of a 1-D analytic problem."""
    from models.gp_hm.task import GPHM

    torch.manual_seed(0)
    task = GPHM(problem="poisson-1d-sin100", points=16, components=2)
    signature = {"problem": "poisson-1d-sin100", "dim": 1, "timeseries": False, "labels": None}
    return save_task_checkpoint(task, shared_dir / "gp.ckpt", signature)
