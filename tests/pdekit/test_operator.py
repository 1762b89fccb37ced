"""The diffusion operator: exact agreement of its two forms, pyamg equality, second-order
convergence on manufactured solutions, and clear errors for bad input."""
import numpy as np
import pyamg
import pytest
import scipy.sparse.linalg as spla
import sympy
import torch

from tests.manufactured import Manufactured, X
from pdekit import (BoundaryConditions, DiffusionOperator, Dirichlet, Grid, GridMismatchError,
                    IncompatibleRHSError, InvalidCoefficientError, Neumann, NonFiniteError,
                    SingularOperatorError)

x, y, z = X


def solve_direct(op, b):
    layout = op.layout()
    A, rhs = op.to_sparse(), layout.to_vectors_np(b)
    if A.shape[0] <= 20000:
        sol = spla.spsolve(A.tocsc(), rhs)
    else:  # 3D: sparse LU fills in badly; AMG to round-off is faster
        sol = pyamg.smoothed_aggregation_solver(A).solve(rhs, tol=1e-13, maxiter=200, accel="cg")
    return layout.to_fields_np(sol)


def max_error(ms, bc, n, ndim=2, mask_fn=None, singular="error", padded_coefficient=True):
    grid = Grid.box((n,) * ndim, 1.0, bc)
    coords = grid.coordinates()
    a = ms.a(*grid.coordinates(padded=True)) if padded_coefficient else ms.a(*coords)
    mask = None if mask_fn is None else mask_fn(*coords)
    op = DiffusionOperator(grid, a, mask, bc, singular=singular)
    b = op.rhs(ms.f(*coords), compatibility="project").numpy()
    u = solve_direct(op, b)
    err = (u - ms.u(*coords))[op.mask[0]]
    if singular == "pin":  # pure Neumann: solution defined up to a constant
        err = err - err.mean()
    return grid.spacing[0], np.abs(err).max()


def observed_orders(results):
    """Convergence orders log(e1/e2) / log(h1/h2) between successive refinements."""
    h, e = np.asarray(results).T
    return np.log(e[:-1] / e[1:]) / np.log(h[:-1] / h[1:])


SMOOTH = sympy.exp(x) * sympy.sin(2 * y) + x * y**2
VARIABLE_A = 1 + x**2 * y + sympy.sin(y)


@pytest.mark.parametrize("a", [1, VARIABLE_A], ids=["constant", "variable"])
def test_second_order_dirichlet_2d(a):
    ms = Manufactured(SMOOTH, a)
    bc = BoundaryConditions(default=Dirichlet(ms.u))
    orders = observed_orders([max_error(ms, bc, n) for n in (15, 31, 63)])
    assert np.all(orders > 1.9), orders


def test_second_order_mixed_neumann_2d():
    ms = Manufactured(SMOOTH, VARIABLE_A)
    bc = BoundaryConditions(default=Dirichlet(ms.u), faces={"x+": Neumann(ms.outward_flux(0, 1)),
                                                            "y-": Neumann(ms.outward_flux(1, 0))})
    orders = observed_orders([max_error(ms, bc, n) for n in (16, 32, 64)])
    assert np.all(orders > 1.9), orders


def test_variable_coefficient_without_ghost_values_still_converges():
    # coefficient only on the nodes: wall faces use the node's own a (first-order face value,
    # still a convergent second-order-in-the-limit scheme); this is the data-set default
    ms = Manufactured(SMOOTH, VARIABLE_A)
    bc = BoundaryConditions(default=Dirichlet(ms.u))
    errors = [max_error(ms, bc, n, padded_coefficient=False) for n in (15, 31, 63, 127)]
    orders = observed_orders(errors)
    assert np.all(np.diff(orders) > 0) and orders[-1] > 1.8, orders


def test_second_order_with_dirichlet_obstacle():
    ms = Manufactured(SMOOTH, VARIABLE_A)
    bc = BoundaryConditions(default=Dirichlet(ms.u), obstacle=Dirichlet(ms.u))
    hole = lambda x, y: ~((x >= 0.25) & (x <= 0.5) & (y >= 0.25) & (y <= 0.75))  # noqa: E731
    orders = observed_orders([max_error(ms, bc, n, mask_fn=hole) for n in (15, 31, 63)])
    assert np.all(orders > 1.9), orders


def test_second_order_pure_neumann_with_insulated_obstacle():
    # cos(4 pi x) cos(4 pi y) has zero normal derivative on x, y = k/4: the box walls and the hole
    ms = Manufactured(sympy.cos(4 * sympy.pi * x) * sympy.cos(4 * sympy.pi * y), 1 + x * y)
    bc = BoundaryConditions(default=Neumann(0.0), obstacle=Neumann(0.0))
    hole = lambda x, y: ~((x >= 0.25) & (x <= 0.5) & (y >= 0.25) & (y <= 0.5))  # noqa: E731
    errors = [max_error(ms, bc, n, mask_fn=hole, singular="pin") for n in (16, 32, 64)]
    orders = observed_orders(errors)
    assert np.all(orders > 1.85), orders


def test_second_order_3d_mixed():
    ms = Manufactured(sympy.exp(x) * sympy.sin(2 * y) * sympy.cos(z), 1 + x * y * z, ndim=3)
    bc = BoundaryConditions(default=Dirichlet(ms.u), faces={"z+": Neumann(ms.outward_flux(2, 1))})
    orders = observed_orders([max_error(ms, bc, n, ndim=3) for n in (11, 23, 47)])
    assert np.all(orders > 1.9), orders


@pytest.mark.parametrize("shape", [(7, 5), (4, 5, 6), (9,)])
def test_unit_spacing_dirichlet_box_equals_pyamg_poisson(shape):
    op = DiffusionOperator(Grid(shape, spacing=1.0))
    diff = op.to_sparse() - pyamg.gallery.poisson(shape, format="csr")
    assert diff.nnz == 0 or np.abs(diff.data).max() == 0.0


def test_unit_square_dirichlet_is_scaled_pyamg_poisson():
    n = 31
    op = DiffusionOperator(Grid.box((n, n)))
    assert op.grid.spacing == (1 / (n + 1),) * 2
    diff = op.to_sparse() * op.grid.spacing[0] ** 2 - pyamg.gallery.poisson((n, n), format="csr")
    assert np.abs(diff.toarray()).max() < 1e-12


def random_operator(ndim=2, batch=None, seed=0):
    rng = np.random.default_rng(seed)
    shape = (12, 9, 7)[:ndim]
    lead = (batch,) if batch else ()
    a = np.exp(rng.standard_normal(lead + shape))
    mask = rng.random(lead + shape) > 0.15
    bc = BoundaryConditions(default=Dirichlet(1.0), faces={"x+": Neumann(0.5)}, obstacle=Neumann(0.0))
    return DiffusionOperator(Grid.box(shape, 1.0, bc), a, mask, bc, singular="pin")


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_matrix_free_equals_assembled(ndim):
    op = random_operator(ndim)
    layout = op.layout()
    u = torch.randn((5,) + op.shape, dtype=torch.float64)
    u = u * torch.as_tensor(op.mask[0])
    torch_form = layout.to_vectors(op(u)).numpy()
    sparse_form = (op.to_sparse() @ layout.to_vectors(u).numpy().T).T
    assert np.abs(torch_form - sparse_form).max() < 1e-12 * np.abs(sparse_form).max()


def test_assembled_matrix_is_spd():
    A = random_operator(2).to_sparse().toarray()
    assert np.allclose(A, A.T)
    assert np.linalg.eigvalsh(A).min() > 0


def test_batched_operator_matches_each_system():
    op = random_operator(2, batch=3)
    u = torch.randn((3,) + op.shape, dtype=torch.float64) * torch.as_tensor(op.mask)
    out = op(u)
    for i in range(3):
        layout = op.layout(i)
        ref = op.to_sparse(i) @ layout.to_vectors(u[i]).numpy()
        assert np.abs(layout.to_vectors(out[i]).numpy() - ref).max() < 1e-12 * np.abs(ref).max()


def test_float32_and_device(device):
    op = random_operator(2)
    u = torch.randn((4,) + op.shape, dtype=torch.float64) * torch.as_tensor(op.mask)
    ref = op(u)
    out = op(u.to(device=device, dtype=torch.float32))
    assert out.dtype == torch.float32 and out.device.type == device
    assert (out.double().cpu() - ref).abs().max() < 1e-5 * ref.abs().max()


def test_operator_is_differentiable():
    op = random_operator(2)
    u = torch.randn((2,) + op.shape, dtype=torch.float64, requires_grad=True)
    (op(u) ** 2).sum().backward()
    # d/du ||A u||^2 = 2 A^T A u = 2 A (A u) for symmetric A (on the unknowns)
    expected = 2 * op(op(u.detach())) * torch.as_tensor(op.mask)
    assert torch.allclose(u.grad * torch.as_tensor(op.mask), expected)


# ---------------------------------------------------------------- bad input
def test_coefficient_shape_mismatch():
    with pytest.raises(GridMismatchError, match="coefficient has shape"):
        DiffusionOperator(Grid((8, 8)), np.ones((8, 9)))


def test_non_positive_coefficient():
    a = np.ones((8, 8))
    a[3, 4] = -1.0
    with pytest.raises(InvalidCoefficientError, match=r"index \(3, 4\)"):
        DiffusionOperator(Grid((8, 8)), a)


def test_non_positive_coefficient_inside_obstacle_is_fine():
    a = np.ones((8, 8))
    mask = np.ones((8, 8), bool)
    a[3, 4], mask[3, 4] = 0.0, False
    DiffusionOperator(Grid((8, 8)), a, mask)


def test_region_without_dirichlet_boundary_is_an_error():
    # a ring of insulated obstacle cells encloses an island: singular
    mask = np.ones((12, 12), bool)
    mask[3:9, 3] = mask[3:9, 8] = mask[3, 3:9] = mask[8, 3:9] = False
    bc = BoundaryConditions(obstacle=Neumann(0.0))
    with pytest.raises(SingularOperatorError, match="touch no Dirichlet boundary"):
        DiffusionOperator(Grid((12, 12)), None, mask, bc)
    # with Dirichlet walls the island is anchored
    DiffusionOperator(Grid((12, 12)), None, mask, BoundaryConditions())


def test_pure_neumann_incompatible_rhs_is_an_error_unless_projected():
    bc = BoundaryConditions(default=Neumann(0.0))
    op = DiffusionOperator(Grid.box((8, 8), 1.0, bc), bc=bc, singular="pin")
    f = np.ones((8, 8))
    with pytest.raises(IncompatibleRHSError, match="no solution exists"):
        op.rhs(f)
    g = np.sin(np.arange(64.0)).reshape(8, 8)
    op.rhs(g - g.mean())  # balanced sources pass the check
    b = op.rhs(f, compatibility="project")
    assert float(b.abs().max()) < 1e-12  # a constant source is pure null space: projected away


def test_non_finite_rhs():
    op = DiffusionOperator(Grid((8, 8)))
    f = np.zeros((8, 8))
    f[2, 2] = np.nan
    with pytest.raises(NonFiniteError, match="NaN or Inf"):
        op.rhs(f)


def test_tensor_shape_mismatch():
    op = DiffusionOperator(Grid((8, 8)))
    with pytest.raises(GridMismatchError, match=r"expected \(8, 8\)"):
        op(torch.zeros(2, 8, 7))


def test_bad_face_value_shape():
    bc = BoundaryConditions(faces={"x-": Dirichlet(np.zeros(5))})
    with pytest.raises(GridMismatchError, match="face x-"):
        DiffusionOperator(Grid((8, 8)), bc=bc)


def test_cache_blocked_cpu_apply_equals_plain_apply():
    op = random_operator(2, batch=6)
    u = torch.randn((6,) + op.shape, dtype=torch.float64)
    op._CPU_BLOCK_BYTES = u[0].numel() * 8 * 2  # blocks of two systems
    blocked = op(u)
    op._CPU_BLOCK_BYTES = 1 << 40
    assert torch.equal(blocked, op(u))


def test_extreme_complex_and_integer_inputs_are_handled_or_refused():
    """a = 1e300 stays finite (the harmonic mean taken without overflow); a stencil that would
    overflow, a complex coefficient and an empty system are refused; an integer u is applied in
    floating point (integer arithmetic truncated the division by h²)."""
    import numpy as np
    import pytest
    import torch

    from pdekit import DiffusionOperator, Grid
    from pdekit.errors import InvalidCoefficientError
    from pdekit.precond import AMG

    grid = Grid.box((8, 8))
    u = torch.rand((8, 8), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    huge = DiffusionOperator(grid, np.full((8, 8), 1e300))
    torch.testing.assert_close(huge(u) / 1e300, DiffusionOperator(grid)(u), rtol=1e-12, atol=0)
    with pytest.raises(InvalidCoefficientError, match="overflows"):
        DiffusionOperator(grid, np.full((8, 8), 1e308))
    with pytest.raises(InvalidCoefficientError, match="complex"):
        DiffusionOperator(grid, np.full((8, 8), 1 + 1j))
    integers = torch.arange(64).reshape(8, 8)
    torch.testing.assert_close(DiffusionOperator(grid)(integers), DiffusionOperator(grid)(integers.double()))
    with pytest.raises(ValueError, match="no unknowns"):
        AMG(DiffusionOperator(grid, mask=np.zeros((8, 8), bool)))
