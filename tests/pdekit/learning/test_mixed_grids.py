"""Batches that mix files of different grids (levels differ in spacing: a Neumann face moves the
boundary half a cell) rebuild every sample's own system."""
import pytest
import torch

from pdekit.files.dataset import batch_grids, grid_of, open_poisson
from pdekit.learning.datamodules import FieldDataModule
from pdekit.learning.evaluation.metrics import poisson_relative_residual


@pytest.fixture(scope="module")
def medium_and_hard(tmp_path_factory):
    from datagen.cli import main

    folder = tmp_path_factory.mktemp("mixed")
    paths = []
    for level in ("medium", "hard"):
        path = folder / f"{level}.h5"
        assert main(["poisson", "--level", level, "--resolution", "16", "--n", "10", "--seed", "0",
                     "--out", str(path), "--quiet"]) == 0
        paths.append(path)
    return paths


def _stored_u(path, index):
    with open_poisson(path) as h5:
        return h5["u"][index].astype("float64")


def test_a_mixed_grid_batch_holds_each_samples_exact_solution_at_round_off(medium_and_hard):
    spacings = []
    for path in medium_and_hard:
        with open_poisson(path) as h5:
            spacings.append(grid_of(h5).spacing)
    assert spacings[0] != spacings[1]  # the levels' grids do differ

    data = FieldDataModule(files=[str(p) for p in medium_and_hard], split=[0.5, 0.5, 0.0], batch_size=10,
                           system=True)
    data.setup()
    batch = next(iter(data.val_dataloader()))  # validation: every file's part, in one batch
    assert set(batch["file"].tolist()) == {0, 1}
    grids = batch_grids(batch, data.grid())
    assert isinstance(grids, list) and {g.spacing for g in grids} == set(spacings)

    # the stored solutions in float64 (the batch's targets are float32)
    u = torch.stack([torch.as_tensor(_stored_u(medium_and_hard[f], i)) for f, i in zip(batch["file"].tolist(),
                                                                                    batch["index"].tolist())])
    own = poisson_relative_residual(u, grids, batch["a"], batch["f"], batch["bc_type"], batch["bc_value"])
    assert own.max() < 1e-8, own  # datagen solves to 1e-10
    # the first file's grid for every sample (what training did before): the other level's exact
    # solutions are far from solving the systems it builds
    first = poisson_relative_residual(u, data.grid(), batch["a"], batch["f"], batch["bc_type"], batch["bc_value"])
    assert first[batch["file"] == 1].min() > 1e-4, first


def test_npsolver_targets_and_residuals_use_each_samples_grid(medium_and_hard):
    from models.npsolver import NPSolver

    data = FieldDataModule(files=[str(p) for p in medium_and_hard], split=[0.5, 0.5, 0.0], batch_size=10,
                           system=True)
    data.setup()
    batch = next(iter(data.val_dataloader()))
    torch.manual_seed(0)
    task = NPSolver(network_kwargs={"layers": 1, "width": 16, "heads": 2, "slices": [4, 2]})
    task.grid = data.grid()
    op, b = task._system(batch)
    assert [g.spacing for g in op.grids] == [g.spacing for g in batch_grids(batch, data.grid())]
    # the stored exact solutions solve the operator the task trains against
    u = torch.stack([torch.as_tensor(_stored_u(medium_and_hard[f], i)) for f, i in zip(batch["file"].tolist(),
                                                                                    batch["index"].tolist())])
    assert op.relative_residual(u, b).max() < 1e-8
    with torch.no_grad():
        together = task.predict_fields(batch)
        alone = torch.cat([task.predict_fields({k: v[i:i + 1] for k, v in batch.items()}) for i in range(len(b))])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-6)
