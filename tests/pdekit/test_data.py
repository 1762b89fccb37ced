"""Poisson HDF5 files: exact system rebuild from the file, schema validation, lazy reading."""
import h5py
import numpy as np
import pytest
import torch

from pdekit import BoundaryConditions, DiffusionOperator, Dirichlet, Grid, Neumann
from pdekit.files.dataset import DatasetFormatError, PoissonDataset, load_system, open_poisson, write_poisson
from pdekit.krylov import pcg
from pdekit.precond import AMG


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    n, count = 24, 3
    bc = BoundaryConditions(default=Dirichlet(0.5), faces={"y+": Neumann(1.0)}, obstacle=Neumann(0.0))
    grid = Grid.box((n, n), 1.0, bc)
    rng = np.random.default_rng(0)
    out = {k: [] for k in ("a", "f", "u", "mask", "bc_type", "bc_value", "solver_iterations",
                           "solver_residual", "solve_seconds")}
    for s in range(count):
        a = np.exp(rng.standard_normal((n, n)))
        mask = np.ones((n, n), bool)
        mask[8:12, 5 + s:10 + s] = False
        f = rng.standard_normal((n, n))
        op = DiffusionOperator(grid, a, mask, bc)
        res = pcg(op, op.rhs(f), AMG(op), tol=1e-12).raise_if_failed()
        for key, value in (("a", a), ("f", f), ("u", res.x.numpy()), ("mask", mask), ("bc_type", op.bc_type[0]),
                           ("bc_value", op.bc_value[0]), ("solver_iterations", int(res.iterations)),
                           ("solver_residual", float(res.residual)), ("solve_seconds", 0.0)):
            out[key].append(value)
    arrays = {k: np.stack(v) if isinstance(v[0], np.ndarray) else np.asarray(v) for k, v in out.items()}
    arrays["level"] = np.array(["easy"] * count)
    arrays["seed"] = np.arange(count)
    path = tmp_path_factory.mktemp("data") / "poisson.h5"
    write_poisson(path, arrays, grid=grid, config={"n": count}, generator_version="test")
    return path


def test_load_system_rebuilds_the_exact_system(dataset):
    for i in range(3):
        op, b, u = load_system(dataset, i)
        assert float(op.relative_residual(u, b)) <= 1e-10


def test_lazy_dataset(dataset):
    ds = PoissonDataset(dataset)
    assert len(ds) == 3
    item = ds[1]
    assert item["u"].shape == (24, 24) and item["mask"].dtype == torch.bool
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=1)
    assert next(iter(loader))["a"].shape == (2, 24, 24)


def test_foreign_file_is_refused(tmp_path):
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as h5:
        h5["x"] = np.zeros(3)
    with pytest.raises(DatasetFormatError, match="not a pdekit dataset"):
        open_poisson(path)
    (tmp_path / "junk.h5").write_text("not hdf5")
    with pytest.raises(DatasetFormatError, match="not a readable HDF5"):
        open_poisson(tmp_path / "junk.h5")


def test_truncated_and_wrong_version_are_refused(dataset, tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(dataset.read_bytes())
    with h5py.File(bad, "a") as h5:
        data = h5["u"][:2]
        del h5["u"]
        h5["u"] = data
    with pytest.raises(DatasetFormatError, match="truncated or inconsistent"):
        open_poisson(bad)
    with h5py.File(bad, "a") as h5:
        h5.attrs["schema_version"] = 99
    with pytest.raises(DatasetFormatError, match="schema version 99"):
        open_poisson(bad)


def test_no_partial_file_left_on_failure(tmp_path):
    with pytest.raises(ValueError, match="missing arrays"):
        write_poisson(tmp_path / "x.h5", {}, grid=Grid((4, 4)), config={}, generator_version="t")
    assert list(tmp_path.iterdir()) == []


def test_counts_pick_exact_training_samples_per_file_and_constant_channels_are_only_centred(poisson_file, tmp_path):
    """`counts` (a generation budget split across levels) takes exactly that many training samples
    of each file; the easy level's a = 1 is constant, so its channel is centred, not divided by ~0."""
    from pdekit.learning.datamodules import FieldDataModule
    from pdekit.errors import ConfigError

    data = FieldDataModule([str(poisson_file), str(poisson_file)], counts=[5, 2], split=[1.0, 0.0, 0.0])
    data.setup()
    assert len(data._sets["train"]) == 7
    assert float(data.stats["x_std"][0]) == 1.0  # log10 a = 0 everywhere on the easy level
    assert float(data.stats["x_std"][1]) != 1.0  # f varies
    with pytest.raises(ConfigError, match="asks 30 training samples of .* which has 24"):
        FieldDataModule([str(poisson_file)], counts=[30], split=[1.0, 0.0, 0.0]).setup()
    with pytest.raises(ConfigError, match="proportions or data.init_args.counts, not both"):
        FieldDataModule([str(poisson_file)], counts=[3], proportions=[1.0])
    with pytest.raises(ConfigError, match="one integer >= 0 per file"):
        FieldDataModule([str(poisson_file), str(poisson_file)], counts=[3])


def test_hdf5_write_failures_are_reported_on_one_line():
    """h5py's report of a failed write (a full disk) spans lines and repeats internals; the message
    users see is the file and the system's reason."""
    from pdekit.errors import os_error_message

    raw = OSError(28, "Driver write request failed (file write failed: time = Wed Dec  2 15:17:12 2026\n, "
                      "filename = '/data/w/.b.h5.g9nc.h5', file descriptor = 4, errno = 28, error message = "
                      "'No space left on device', buf = 0x5608, total write size = 432)")
    assert os_error_message(raw) == "/data/w/.b.h5.g9nc.h5: No space left on device"
    assert os_error_message(FileNotFoundError(2, "No such file or directory", "x.h5")) == \
        "x.h5: No such file or directory"
