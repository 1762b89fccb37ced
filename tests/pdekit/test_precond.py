"""Preconditioners: one protocol for pdekit's solvers and scipy, fewer iterations than CG."""
import numpy as np
import pytest
import scipy.sparse.linalg as spla
import torch

from pdekit import DiffusionOperator, Grid
from pdekit.krylov import cg, fcg, pcg
from pdekit.precond import AMG, ILU, Jacobi, ModulePreconditioner, Preconditioner


@pytest.fixture(scope="module")
def system():
    n = 48
    rng = np.random.default_rng(0)
    a = np.exp(2.0 * rng.standard_normal((n // 8, n // 8))).repeat(8, 0).repeat(8, 1)
    op = DiffusionOperator(Grid.box((n, n)), a)
    return op, op.rhs(torch.as_tensor(rng.standard_normal((3, n, n))))


@pytest.mark.parametrize("kind", [Jacobi, ILU, AMG])
def test_classical_preconditioners_reduce_iterations(system, kind):
    op, b = system
    M = kind(op)
    assert isinstance(M, Preconditioner) and M.linear
    plain = cg(op, b, tol=1e-8)
    pre = pcg(op, b, M, tol=1e-8)
    assert pre.converged.all()
    assert pre.iterations.max() < plain.iterations.min()


@pytest.mark.parametrize("kind", [Jacobi, ILU, AMG])
def test_preconditioners_are_symmetric_positive_definite(system, kind):
    op, _ = system
    M = kind(op).as_linear_operator()
    rng = np.random.default_rng(1)
    u, v = rng.standard_normal((2, M.shape[0]))
    assert abs(u @ M.matvec(v) - v @ M.matvec(u)) < 1e-10 * np.linalg.norm(u) * np.linalg.norm(M.matvec(v))
    assert u @ M.matvec(u) > 0


def test_amg_iterations_nearly_flat_in_n():
    its = []
    for n in (32, 64, 128):
        op = DiffusionOperator(Grid.box((n, n)))
        b = op.rhs(torch.ones(1, n, n, dtype=torch.float64))
        its.append(int(pcg(op, b, AMG(op), tol=1e-8).iterations.item()))
    assert its[-1] <= its[0] + 4, its


@pytest.mark.parametrize("kind", [Jacobi, ILU, AMG])
def test_as_linear_operator_in_scipy_cg(system, kind):
    op, b = system
    A = op.to_sparse()
    bv = op.layout().to_vectors(b[0]).numpy()
    counts = {}
    for name, M in (("none", None), ("pre", kind(op).as_linear_operator())):
        calls = []
        x, info = spla.cg(A, bv, rtol=1e-8, M=M, maxiter=2000, callback=lambda xk: calls.append(1))
        assert info == 0 and np.linalg.norm(bv - A @ x) <= 1.01e-8 * np.linalg.norm(bv)
        counts[name] = len(calls)
    assert counts["pre"] < counts["none"]


def test_tensor_call_and_scipy_view_agree(system):
    op, b = system
    M = AMG(op)
    r = b[0]
    field = M(r)
    layout = op.layout()
    vec = M.as_linear_operator().matvec(layout.to_vectors(r).numpy())
    assert np.allclose(layout.to_vectors(field).numpy(), vec)


def test_matrix_built_preconditioner_works_on_vectors(system):
    op, b = system
    A = op.to_sparse()
    bv = op.layout().to_vectors(b)
    res = pcg(A, bv, AMG(A), tol=1e-8)
    assert res.converged.all()


def test_module_preconditioner_wraps_a_network(system):
    op, b = system
    jacobi = Jacobi(op)

    class Scale(torch.nn.Module):  # a linear "network" equal to Jacobi: checks plumbing exactly
        def __init__(self):
            super().__init__()
            self.inv = torch.nn.Parameter(torch.as_tensor(np.where(op.mask[0], 1 / op.diagonal[0], 0.0)).float())

        def forward(self, r):
            assert r.dim() == 4 and r.dtype == torch.float32  # (batch, 1, *shape) in the module's dtype
            return r * self.inv

    M = ModulePreconditioner(Scale(), op, linear=True)
    assert isinstance(M, Preconditioner)
    out = M(b)
    assert out.dtype == b.dtype
    assert torch.allclose(out, jacobi(b), rtol=1e-6)
    res = fcg(op, b, M, tol=1e-8)
    assert res.converged.all()
    vec = M.as_linear_operator().matvec(op.layout().to_vectors(b[0]).numpy())
    assert vec.shape == (op.layout().n,)


@pytest.mark.filterwarnings("ignore:pcg broke down")
def test_nonlinear_module_warns_in_pcg(system):
    op, b = system
    M = ModulePreconditioner(torch.nn.Sequential(torch.nn.Conv2d(1, 1, 3, padding=1), torch.nn.ReLU()), op)
    assert not M.linear
    with pytest.warns(RuntimeWarning, match="fcg"):
        pcg(op, b, M, maxiter=2)


def test_batched_operator_needs_an_index():
    a = np.ones((2, 8, 8))
    op = DiffusionOperator(Grid((8, 8)), a)
    with pytest.raises(ValueError, match="index"):
        AMG(op)
    AMG(op, index=1)


@pytest.mark.parametrize("shape", [(16,), (8, 8, 8)])
def test_load_refuses_a_model_of_another_dimension(fno_checkpoint, shape):
    from pdekit.learning.checkpoints import CheckpointError
    from pdekit.learning.solvers import load

    with pytest.raises(CheckpointError, match=f"holds a 2-D model; the operator is {len(shape)}-D"):
        load(fno_checkpoint, DiffusionOperator(Grid.box(shape)))
    assert load(fno_checkpoint, DiffusionOperator(Grid.box((16, 16)))).linear is False  # the right one loads


def test_learned_preconditioner_and_initial_guess_refuse_what_they_cannot_serve(fno_checkpoint):
    """One line, before any work: an unusable device, an operator of several different systems
    (the learned modules are built from one), a source of the wrong shape."""
    import numpy as np
    import pytest
    import torch

    from pdekit import DiffusionOperator, Grid
    from pdekit.learning.solvers import load
    from pdekit.learning.solvers import initial_guess

    op = DiffusionOperator(Grid.box((16, 16)))
    with pytest.raises(ValueError, match="not a torch device"):
        load(fno_checkpoint, op, device="bogus")
    two = DiffusionOperator(Grid.box((16, 16)), np.stack([np.ones((16, 16)), 2 * np.ones((16, 16))]))
    with pytest.raises(ValueError, match="2 different systems"):
        load(fno_checkpoint, two)
    same = DiffusionOperator(Grid.box((16, 16)), np.ones((2, 16, 16)))
    assert load(fno_checkpoint, same)(torch.ones(2, 16, 16, dtype=torch.float64)).shape == (2, 16, 16)
    for f in (torch.ones(8, 8), torch.ones(16)):
        with pytest.raises(ValueError, match="f has shape"):
            initial_guess(fno_checkpoint, op, f)
