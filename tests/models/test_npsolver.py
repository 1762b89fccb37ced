"""NPSolver: BA-Transolver tokens and masks, PCG supervision, label-free training, use as a solver,
a warm start and a preconditioner."""
import copy

import h5py
import numpy as np
import pytest
import scipy.sparse.linalg as spla
import torch
from torch.utils.data import DataLoader

from tests.conftest import poisson_signature, save_task_checkpoint
from models.npsolver import NPSolver, problem_tokens
from pdekit.learning.checkpoints import load_task
from pdekit.files.dataset import grid_of, open_poisson
from pdekit.learning.datamodules import FieldSamples
from pdekit.krylov import fcg, pcg
from pdekit.learning.evaluation.metrics import relative_l2
from pdekit.operators import DiffusionOperator
from pdekit.learning.solvers import load
from pdekit.precond import Jacobi
from pdekit.learning.solvers import initial_guess

SMALL = {"layers": 2, "width": 32, "heads": 4, "slices": [8, 4]}


@pytest.fixture(scope="module")
def medium_file(tmp_path_factory):
    """48 medium-level samples at 16² (holes, variable a, a Neumann face)."""
    from datagen.cli import main

    path = tmp_path_factory.mktemp("np") / "medium16.h5"
    assert main(["poisson", "--level", "medium", "--resolution", "16", "--n", "48", "--seed", "0",
                 "--out", str(path), "--quiet"]) == 0
    return path


def _batch(path, indices):
    samples = FieldSamples(path, ["a", "f", "mask"], ["u"], ["a"], system=True)
    return next(iter(DataLoader(torch.utils.data.Subset(samples, indices), batch_size=len(indices))))


def _grid(path):
    with open_poisson(path) as h5:
        return grid_of(h5)


def _task(**kwargs):
    torch.manual_seed(0)
    return NPSolver(network_kwargs=SMALL, **kwargs)


@pytest.fixture(scope="module")
def trained(medium_file):
    """A BA-Transolver trained label-free (PCG supervision) for 300 steps on 40 samples."""
    grid = _grid(medium_file)
    task = _task(lr=3e-3)
    task.grid = grid
    train = _batch(medium_file, list(range(40)))
    optimizer = torch.optim.Adam(task.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    for step in range(300):
        chosen = torch.randperm(40, generator=generator)[:8]
        batch = {k: v[chosen] for k, v in train.items()}
        loss = task._loss(task.losses(batch))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(task.parameters(), 1.0)
        optimizer.step()
    task.data_signature = dict(poisson_signature(), levels=["medium"])
    return task.eval()


def test_tokens_are_the_unknowns_and_the_boundary_faces(medium_file):
    grid = _grid(medium_file)
    batch = _batch(medium_file, [0, 1])
    tokens = problem_tokens(grid, batch["a"], batch["f"], batch["bc_type"], batch["bc_value"])
    for i in range(2):
        op = DiffusionOperator.from_arrays(grid, batch["a"][i], batch["bc_type"][i], batch["bc_value"][i])
        assert int(tokens["interior_mask"][i].sum()) == int(op.mask.sum())
        # one boundary token per (unknown, non-active neighbour) pair = the wall faces
        kinds = batch["bc_type"][i].numpy()
        active = kinds[1:-1, 1:-1] == 0
        faces = sum(int((active & (kinds[1 + dx:17 + dx, 1 + dy:17 + dy] > 0)).sum())
                    for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1)))
        assert int(tokens["boundary_mask"][i].sum()) == faces
    # a Neumann face is present on the medium level, and it is typed as such
    boundary = tokens["boundary"][tokens["boundary_mask"]]
    assert (boundary[:, 3] == 1).any() and (boundary[:, 2] == 1).any()
    assert torch.all(boundary[:, 2] + boundary[:, 3] == 1)


def test_supervision_target_is_k_pcg_steps_of_each_samples_own_system(medium_file):
    grid = _grid(medium_file)
    batch = _batch(medium_file, [0, 1, 2])
    task = _task(pcg_steps=7, pcg_tol=0.0)
    task.grid = grid
    op, b = task._system(batch)
    prediction = task.solve(grid, batch["a"], batch["f"], batch["bc_type"], batch["bc_value"]).detach()
    target = task.pcg_target(op, b, prediction)
    for i in range(3):
        single = DiffusionOperator.from_arrays(grid, batch["a"][i], batch["bc_type"][i], batch["bc_value"][i])
        direct = pcg(single, b[i], Jacobi(single), x0=prediction[i].double(), tol=0.0, maxiter=7)
        assert int(direct.iterations) == 7
        torch.testing.assert_close(target[i], direct.x, rtol=1e-12, atol=1e-14)
    assert not target.requires_grad


def test_label_free_training_never_reads_u(medium_file, tmp_path):
    """Two steps on a file whose u is NaN move the weights exactly as on the original file."""
    nan_file = tmp_path / "nan_u.h5"
    nan_file.write_bytes(medium_file.read_bytes())
    with h5py.File(nan_file, "r+") as h5:
        h5["u"][...] = np.nan
    results = []
    for path in (medium_file, nan_file):
        task = _task()
        task.grid = _grid(path)
        optimizer = torch.optim.Adam(task.parameters(), lr=1e-3)
        for indices in ([0, 1, 2, 3], [4, 5, 6, 7]):
            loss = task._loss(task.losses(_batch(path, indices)))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        results.append(task.state_dict())
    for key in results[0]:
        assert torch.equal(results[0][key], results[1][key]), key
    supervised = _task(loss="supervised")
    supervised.grid = _grid(nan_file)
    with pytest.raises(ValueError, match="labels u"):
        supervised.losses(_batch(nan_file, [0, 1]))


def test_short_label_free_training_beats_the_zero_prediction(trained, medium_file):
    """300 CPU steps without labels: held-out relative L2 far below the zero guess's 1."""
    held_out = _batch(medium_file, list(range(40, 48)))
    with torch.no_grad():
        prediction = trained.predict_fields(held_out, _grid(medium_file))
    error = relative_l2(prediction, held_out["y"])
    # measured mean 0.50-0.59 over seeds 0-4 (threads 1, 2 and 4 gave identical values); zero guess: 1
    assert error.mean() < 0.7, error


def test_padding_a_batch_of_two_geometries_changes_nothing(medium_file):
    grid = _grid(medium_file)
    task = _task().eval()
    batch = _batch(medium_file, [3, 9])
    with torch.no_grad():
        together = task.predict_fields(batch, grid)
        alone = [task.predict_fields({k: v[i:i + 1] for k, v in batch.items()}, grid) for i in range(2)]
    counts = [int(batch["mask"][i].sum()) for i in range(2)]
    assert counts[0] != counts[1]  # different token counts: one of them is padded
    for i in range(2):
        torch.testing.assert_close(together[i:i + 1], alone[i], rtol=1e-4, atol=1e-6)


def test_boundary_tokens_carry_the_boundary_values(medium_file):
    grid = _grid(medium_file)
    task = _task().eval()
    batch = _batch(medium_file, [0])
    changed = copy.deepcopy(batch)
    dirichlet = changed["bc_type"] == 1
    changed["bc_value"] = torch.where(dirichlet, changed["bc_value"] + 0.3, changed["bc_value"])
    with torch.no_grad():
        before = task.predict_fields(batch, grid)
        after = task.predict_fields(changed, grid)
    assert (before - after).abs().max() > 1e-4


def test_prediction_is_homogeneous_in_the_data(medium_file):
    """u(c f, c g) = c u(f, g) for c > 0, as for the exact solution."""
    grid = _grid(medium_file)
    task = _task().eval()
    batch = _batch(medium_file, [0, 1])
    scaled = dict(batch, f=batch["f"] * 7.0, bc_value=batch["bc_value"] * 7.0)
    with torch.no_grad():
        torch.testing.assert_close(task.predict_fields(scaled, grid), 7.0 * task.predict_fields(batch, grid),
                                   rtol=1e-4, atol=1e-7)


def test_gradient_flows_through_pcg_only_without_stop_gradient(medium_file):
    grid = _grid(medium_file)
    batch = _batch(medium_file, [0, 1])
    grads = {}
    for stop in (True, False):
        task = _task(stop_gradient=stop, pcg_steps=5)
        task.grid = grid
        task._loss(task.losses(batch)).backward()
        grads[stop] = torch.cat([p.grad.flatten() for p in task.parameters() if p.grad is not None])
    assert torch.isfinite(grads[False]).all()
    assert (grads[True] - grads[False]).abs().max() > 1e-6 * grads[True].abs().max()


def test_loss_variants_and_inner_preconditioners(medium_file):
    grid = _grid(medium_file)
    batch = _batch(medium_file, [0, 1])
    for kwargs in ({"loss": "residual"}, {"loss": "mixed"}, {"loss": "supervised"}, {"inner": "amg"},
                   {"inner": "none"}):
        task = _task(**kwargs)
        task.grid = grid
        loss = task._loss(task.losses(batch))
        assert torch.isfinite(loss) and loss > 0, kwargs
    # AMG as the inner preconditioner: the target is much closer to the solution after K steps
    errors = {}
    for inner in ("jacobi", "amg"):
        task = _task(inner=inner, pcg_steps=3, pcg_tol=0.0)
        task.grid = grid
        op, b = task._system(batch)
        target = task.pcg_target(op, b, torch.zeros_like(b))
        errors[inner] = float(relative_l2(target.unsqueeze(1), batch["y"].double()).max())
    assert errors["amg"] < 0.2 * errors["jacobi"]


def test_checkpoint_round_trip_evaluate_precondition_and_warm_start(trained, medium_file, tmp_path):
    from pdekit.learning.evaluation.fields import evaluate

    ckpt = save_task_checkpoint(trained, tmp_path / "npsolver.ckpt", trained.data_signature)
    task, _ = load_task(ckpt)  # weights_only=True
    grid = _grid(medium_file)
    batch = _batch(medium_file, [40, 41])
    with torch.no_grad():
        torch.testing.assert_close(task.predict_fields(batch, grid), trained.predict_fields(batch, grid))
    metrics = evaluate(ckpt, [medium_file], tmp_path / "evaluation", figures=1)
    # measured 0.54-0.58 over the file's 48 samples for seeds 0-4 (any thread count); zero guess: 1
    assert metrics["overall"]["rel_l2_mean"] < 0.75, metrics["overall"]
    assert np.isfinite(metrics["overall"]["rel_residual_mean"]) and metrics["overall"]["rel_residual_mean"] > 0
    assert set(metrics["per_level"]) == {"medium"}

    op = DiffusionOperator.from_arrays(grid, batch["a"][1], batch["bc_type"][1], batch["bc_value"][1])
    b = op.rhs(batch["f"][1].double())
    exact = batch["y"][1, 0].double()
    guess = initial_guess(ckpt, op, batch["f"][1])
    raw = initial_guess(ckpt, op, batch["f"][1], energy_scaling=False)
    assert guess.shape == op.shape and guess.dtype == torch.float64
    energy = lambda e: float((e * op(e)).sum()) ** 0.5  # noqa: E731  (the norm CG minimises)
    assert energy(guess - exact) <= energy(raw - exact) + 1e-12  # the optimal multiple is no worse
    assert energy(guess - exact) < 0.6 * energy(exact)  # far better than the zero guess
    warm = pcg(op, b, Jacobi(op), x0=guess, tol=1e-8)
    assert warm.converged.all()
    torch.testing.assert_close(warm.x, exact, rtol=0, atol=1e-5 * float(exact.abs().max()))
    # scipy takes the same guess as x0 on the active unknowns
    layout = op.layout()
    x, info = spla.cg(op.to_sparse(), layout.to_vectors_np(b.numpy()), x0=layout.to_vectors_np(guess.numpy()),
                      rtol=1e-8)
    assert info == 0
    np.testing.assert_allclose(layout.to_fields_np(x), exact.numpy(), atol=1e-5 * float(exact.abs().max()))

    # as a (nonlinear) preconditioner in FCG with two Jacobi sweeps after it: whether it converges
    # depends on the training run (seeds 0-4 of this fixture: converged in 114 iterations once, else
    # not within 1000; plain CG: 216), so what is asserted is that the answer is reported honestly
    solved = fcg(op, b, load(ckpt, op, smoothing=2), tol=1e-8, maxiter=300)
    true = float(op.relative_residual(solved.x, b))
    assert bool(solved.converged.all()) == (true <= 1e-8 * 1.01), (solved, true)
    assert true <= 1.0  # never worse than the zero guess


def test_runs_in_3d_on_any_grid():
    from pdekit.boundary import BoundaryConditions, Neumann
    from pdekit.grid import Grid

    torch.manual_seed(0)
    task = NPSolver(network_kwargs=SMALL, dim=3).eval()
    for n in (6, 9):
        grid = Grid.box((n, n, n))
        mask = np.ones((n, n, n), bool)
        mask[2:4, 2:4, 2:4] = False
        op = DiffusionOperator(grid, mask=mask, bc=BoundaryConditions(faces={"x-": Neumann(0.5)}))
        f = torch.randn(2, n, n, n, dtype=torch.float64)
        u = initial_guess(task, op, f)
        assert u.shape == (2, n, n, n) and torch.isfinite(u).all()
        assert (u[:, ~op.mask[0]] == 0).all()


def test_initial_guess_from_an_operator_learning_checkpoint(fno_checkpoint, poisson_file):
    """Any solver that predicts u from (a, f, mask) gives a warm start: here the FNO baseline."""
    grid = _grid(poisson_file)
    batch = _batch(poisson_file, [0, 1])
    op = DiffusionOperator.from_arrays(grid, batch["a"], batch["bc_type"], batch["bc_value"])
    task, _ = load_task(fno_checkpoint)
    guess = initial_guess(fno_checkpoint, op, batch["f"], energy_scaling=False)
    with torch.no_grad():
        direct = task(batch["x"], batch["mask"])[:, 0].double()
    torch.testing.assert_close(guess, direct * batch["mask"])
    scaled = initial_guess(fno_checkpoint, op, batch["f"])
    b = op.rhs(batch["f"].double())
    gb, gag = (scaled * b).flatten(1).sum(1), (scaled * op(scaled)).flatten(1).sum(1)
    torch.testing.assert_close(gb, gag, rtol=1e-9, atol=0)  # the energy-optimal multiple: (g, b) = (g, A g)
