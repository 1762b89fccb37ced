"""Batched Krylov solvers against known answers: direct solves, CG's finite termination on k
distinct eigenvalues, equivalence of the conjugate-direction iteration with CG, flexible CG
beating PCG under a varying preconditioner, and reported (never silent) breakdown."""
import warnings

import numpy as np
import pytest
import scipy.sparse.linalg as spla
import torch

from pdekit import DiffusionOperator, Grid, NonFiniteError
from pdekit.krylov import KrylovBreakdown, cg, conjugate_directions, fcg, pcg
from pdekit.precond import AMG, Jacobi


def poisson(n=32, contrast=1.0, seed=0, batch=4):
    rng = np.random.default_rng(seed)
    blocks = rng.random((4, 4)) < 0.3
    a = np.where(blocks, contrast, 1.0).repeat(n // 4, 0).repeat(n // 4, 1)
    op = DiffusionOperator(Grid.box((n, n)), a)
    f = torch.as_tensor(rng.standard_normal((batch, n, n)))
    return op, op.rhs(f)


def direct(op, b):
    layout = op.layout()
    sol = spla.spsolve(op.to_sparse().tocsc(), layout.to_vectors(b).numpy().T)
    return layout.to_fields(torch.as_tensor(np.atleast_2d(sol.T)))


@pytest.mark.parametrize("solver", ["cg", "pcg_jacobi", "pcg_amg", "fcg_amg", "cd_identity"])
def test_solvers_match_direct_solve(solver, device):
    op, b = poisson(contrast=100.0)
    b = b.to(device)
    run = {"cg": lambda: cg(op, b, tol=1e-10),
           "pcg_jacobi": lambda: pcg(op, b, Jacobi(op), tol=1e-10),
           "pcg_amg": lambda: pcg(op, b, AMG(op), tol=1e-10),
           "fcg_amg": lambda: fcg(op, b, AMG(op), tol=1e-10),
           "cd_identity": lambda: conjugate_directions(op, b, lambda r: r, k=2, tol=1e-10)}[solver]
    res = run()
    assert res.converged.all() and (res.residual <= 1e-10).all()
    assert res.x.device.type == device
    ref = direct(op, b.cpu())
    assert ((res.x.cpu() - ref).abs().max() / ref.abs().max()) < 1e-7
    # history starts at 1 (x0 = 0) and ends at or below the tolerance for every system
    assert torch.allclose(res.history[0], torch.ones(4, dtype=res.history.dtype))
    assert res.history.shape[0] == int(res.iterations.max()) + 1


def test_cg_terminates_in_k_steps_for_k_distinct_eigenvalues():
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.standard_normal((40, 40)))
    eig = np.repeat([1.0, 3.0, 10.0, 50.0, 200.0], 8)
    A = (q * eig) @ q.T
    res = cg(A, rng.standard_normal(40), tol=1e-8)
    assert res.converged.item() and res.iterations.item() == 5
    assert res.history[4].item() > 1e-2  # not earlier


def test_batched_equals_one_at_a_time():
    op, b = poisson()
    res = cg(op, b, tol=1e-9)
    for i in range(b.shape[0]):
        single = cg(op, b[i], tol=1e-9)
        assert single.x.shape == b[i].shape
        assert single.iterations.item() == res.iterations[i].item()
        assert torch.allclose(single.x, res.x[i], atol=1e-12)


def test_scipy_matrix_input_and_numpy_rhs():
    op, b = poisson()
    A = op.to_sparse()
    bv = op.layout().to_vectors(b).numpy()
    res = pcg(A, bv, Jacobi(A), tol=1e-9)
    assert res.converged.all()
    assert np.abs(A @ res.x.numpy().T - bv.T).max() <= 1e-9 * np.abs(bv).max() * 10


def test_float32():
    op, b = poisson(contrast=10.0)
    res = cg(op, b.float(), tol=1e-5)
    assert res.x.dtype == torch.float32 and res.converged.all() and (res.residual <= 1e-5).all()


def test_conjugate_directions_with_exact_inverse_converges_in_one_step():
    op, b = poisson()
    res = conjugate_directions(op, b, lambda r: direct(op, r), k=2, tol=1e-10)
    assert (res.iterations == 1).all() and res.converged.all()


def test_direction_scale_does_not_matter():
    op, b = poisson()
    res1 = conjugate_directions(op, b, lambda r: r, k=2, normalize=False)
    res2 = conjugate_directions(op, b, lambda r: 1e3 * r, k=2, normalize=False)
    assert torch.equal(res1.iterations, res2.iterations)
    assert torch.allclose(res1.x, res2.x, rtol=1e-8, atol=1e-12)


def test_flexible_cg_beats_pcg_with_a_varying_preconditioner():
    # AMG perturbed by 5% noise per application: a nonlinear, varying preconditioner
    op, b = poisson(n=64, batch=2)
    amg = AMG(op)
    gen = torch.Generator().manual_seed(0)

    def noisy(r):
        z = amg(r)
        return z * (1 + 0.05 * torch.randn(z.shape, generator=gen, dtype=z.dtype))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = pcg(op, b, noisy, tol=1e-8, maxiter=300)
    flexible = fcg(op, b, noisy, truncation=5, tol=1e-8, maxiter=300)
    assert flexible.converged.all()
    assert int(flexible.iterations.max()) * 3 < int(plain.iterations.max())


def test_fcg_restart_still_converges():
    op, b = poisson()
    res = fcg(op, b, Jacobi(op), truncation=3, restart=10, tol=1e-9)
    assert res.converged.all()


def test_indefinite_operator_breakdown_is_reported():
    A = np.diag([1.0, 2.0, -3.0, 4.0])
    with pytest.warns(RuntimeWarning, match="non-positive curvature"):
        res = cg(A, np.ones(4))
    assert not res.converged.item() and res.breakdown.item()
    assert res.status[0].startswith("breakdown")
    with pytest.raises(KrylovBreakdown):
        res.raise_if_failed()
    with pytest.raises(KrylovBreakdown, match="non-positive curvature"):
        cg(A, np.ones(4), on_breakdown="raise")


def test_breakdown_of_one_system_leaves_the_others_alone():
    op, b = poisson(batch=3)

    def operator(u):  # system 1 sees an indefinite operator
        out = op(u)
        out[1] = -out[1]
        return out

    with pytest.warns(RuntimeWarning):
        res = cg(operator, b, tol=1e-9)
    assert res.converged.tolist() == [True, False, True]
    assert torch.isfinite(res.x).all()


def test_nan_from_direction_is_breakdown_not_garbage():
    op, b = poisson(batch=2)
    with pytest.warns(RuntimeWarning, match="NaN"):
        res = conjugate_directions(op, b, lambda r: torch.full_like(r, float("nan")), k=2)
    assert not res.converged.any() and torch.isfinite(res.x).all()


def test_non_spd_preconditioner_is_reported():
    op, b = poisson(batch=1)
    with pytest.warns(RuntimeWarning, match="preconditioner"):
        res = pcg(op, b, lambda r: -r)
    assert not res.converged.any()


def test_non_finite_rhs_is_an_error():
    op, b = poisson(batch=2)
    b[1, 3, 3] = float("inf")
    with pytest.raises(NonFiniteError, match=r"system\(s\) \[1\]"):
        cg(op, b)


def test_zero_rhs_converges_immediately():
    op, _ = poisson()
    res = cg(op, torch.zeros((2,) + op.shape, dtype=torch.float64))
    assert res.converged.all() and (res.iterations == 0).all() and (res.x == 0).all()


def test_max_iterations_is_not_converged():
    op, b = poisson()
    res = cg(op, b, maxiter=3)
    assert not res.converged.any() and "not converged" in res.status[0]


def test_initial_guess():
    op, b = poisson()
    exact = direct(op, b)
    res = cg(op, b, x0=exact, tol=1e-8)
    assert (res.iterations == 0).all() and res.converged.all()


def pyamg_poisson(n: int):
    import pyamg

    return pyamg.gallery.poisson((n,), format="csr")


@pytest.mark.parametrize("tol", [float("nan"), -1e-8, 1.0, 2.0])
def test_a_tolerance_that_cannot_work_is_refused(tol):
    A = pyamg_poisson(30)
    with pytest.raises(ValueError, match="tol must be a relative residual in \\[0, 1\\)"):
        cg(A, np.ones(30), tol=tol)


def convection_diffusion(n: int, peclet: float):
    """Tridiagonal -u'' + c u' (central differences): clearly non-symmetric for c != 0."""
    import scipy.sparse as sp

    return sp.diags([-1 - peclet, 2.0, -1 + peclet], [-1, 0, 1], shape=(n, n), format="csr")


@pytest.mark.parametrize("solver", [cg, fcg])
def test_a_non_symmetric_operator_is_reported_not_solved(solver):
    A = convection_diffusion(40, 0.5)
    with pytest.warns(RuntimeWarning, match="not symmetric"):
        res = solver(A, np.ones(40))
    assert not bool(res.converged[0]) and res.status[0].startswith("breakdown: the operator is not symmetric")
    assert int(res.iterations[0]) == 0
    with pytest.raises(KrylovBreakdown, match="not symmetric"):
        solver(A, np.ones(40), on_breakdown="raise")
    # the probe is what stops it: without the probe CG runs on and returns a wrong answer
    unchecked = solver(A, np.ones(40), check_symmetry=False, maxiter=200)
    assert float(unchecked.residual[0]) > 1e-8 or not bool(unchecked.converged[0])


def test_the_symmetry_probe_accepts_symmetric_operators_in_float32():
    A = pyamg_poisson(64)
    b = torch.ones(64, dtype=torch.float32)
    res = cg(A, b, tol=1e-5)
    assert bool(res.converged[0]) and res.status[0] == "converged"


def test_pcg_is_differentiable_and_its_gradient_is_the_inverse():
    """With x0 requiring grad the iterates are built out of place: d(wᵀx)/db of a converged solve is
    A⁻¹w (A symmetric), and the solution itself equals the in-place run's."""
    grid = Grid.box((9, 7))
    mask = np.ones(grid.shape, bool)
    mask[3:5, 2:4] = False
    op = DiffusionOperator(grid, np.exp(np.random.default_rng(0).normal(size=grid.shape)), mask)
    rng = np.random.default_rng(1)
    b = torch.as_tensor(rng.normal(size=grid.shape) * op.mask[0]).requires_grad_(True)
    w = torch.as_tensor(rng.normal(size=grid.shape) * op.mask[0])
    x0 = torch.zeros(grid.shape, dtype=torch.float64, requires_grad=True)
    result = pcg(op, b, Jacobi(op), x0=x0, tol=1e-13, maxiter=200)
    (w * result.x).sum().backward()
    expected = pcg(op, w, Jacobi(op), tol=1e-13).x
    torch.testing.assert_close(b.grad, expected, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(result.x.detach(), pcg(op, b.detach(), Jacobi(op), tol=1e-13, maxiter=200).x)


# ------------------------------------------------------------------ best iterate, stagnation, bad arguments
def _poisson32():
    from pdekit import DiffusionOperator, Grid

    op = DiffusionOperator(Grid.box((32, 32)))
    b = torch.randn((32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return op, b


def test_a_solve_stuck_at_the_round_off_floor_stops_and_says_so():
    """float32 cannot reach 1e-10: the solve stops long before maxiter (after the 5000 iterations the
    stagnation test waits, because CG's residual can plateau for hundreds) with a 'stagnated' status
    and returns an iterate whose reported residual is its true one."""
    op, b = _poisson32()
    b32 = b.float()
    result = pcg(op, b32, None, tol=1e-10, maxiter=50000)
    assert not result.converged.any() and result.status[0].startswith("stagnated"), result.status
    assert int(result.iterations[0]) <= 5000
    true = float(op.relative_residual(result.x.unsqueeze(0).double(), b32.double().unsqueeze(0)))
    assert abs(true - float(result.residual[0])) <= 1e-3 * true + 1e-7
    assert true < 1e-4  # the floor of float32, not a diverged answer


def test_a_residual_that_grows_again_gives_back_the_best_iterate():
    """CG on a diagonal matrix with eigenvalues 1e-8..1 (log-spaced): its residual 2-norm rises to
    more than 10x its best within 300 iterations (the error in the A-norm falls, the residual need
    not).  The answer returned is the best iterate seen at the true-residual checks (every 10
    iterations), and the status and a warning say so."""
    n = 400
    A = torch.diag(torch.logspace(-8, 0, n, dtype=torch.float64))
    b = torch.ones(n, dtype=torch.float64)
    true_residuals = []
    with pytest.warns(RuntimeWarning, match="the residual grew"):
        result = cg(A, b, tol=1e-14, maxiter=300, callback=lambda it, x, rel: true_residuals.append(
            float(torch.linalg.norm(b - A @ x[0]) / torch.linalg.norm(b))))
    returned = float(torch.linalg.norm(b - A @ result.x) / torch.linalg.norm(b))
    assert returned == pytest.approx(float(result.residual[0]), rel=1e-12)
    best_checked = min([1.0] + true_residuals[9::10])  # iteration 0 (x = 0) counts too
    assert returned == pytest.approx(best_checked, rel=1e-9) and 10 * returned < true_residuals[-1]
    assert "best iterate" in result.status[0] and not result.converged.any()


def test_callback_sees_every_iteration():
    op, b = _poisson32()
    seen = []
    result = pcg(op, b, None, tol=1e-8, callback=lambda it, x, rel: seen.append((it, tuple(x.shape), rel.shape)))
    assert [s[0] for s in seen] == list(range(1, int(result.iterations[0]) + 1))
    assert seen[0][1] == (1, 32, 32) and seen[0][2] == (1,)


@pytest.mark.parametrize("maxiter", [float("inf"), float("nan"), -1, 2.5, "10", True])
def test_bad_maxiter_is_a_value_error(maxiter):
    op, b = _poisson32()
    with pytest.raises(ValueError, match="maxiter"):
        pcg(op, b, None, maxiter=maxiter)


def test_empty_batch_and_wrong_shape_preconditioner_are_named():
    op, b = _poisson32()
    with pytest.raises(ValueError, match="no systems"):
        pcg(op, b[None][:0], None)
    with pytest.raises(ValueError, match="preconditioner returned"):
        pcg(op, b, lambda r: r[..., :-1])
    with pytest.raises(ValueError, match="returned"):
        fcg(op, b, lambda r: r.flatten(1))


def test_bicgstab_solves_a_non_symmetric_convection_diffusion_system():
    # -u'' + c u' on a 1-D grid, central differences: non-symmetric; the direct solve is the answer
    import scipy.sparse as sp

    from pdekit.krylov import bicgstab

    n, c = 200, 60.0
    h = 1.0 / (n + 1)
    A = sp.diags([-1 / h**2 - c / (2 * h), 2 / h**2, -1 / h**2 + c / (2 * h)], [-1, 0, 1], shape=(n, n)).tocsr()
    rng = np.random.default_rng(0)
    b = rng.standard_normal((3, n))
    exact = np.stack([sp.linalg.spsolve(A.tocsc(), bi) for bi in b])
    diagonal = torch.as_tensor(A.diagonal())
    for M in (None, lambda r: r / diagonal):
        result = bicgstab(A, torch.as_tensor(b), M, tol=1e-10, maxiter=2000)
        assert bool(result.converged.all()), result.status
        assert np.abs(result.x.numpy() - exact).max() <= 1e-7 * np.abs(exact).max()
        assert float(result.residual.max()) <= 1e-10
    # CG refuses it (its symmetry probe), BiCGStab is the solver to use
    assert not bool(pcg(A, torch.as_tensor(b), tol=1e-10, maxiter=50).converged.any())
