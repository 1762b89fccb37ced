"""Neural multigrid: stencil probing and Galerkin products against assembled matrices, linearity,
symmetry and definiteness of the V-cycle, kernels that follow the operator, multigrid's
resolution-independent iteration count, and training -> checkpoint -> PCG / scipy / FCG."""
import numpy as np
import pytest
import scipy.sparse.linalg as spla
import torch

from tests.conftest import save_task_checkpoint
from datagen.poisson import sample_problem
from models.multigrid import NeuralMultigrid, _block_sum, _each_system, build_hierarchy, coarse_shape, prolong, restrict
from pdekit import stencils
from pdekit.krylov import fcg, pcg
from pdekit.operators import DiffusionOperator
from pdekit.learning.solvers import load
from pdekit.precond import Jacobi


def _system(level, n, dim=2, seed=0):
    grid, a, mask, bc, f = sample_problem(level, n, dim, seed)
    op = DiffusionOperator(grid, a, mask, bc)
    return op, op.rhs(f)


def _perturbed(dim=2, seed=1):
    """A task whose kernel network's last layer is not zero (a 'trained-like' hierarchy)."""
    torch.manual_seed(seed)
    task = NeuralMultigrid(dim=dim)
    with torch.no_grad():
        task.net.out.weight.normal_(0, 0.3)
    return task


def _matrix(apply, mask):
    """Column-by-column materialisation of a map on the active cells."""
    index = np.flatnonzero(mask)
    columns = []
    for j in index:
        e = torch.zeros(mask.size, dtype=torch.float64)
        e[j] = 1.0
        columns.append(apply(e.view(1, *mask.shape))[0].flatten().numpy()[index])
    return np.stack(columns, 1)


def test_probe_recovers_the_assembled_operator():
    op, _ = _system("hard", 12)
    S = stencils.probe(lambda x: _each_system(op, x), op.shape, 1, 1)
    mask = op.mask[0]
    dense = _matrix(lambda x: stencils.apply(S, x), mask)
    exact = op.to_sparse().toarray()
    assert np.abs(dense - exact).max() < 1e-12 * np.abs(exact).max()


@pytest.mark.parametrize("dim,n", [(2, 11), (3, 6)])
def test_galerkin_stencil_equals_PtAP_and_restrict_is_the_adjoint(dim, n):
    op, _ = _system("medium", n, dim)
    task = _perturbed(dim)
    with torch.no_grad():
        levels = build_hierarchy(op, task.net, max_coarse=1)
    P, shape = levels[0].prolongation, levels[0].shape
    cshape = coarse_shape(shape)
    ncoarse = int(np.prod(cshape))
    cols = []
    for j in range(ncoarse):
        e = torch.zeros(1, ncoarse, dtype=torch.float64)
        e[0, j] = 1.0
        cols.append(prolong(P, e.view(1, *cshape), shape).flatten())
    Pm = torch.stack(cols, 1).numpy()  # (fine, coarse)
    A = op.to_sparse()
    full = np.zeros((int(np.prod(shape)),) * 2)
    index = np.flatnonzero(op.mask[0])
    full[np.ix_(index, index)] = A.toarray()
    galerkin = Pm.T @ full @ Pm
    S = levels[1].stencil
    probed = np.stack([stencils.apply(S, torch.eye(ncoarse, dtype=torch.float64)[j].view(1, *cshape)).flatten().numpy()
                       for j in range(ncoarse)], 1)
    active = levels[1].active.flatten().numpy()
    assert np.abs(probed - galerkin)[np.ix_(active, active)].max() < 1e-10 * np.abs(galerkin).max()
    x, y = torch.randn(1, *cshape, dtype=torch.float64), torch.randn(1, *shape, dtype=torch.float64)
    assert torch.allclose((prolong(P, x, shape) * y).sum(), (x * restrict(P, y)).sum(), rtol=1e-12)
    assert _block_sum(torch.ones(1, *shape), dim).sum() == np.prod(shape)


@pytest.mark.parametrize("dim,n,level", [(2, 14, "hard"), (2, 13, "extreme"), (3, 6, "hard")])
def test_v_cycle_is_linear_symmetric_and_positive_definite(dim, n, level):
    op, _ = _system(level, n, dim)
    task = _perturbed(dim)
    module = task.preconditioner_module(op)
    apply = lambda r: module(r.unsqueeze(1)).squeeze(1)  # noqa: E731
    r1, r2 = torch.randn(2, 1, *op.shape, dtype=torch.float64) * torch.as_tensor(op.mask)
    combined = apply(2.0 * r1 - 3.0 * r2)
    assert torch.allclose(combined, 2.0 * apply(r1) - 3.0 * apply(r2), atol=1e-12 * combined.abs().max())
    M = _matrix(apply, op.mask[0])
    assert np.abs(M - M.T).max() < 1e-11 * np.abs(M).max()
    assert np.linalg.eigvalsh(0.5 * (M + M.T)).min() > 0


def test_kernels_follow_the_mask_and_the_coefficient():
    grid, a, mask, bc, _ = sample_problem("medium", 16, 2, 0)
    task = _perturbed()

    @torch.no_grad()
    def kernels(a, mask):
        levels = build_hierarchy(DiffusionOperator(grid, a, mask, bc), task.net)
        return levels[0].prolongation, levels[0].smoother

    P, w = kernels(a, mask)
    a2 = a.copy()
    a2[:8] *= 100.0
    P2, w2 = kernels(a2, mask)
    assert (P - P2).abs().max() > 1e-3 and (w - w2).abs().max() > 1e-3
    mask2 = mask.copy()
    mask2[4:8, 4:8] = False
    P3, _ = kernels(a, mask2)
    changed = (P - P3).abs().amax(1)[0] > 1e-6
    assert changed[4:8, 4:8].all() and changed.sum() < changed.numel()  # the hole and its surroundings


def test_untrained_hierarchy_is_multigrid_with_resolution_independent_iterations():
    """Known answer: geometric multigrid with Galerkin coarse operators needs a fixed number of
    PCG iterations whatever the grid size (Poisson, constant coefficient)."""
    torch.manual_seed(0)
    task = NeuralMultigrid()
    counts = []
    for n in (16, 32, 64, 128):
        op, b = _system("easy", n, seed=3)
        M = task.preconditioner_module(op)
        result = pcg(op, b, lambda r: M(r.unsqueeze(1)).squeeze(1), tol=1e-8, maxiter=100)
        assert bool(result.converged)
        counts.append(int(result.iterations))
    assert max(counts) <= 12 and max(counts) - min(counts) <= 2, counts


def test_three_dimensional_hierarchy_converges_in_few_iterations():
    torch.manual_seed(0)
    task = NeuralMultigrid(dim=3)
    op, b = _system("medium", 16, 3, seed=2)
    M = task.preconditioner_module(op)
    result = pcg(op, b, lambda r: M(r.unsqueeze(1)).squeeze(1), tol=1e-8, maxiter=100)
    jacobi = pcg(op, b, Jacobi(op), tol=1e-8, maxiter=500)
    assert bool(result.converged) and int(result.iterations) * 3 < int(jacobi.iterations)


@pytest.fixture(scope="module")
def trained_checkpoint(tmp_path_factory):
    """A kernel network trained for 30 steps on mixed medium/hard/extreme 16² operators."""

    folder = tmp_path_factory.mktemp("mg")
    torch.manual_seed(0)
    task = NeuralMultigrid(lr=3e-3, power_steps=4)
    optimizer = torch.optim.Adam(task.parameters(), lr=3e-3)
    ops = []
    for k in range(6):
        grid, a, mask, bc, _ = sample_problem(("medium", "hard", "extreme")[k % 3], 16, 2, 100 + k)
        ops.append(DiffusionOperator(grid, np.stack([a]), np.stack([mask]), bc))
    losses = []
    for step in range(30):
        op = ops[step % len(ops)]
        probes = torch.randn(1, *op.shape) * torch.as_tensor(op.mask, dtype=torch.float32)
        from models.multigrid import convergence_loss

        loss = convergence_loss(op, task.hierarchy(op, torch.float32), probes, 4, 2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(np.isfinite(losses))
    signature = {"pde": "poisson", "dim": 2, "timeseries": False, "inputs": ["a", "f", "mask"], "target": ["u"],
                 "log_inputs": ["a"], "history": 1, "unroll": 1, "levels": ["medium", "hard", "extreme"]}
    return save_task_checkpoint(task, folder / "mg.ckpt", signature)


def test_trained_checkpoint_beats_jacobi_in_pcg_scipy_and_fcg(trained_checkpoint):
    op, b = _system("hard", 32, seed=10_000)  # held out
    M = load(trained_checkpoint, op)
    assert M.linear  # plain PCG is valid
    result = pcg(op, b, M, tol=1e-8, maxiter=500)
    jacobi = pcg(op, b, Jacobi(op), tol=1e-8, maxiter=2000)
    assert bool(result.converged) and int(result.iterations) * 4 < int(jacobi.iterations)
    flexible = fcg(op, b, M, tol=1e-8, maxiter=500)
    assert abs(int(flexible.iterations) - int(result.iterations)) <= 3
    A = op.to_sparse()
    rhs = b[torch.as_tensor(op.mask[0])].numpy()
    count = []
    x, info = spla.cg(A, rhs, M=M.as_linear_operator(), rtol=1e-8, maxiter=500, callback=lambda _: count.append(1))
    assert info == 0 and np.linalg.norm(A @ x - rhs) <= 1e-7 * np.linalg.norm(rhs)
    assert abs(len(count) - int(result.iterations)) <= 2


def test_trained_checkpoint_in_the_channel_flow_pressure_solve(trained_checkpoint):
    from datagen.ns_channel import make_preconditioner

    op, _ = _system("medium", 24)
    M, flexible = make_preconditioner(str(trained_checkpoint), op)
    assert not flexible and M.linear


def test_fit_trains_from_a_config(tmp_path, poisson_file):
    """`pdekit fit` with the NeuralMultigrid task (two steps) writes a loadable checkpoint."""
    import yaml

    from pdekit.learning.cli import main

    config = {"seed_everything": 0,
              "trainer": {"max_steps": 2, "logger": False, "enable_progress_bar": False,
                          "default_root_dir": str(tmp_path), "limit_val_batches": 1,
                          "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                                         "init_args": {"dirpath": str(tmp_path / "ckpt"), "save_last": True}}]},
              "model": {"class_path": "models.multigrid.NeuralMultigrid", "init_args": {"power_steps": 2}},
              "data": {"class_path": "pdekit.learning.datamodules.FieldDataModule",
                       "init_args": {"files": [str(poisson_file)], "system": True, "batch_size": 4,
                                     "split": [0.8, 0.2, 0.0]}}}
    path = tmp_path / "mg.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["fit", "--config", str(path)]) in (0, None)
    op, b = _system("easy", 16)
    M = load(tmp_path / "ckpt" / "last.ckpt", op)
    assert bool(pcg(op, b, M, tol=1e-8, maxiter=50).converged)
