"""Curved walls (cut cells): the face-fraction pressure operator, the wall geometry and the
ghost-fluid viscous Laplacian against known answers, and a channel flow that uses them."""
import math

import numpy as np
import pytest
import torch

from datagen.cut_cells import CutCellGeometry, chord
from datagen.ns_channel import ChannelFlow
from datagen.ns_channel_run import simulate
from datagen.obstacles import circle, polygon, rectangle
from pdekit import DiffusionOperator, Grid, precond
from pdekit.boundary import ACTIVE, DIRICHLET, NEUMANN
from pdekit.errors import GridMismatchError
from pdekit.krylov import pcg

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _orders(errors):
    return [math.log2(a / b) for a, b in zip(errors, errors[1:])]


def test_face_fractions_keep_the_operator_symmetric_positive_definite():
    grid = Grid((7, 5), spacing=0.1)
    rng = np.random.default_rng(0)
    fractions = [rng.uniform(0, 1, (8, 5)), rng.uniform(0, 1, (7, 6))]
    fractions[0][3, 2] = 0.0  # a closed face: no coupling across it
    op = DiffusionOperator(grid, face_fractions=fractions)
    A = op.to_sparse().toarray()
    assert np.abs(A - A.T).max() == 0.0
    assert np.linalg.eigvalsh(A).min() > 0
    x = torch.randn(7, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(op(x).reshape(-1), torch.as_tensor(A) @ x.reshape(-1), rtol=0, atol=1e-10)
    assert A[2 * 5 + 2, 3 * 5 + 2] == 0.0  # nodes (2, 2) and (3, 2) share the closed face 3 along x
    assert A[1 * 5 + 2, 2 * 5 + 2] == pytest.approx(-fractions[0][2, 2] / 0.01)
    # fractions of one are the plain operator, exactly
    plain = DiffusionOperator(grid)
    ones = DiffusionOperator(grid, face_fractions=[np.ones((8, 5)), np.ones((7, 6))])
    assert np.array_equal(plain.diagonal, ones.diagonal)
    assert all(np.array_equal(a, b) for a, b in zip(plain.face_weights, ones.face_weights))


def test_faces_closed_by_fractions_disconnect_regions():
    # closing every face across x = 3 h cuts the Neumann-walled right part off the Dirichlet face x-
    from pdekit import BoundaryConditions
    from pdekit.boundary import Dirichlet, Neumann
    from pdekit.errors import SingularOperatorError

    grid = Grid((6, 4), spacing=0.1)
    bc = BoundaryConditions(default=Neumann(0.0), faces={"x-": Dirichlet(0.0)})
    fractions = [np.ones((7, 4)), np.ones((6, 5))]
    DiffusionOperator(grid, bc=bc, face_fractions=fractions)  # connected: fine
    fractions[0][3] = 0.0
    with pytest.raises(SingularOperatorError, match="1 connected region"):
        DiffusionOperator(grid, bc=bc, face_fractions=fractions)
    pinned = DiffusionOperator(grid, bc=bc, face_fractions=fractions, singular="pin")
    assert (pinned.floating_regions[0][3:] > 0).all() and (pinned.floating_regions[0][:3] == 0).all()
    assert np.linalg.eigvalsh(pinned.to_sparse().toarray()).min() > 0


@pytest.mark.parametrize("fractions, match", [
    ([np.ones((7, 5)), np.ones((7, 6))], GridMismatchError),
    ([np.ones((8, 5))], GridMismatchError),
    ([np.full((8, 5), 1.5), np.ones((7, 6))], ValueError),
    ([np.full((8, 5), np.nan), np.ones((7, 6))], ValueError),
])
def test_face_fractions_of_the_wrong_shape_or_range_are_refused(fractions, match):
    with pytest.raises(match):
        DiffusionOperator(Grid((7, 5), spacing=0.1), face_fractions=fractions)


def test_chords_of_circles_and_polygons_are_exact():
    start, direction = np.array([[0.0, 0.5], [0.0, 2.0]]), np.array([1.0, 0.0])
    t0, t1 = chord(circle(1.0, 0.5, 0.25), start, direction)
    assert np.allclose([t0[0], t1[0]], [0.75, 1.25]) and t0[1] > t1[1]  # the second line misses
    square = polygon([[0.5, 0.0], [1.5, 0.0], [1.5, 1.0], [0.5, 1.0]])
    t0, t1 = chord(square, start, direction)
    assert np.allclose([t0[0], t1[0]], [0.5, 1.5]) and t0[1] > t1[1]


def test_wall_pieces_integrate_a_linear_pressure_to_second_order():
    # the pressure force of p = x on a closed body is -area along x (the normal points into the body)
    shape = circle(0.5, 0.47, 0.213)
    errors = []
    for n in (16, 32, 64):
        h = 1.0 / n
        g = CutCellGeometry([shape], n, n, h)
        assert np.abs(g.wall_normal.sum(0)).max() < 1e-12  # a closed wall
        centres = (np.stack(np.unravel_index(g.wall_cells, (n, n)), -1) + 0.5) * h
        walls = centres + g.wall_offset
        errors.append(abs((walls[:, 0] * g.wall_normal[:, 0]).sum() + math.pi * 0.213**2))
    assert min(_orders(errors)) > 1.7


def test_cut_cell_pressure_force_of_a_linear_pressure_is_minus_area_times_its_gradient():
    from datagen.ns_forces import ForceEvaluator
    from datagen.obstacles import rasterize

    shape, n = circle(0.5, 0.47, 0.213), 64
    h = 1.0 / n
    g = CutCellGeometry([shape], n, n, h)
    evaluator = ForceEvaluator(rasterize([shape], n, n, h), h, [0.426], cut_cells=g)
    x, y = np.meshgrid((np.arange(n) + 0.5) * h, (np.arange(n) + 0.5) * h, indexing="ij")
    force = evaluator.cut_cell_pressure(torch.as_tensor(2.0 * x - 3.0 * y + 1.0))  # extrapolated exactly
    expected = -math.pi * 0.213**2 * np.array([2.0, -3.0])
    assert np.allclose(force[0].numpy(), expected, rtol=2e-3)


def test_face_fractions_of_a_grid_aligned_square_are_its_cells():
    n, h = 8, 1.0 / 8
    g = CutCellGeometry([rectangle(0.5, 0.5, 0.25, 0.5)], n, n, h)
    assert set(np.unique(g.u_open)) <= {0.0, 1.0} and set(np.unique(g.v_open)) <= {0.0, 1.0}
    # the square covers cells 3..4 x 2..5: faces inside it or on its walls are closed, the rest open
    assert g.u_open[3:6, 2:6].sum() == 0 and g.u_open[2, 2:6].sum() == 4 and g.u_open[3:6, 6].sum() == 3
    assert g.v_open[3:5, 2:7].sum() == 0 and g.v_open[2, 2:7].sum() == 5
    covered = np.zeros((n, n), bool)
    covered[3:5, 2:6] = True
    assert np.array_equal(g.active, ~covered)


def _potential_flow_errors(walls):
    """Max error of the pressure solve for potential flow past a circle, ``p = (x + 0.3 y)(1 + R^2/r^2)``
    (harmonic, zero normal derivative on the circle), exact Dirichlet values on the box."""
    R, c = 0.2, (0.51, 0.47)

    def exact(x, y):
        dx, dy = x - c[0], y - c[1]
        return (dx + 0.3 * dy) * (1 + R * R / (dx * dx + dy * dy))

    errors = []
    for n in (16, 32, 64):
        h = 1.0 / n
        grid = Grid((n, n), spacing=h, origin=h / 2)
        X, Y = (np.asarray(a) for a in grid.coordinates(padded=True))
        xc, yc = X[1:-1, 1:-1], Y[1:-1, 1:-1]
        fluid = (xc - c[0]) ** 2 + (yc - c[1]) ** 2 > R * R
        g = CutCellGeometry([circle(*c, R)], n, n, h)
        active = g.active if walls == "cut-cell" else fluid
        bc_type = np.full((n + 2, n + 2), DIRICHLET, np.int8)
        bc_type[1:-1, 1:-1] = np.where(active, ACTIVE, NEUMANN)
        fractions = (g.u_open, g.v_open) if walls == "cut-cell" else None
        op = DiffusionOperator.from_arrays(grid, None, bc_type, np.where(bc_type == DIRICHLET, exact(X, Y), 0.0),
                                           face_fractions=fractions)
        result = pcg(op, op.rhs(torch.zeros(n, n, dtype=torch.float64))[None], precond.AMG(op), tol=1e-12)
        errors.append(float(np.abs(result.x[0].numpy() - exact(xc, yc))[fluid].max()))
    return errors


def test_cut_cell_pressure_converges_at_second_order_where_the_staircase_does_not():
    cut, staircase = _potential_flow_errors("cut-cell"), _potential_flow_errors("staircase")
    assert min(_orders(cut)) > 1.5
    assert max(_orders(staircase)) < 1.3 and staircase[-1] > 5 * cut[-1]


def _viscous_solve_errors(walls):
    """Max error of ``(I - L) w = f`` on the channel's velocity nodes with ``w`` vanishing on a circle,
    the channel walls and the inlet, and on the outlet with ``v``'s zero x-derivative there."""
    L, H, R, c = 2.0, 1.0, 0.23, (0.71, 0.48)
    k, m = math.pi / L, math.pi / H

    def exact(x, y, component):  # S(x) sin(m y) q, q = r^2 - R^2 (zero on the circle)
        dx, dy = x - c[0], y - c[1]
        q, T, Ty = dx * dx + dy * dy - R * R, np.sin(m * y), m * np.cos(m * y)
        if component == "u":
            S, Sx, Sxx = np.sin(k * x), k * np.cos(k * x), -k * k * np.sin(k * x)
        else:  # sin^2: zero value and slope at the outlet
            S, Sx, Sxx = np.sin(k * x) ** 2, k * np.sin(2 * k * x), 2 * k * k * np.cos(2 * k * x)
        lap = (Sxx * T - m * m * S * T) * q + 2 * (Sx * T * 2 * dx + S * Ty * 2 * dy) + 4 * S * T
        return S * T * q, lap

    errors = []
    for ny in (16, 32, 64):
        h = H / ny
        flow = ChannelFlow([circle(*c, R)], nx=2 * ny, ny=ny, height=H, nu=1.0, u_max=1.0, viscosity="implicit",
                           walls=walls)
        nodes = {"u": np.meshgrid(np.arange(2 * ny + 1) * h, (np.arange(ny) + 0.5) * h, indexing="ij"),
                 "v": np.meshgrid((np.arange(2 * ny) + 0.5) * h, np.arange(ny + 1) * h, indexing="ij")}
        free = {"u": flow.u_free.numpy(), "v": flow.v_free.numpy()}
        values = {name: exact(*xy, name) for name, xy in nodes.items()}
        rhs = torch.cat([torch.as_tensor((w - lap) * free[name]).reshape(-1) for name, (w, lap) in values.items()])
        result = pcg(flow._viscous_operator(1.0), rhs[None], tol=1e-12, maxiter=5000)
        solved = {"u": result.x[0, :flow.u.numel()].view_as(flow.u).numpy(),
                  "v": result.x[0, flow.u.numel():].view_as(flow.v).numpy()}
        errors.append(max(float(np.abs(solved[n] - values[n][0])[free[n]].max()) for n in ("u", "v")))
    return errors


def test_cut_cell_viscous_laplacian_converges_at_second_order_where_the_staircase_does_not():
    cut, staircase = _viscous_solve_errors("cut-cell"), _viscous_solve_errors("staircase")
    assert min(_orders(cut)) > 1.8
    assert max(_orders(staircase)) < 1.2 and staircase[-1] > 5 * cut[-1]


def test_cut_cell_flow_keeps_the_weighted_divergence_at_the_pressure_tolerance():
    shapes = [circle(0.3, 0.24, 0.07), rectangle(0.7, 0.26, 0.12, 0.08, 0.6)]
    flow = ChannelFlow(shapes, nx=96, ny=24, height=0.5, nu=0.01, u_max=1.5, tol=1e-9, viscosity="implicit",
                       walls="cut-cell")
    out = simulate(flow, t_end=0.5, interval=0.5, cfl=0.5)
    assert out["steps"] > 10
    # div u = -dt (b - A q): the solve's stopping rule bounds it (the floor: round-off)
    target = max(1e-9 * float(flow.last_solve[0].norm()), flow.residual_floor(flow.last_dt))
    assert float(flow.divergence().norm()) <= 1.01 * flow.last_dt * target
    assert float(flow.divergence().norm()) > 0.01 * flow.last_dt * target  # not far below: it is the residual
    u_fluid, _ = flow.fluid_velocities(flow.u, flow.v)
    assert float(u_fluid[flow.u_inside].abs().max()) == 0.0 and float(flow.u[flow.u_inside].abs().max()) > 0
    coefficients = flow.force_coefficients()
    for key in ("drag", "drag_pressure", "drag_viscous"):
        assert torch.isfinite(coefficients[key]).all()
    total = coefficients["drag_pressure"] + coefficients["drag_viscous"]
    assert torch.allclose(total, coefficients["drag"])  # the viscous part is the remainder of the total


def test_cut_cell_walls_need_implicit_viscosity():
    with pytest.raises(ValueError, match="implicit"):
        ChannelFlow([circle(0.3, 0.24, 0.07)], nx=48, ny=16, height=0.5, nu=0.01, u_max=1.0, walls="cut-cell")
    with pytest.raises(ValueError, match="walls must be one of"):
        ChannelFlow([circle(0.3, 0.24, 0.07)], nx=48, ny=16, height=0.5, nu=0.01, u_max=1.0, walls="smooth")


def test_pressure_systems_are_refused_with_cut_cell_walls(tmp_path, capsys):
    from datagen.cli import main

    spec = tmp_path / "cylinder.yaml"
    spec.write_text("base: easy\nviscous_scheme: implicit\nwalls: cut-cell\nt_end: 0.2\ninterval: 0.1\n")
    out, systems = tmp_path / "flow.h5", tmp_path / "p.h5"
    assert main(["navier-stokes", "--family", "obstacles", "--spec", str(spec), "--n", "1", "--resolution", "16",
                 "--out", str(out), "--pressure-systems", str(systems), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "needs staircase walls" in err and len(err.splitlines()) == 1
    assert not systems.exists() and not out.exists()
    flow = ChannelFlow([circle(1.0, 0.5, 0.1)], nx=64, ny=16, height=1.0, nu=0.01, u_max=1.0, viscosity="implicit",
                       walls="cut-cell")
    with pytest.raises(ValueError, match="needs staircase walls"):  # the Python API too
        simulate(flow, t_end=0.1, interval=0.1, pressure_systems=True)


def test_an_empty_channel_is_the_same_flow_with_either_wall_treatment():
    flows = {}
    for walls in ("staircase", "cut-cell"):
        flows[walls] = ChannelFlow([], nx=32, ny=8, height=1.0, nu=0.01, u_max=1.0, viscosity="implicit", walls=walls)
        out = simulate(flows[walls], t_end=0.2, interval=0.1)
        assert out["drag"].shape == (out["t_force"].shape[0], 0)
    assert torch.equal(flows["staircase"].u, flows["cut-cell"].u) and torch.equal(flows["staircase"].p, flows["cut-cell"].p)
