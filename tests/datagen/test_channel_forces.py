"""Channel flow: force evaluation against known answers, implicit viscosity, restart, steady mode,
probes, explicit geometry specs, and the pressure solve's residual floor."""
import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from datagen.ns_channel import ChannelFlow
from datagen.ns_channel_run import simulate
from datagen.ns_forces import ForceEvaluator
from datagen.obstacles import circle, frontal_height, rectangle

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _grid_fields(nx, ny, h, u_of_y, p_of_x):
    """Face and cell fields from functions: u on vertical faces, v = 0, p at cell centres."""
    y = (np.arange(ny) + 0.5) * h
    x = (np.arange(nx) + 0.5) * h
    u = torch.as_tensor(np.tile(u_of_y(y), (nx + 1, 1)))
    v = torch.zeros(nx, ny + 1, dtype=torch.float64)
    p = torch.as_tensor(np.tile(p_of_x(x)[:, None], (1, ny)))
    return u, v, p


def test_surface_stresses_of_a_rectangle_in_an_analytic_field():
    # u = alpha (y - y_top)(y - y_bot) vanishes on the rectangle's top and bottom walls; p = beta x.
    # Exact: pressure drag = -beta W H (front minus back), viscous drag = 2 nu alpha H W (both
    # walls shear the body downstream), lift 0.  The one-sided wall derivative and the linear
    # pressure extrapolation are exact for these fields.
    nx, ny, h, nu, alpha, beta = 40, 32, 1 / 32, 0.01, 2.0, -3.0
    labels = np.zeros((nx, ny), int)
    i0, i1, j0, j1 = 12, 20, 12, 18
    labels[i0:i1, j0:j1] = 1
    W, H = (i1 - i0) * h, (j1 - j0) * h
    y_bot, y_top = j0 * h, j1 * h
    u, v, p = _grid_fields(nx, ny, h, lambda y: alpha * (y - y_top) * (y - y_bot), lambda x: beta * x)
    evaluator = ForceEvaluator(labels, h, [H])
    pressure, viscous = evaluator.surface_parts(u, v, p, nu)
    assert float(pressure[0, 0]) == pytest.approx(-beta * W * H, rel=1e-12)
    assert float(viscous[0, 0]) == pytest.approx(2 * nu * alpha * H * W, rel=1e-12)
    assert abs(float(pressure[0, 1])) < 1e-12 and abs(float(viscous[0, 1])) < 1e-12


def test_control_volume_sees_the_pressure_gradient_over_its_area():
    # u = v = 0, p = a x + b y: the momentum balance gives F = -grad p x (area of the control volume),
    # exactly, whatever the region's staircase shape (two obstacles split the fluid between them).
    nx, ny, h = 48, 32, 1 / 32
    labels = np.zeros((nx, ny), int)
    labels[10:14, 12:18] = 1
    labels[20:25, 14:19] = 2
    evaluator = ForceEvaluator(labels, h, [6 * h, 5 * h])
    x = (np.arange(nx) + 0.5) * h
    y = (np.arange(ny) + 0.5) * h
    a, b = 1.5, -0.7
    p = torch.as_tensor(a * x[:, None] + b * y[None, :])
    u, v = torch.zeros(nx + 1, ny, dtype=torch.float64), torch.zeros(nx, ny + 1, dtype=torch.float64)
    force = evaluator.control_volume(u, v, p, 0.01, torch.zeros(2, 2, dtype=torch.float64))
    area = evaluator.regions.sum((1, 2)) * h * h
    assert torch.allclose(force, -torch.stack([a * area, b * area], 1), rtol=1e-12, atol=1e-14)
    assert evaluator.complete.all()
    assert not (evaluator.regions[0].bool() & evaluator.regions[1].bool()).any()  # no cell counted twice


def test_poiseuille_control_volume_without_a_body_carries_no_force():
    # An exact discrete steady state: the pressure drop across any region balances the wall-normal
    # shear difference, so a control volume around fluid only (a label the flow does not have)
    # measures zero force.
    nu, ny = 0.05, 16
    flow = ChannelFlow([], nx=48, ny=ny, height=1.0, nu=nu, u_max=1.0, tol=1e-12)
    simulate(flow, t_end=0.2, interval=0.2)
    labels = np.zeros((48, ny), int)
    labels[20:23, 6:9] = 1
    evaluator = ForceEvaluator(labels, flow.h, [3 * flow.h])
    force = evaluator.control_volume(flow.u, flow.v, flow.p, nu, torch.zeros(1, 2, dtype=torch.float64))
    assert float(force.abs().max()) < 1e-10


def _steady(shape, ny, **kwargs):
    flow = ChannelFlow([shape], nx=3 * ny, ny=ny, height=0.5, nu=0.05, u_max=1.5, tol=1e-10, viscosity="implicit",
                       **kwargs)
    out = simulate(flow, t_end=20.0, interval=20.0, cfl=0.9, steady_tol=1e-5)
    assert out["steady_step"] > 0
    return flow


@pytest.fixture(scope="module")
def square_flows():
    # a square whose edges lie on cell faces at every resolution: the geometry is exact
    square = rectangle(0.3125, 0.25, 0.125, 0.125)
    return {ny: _steady(square, ny) for ny in (16, 32, 64)}


def test_drag_converges_on_a_grid_aligned_square(square_flows):
    drag = [float(square_flows[ny].force_coefficients()["drag"][0]) for ny in (16, 32, 64)]
    order = math.log2(abs(drag[1] - drag[0]) / abs(drag[2] - drag[1]))
    assert order >= 1.0  # the scheme is second order away from the corners' stress singularities
    # the surface-stress parts approach the control-volume total as the grid is refined
    gaps = []
    for ny in (16, 32, 64):
        c = square_flows[ny].force_coefficients()
        gaps.append(abs(float(c["drag_pressure"][0] + c["drag_viscous"][0] - c["drag"][0])))
    assert gaps[2] < gaps[1] < gaps[0]


def test_control_volume_force_does_not_depend_on_the_control_volume(square_flows):
    # steady state: any surface around the body carries the same momentum flux
    flow = square_flows[64]
    zero = torch.zeros(1, 2, dtype=torch.float64)
    forces = [ForceEvaluator(flow.labels, flow.h, [0.125], margin_cells=m).control_volume(
        flow.u, flow.v, flow.p, flow.nu, zero)[0, 0] for m in (4, 8, 14)]
    assert max(forces) - min(forces) <= 2e-3 * abs(float(forces[0]))


def test_implicit_and_explicit_viscosity_reach_the_same_steady_state():
    # the same spatial scheme: Crank–Nicolson with incremental projection keeps the steady state exact
    shape = circle(0.3, 0.24, 0.06)
    results = {}
    for scheme in ("explicit", "implicit"):
        flow = ChannelFlow([shape], nx=48, ny=16, height=0.5, nu=0.05, u_max=1.5, tol=1e-10, viscosity=scheme)
        out = simulate(flow, t_end=20.0, interval=20.0, cfl=0.9, steady_tol=1e-7)
        results[scheme] = (flow.force_coefficients()["drag"][0], out["steps"], out["dt"])
    assert float(results["implicit"][0]) == pytest.approx(float(results["explicit"][0]), rel=1e-6)
    assert results["implicit"][2] > 2 * results["explicit"][2]  # the step is no longer set by h^2 / nu


@pytest.mark.parametrize("walls", ["staircase", "cut-cell"])
def test_implicit_viscous_operator_is_symmetric_positive_definite(walls):
    from datagen.navier_stokes import OBSTACLE_LEVELS, draw_obstacles

    shapes = draw_obstacles(OBSTACLE_LEVELS["hard-easy"], 0)  # 8 circles, rectangles and polygons
    flow = ChannelFlow(shapes, nx=128, ny=32, height=1.0, nu=1e-2, u_max=1.0, viscosity="implicit", walls=walls)
    apply = flow._viscous_operator(0.05)
    free = torch.cat([flow.u_free.reshape(-1), flow.v_free.reshape(-1)]).double()
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        x, y = (torch.randn(1, free.numel(), generator=g, dtype=torch.float64) * free for _ in range(2))
        xy, yx = float((apply(x) * y).sum()), float((x * apply(y)).sum())
        assert abs(xy - yx) <= 1e-12 * max(abs(xy), 1.0)
        assert float((x * apply(x)).sum()) >= float((x * x).sum())  # I - (dt nu / 2) L with L <= 0
    # the Jacobi preconditioner's diagonal (five probes) is the operator's, node by node
    diagonal = flow._viscous_diagonal(apply)
    for k in torch.nonzero(free)[::97, 0]:
        unit = torch.zeros(1, free.numel(), dtype=torch.float64)
        unit[0, k] = 1.0
        assert float(apply(unit)[0, k]) == pytest.approx(float(diagonal[k]), rel=1e-12)


@pytest.mark.parametrize("scheme, walls", [("explicit", "staircase"), ("implicit", "staircase"), ("implicit", "cut-cell")])
def test_restart_equals_the_uninterrupted_run_bit_for_bit(tmp_path, scheme, walls):
    shapes = [circle(0.8, 0.5, 0.15), rectangle(1.6, 0.4, 0.2, 0.3, 0.3)]
    make = lambda: ChannelFlow(shapes, nx=64, ny=16, height=1.0, nu=2e-3, u_max=1.0, viscosity=scheme,  # noqa: E731
                               walls=walls)
    whole = make()
    full = simulate(whole, t_end=0.4, interval=0.1, dt=0.01)
    first = make()
    simulate(first, t_end=0.2, interval=0.1, dt=0.01)
    first.save_state(tmp_path / "state.pt")
    second = make()
    rest = simulate(second, t_end=0.2, interval=0.1, dt=0.01, initial_state=tmp_path / "state.pt")
    assert torch.equal(second.u, whole.u) and torch.equal(second.v, whole.v) and torch.equal(second.p, whole.p)
    assert torch.equal(rest["drag"], full["drag"][20:])  # forces too: the momentum history travels along
    assert second.time == pytest.approx(0.4) and second.steps == 40
    other = ChannelFlow(shapes[:1], nx=64, ny=16, height=1.0, nu=2e-3, u_max=1.0, viscosity=scheme, walls=walls)
    with pytest.raises(ValueError, match="obstacles"):
        other.load_state(torch.load(tmp_path / "state.pt", weights_only=True))
    if scheme == "implicit":  # the same geometry with the other wall treatment is another flow
        other = ChannelFlow(shapes, nx=64, ny=16, height=1.0, nu=2e-3, u_max=1.0, viscosity=scheme,
                            walls="staircase" if walls == "cut-cell" else "cut-cell")
        with pytest.raises(ValueError, match="walls"):
            other.load_state(torch.load(tmp_path / "state.pt", weights_only=True))


def test_steady_mode_stops_at_the_stated_tolerance():
    shape = circle(0.3, 0.24, 0.06)
    stops = {}
    for tol in (1e-3, 1e-5):
        flow = ChannelFlow([shape], nx=48, ny=16, height=0.5, nu=0.02, u_max=1.5, viscosity="implicit")
        out = simulate(flow, t_end=20.0, interval=5.0, cfl=0.9, steady_tol=tol)
        assert 0 < out["steady_step"] < 20.0 / out["dt"] and out["steady_change"] < tol
        before = flow.u.clone()
        flow.step(out["dt"])  # it stayed steady: one more step changes it by less than the tolerance
        assert float((flow.u - before).abs().max()) / (out["dt"] * 1.5) < 1.5 * tol
        # the snapshots after the stop repeat the steady state
        assert torch.equal(out["velocity"][-1], out["velocity"][-2])
        stops[tol] = out["steady_step"]
    assert stops[1e-5] > stops[1e-3]


def test_probes_read_the_fields_at_points():
    flow = ChannelFlow([], nx=48, ny=16, height=1.0, nu=0.05, u_max=1.0, tol=1e-12)
    out = simulate(flow, t_end=0.1, interval=0.1, probes=[[1.0, 0.5], [2.0, 0.25]])
    u = out["probes"][-1, 0]
    # Poiseuille: u = 4 y (1 - y), v = 0 (between two cell centres h/2 away, linear interpolation
    # lowers the parabola by h^2, exactly the lift of the discrete profile: the probes read it exactly,
    # times the scale that gives the inflow the parabola's exact flux, 1 / (1 + 2 h^2 / H^2))
    scale = 1 / (1 + 2 / 16**2)
    assert float(u[0]) == pytest.approx(scale, rel=1e-10)
    assert float(u[1]) == pytest.approx(4 * 0.25 * 0.75 * scale, rel=1e-10)
    assert float(out["probes"][-1, 1].abs().max()) < 1e-10
    with pytest.raises(ValueError, match="outside the channel"):
        simulate(flow, t_end=0.1, interval=0.1, probes=[[5.0, 0.5]])


def test_pressure_solve_stops_at_its_floor_on_a_divergence_free_state():
    # projecting an already projected state with a stale warm start used to run 20,000 iterations
    # towards an unreachable relative target and raise a blow-up error
    flow = ChannelFlow([circle(1.0, 0.5, 0.15)], nx=64, ny=16, height=1.0, nu=1e-2, u_max=1.0, tol=1e-10)
    simulate(flow, t_end=0.2, interval=0.2)
    stale = flow.p.clone()
    flow.project(0.01)
    assert flow.last_solve[1] <= 50
    assert float(flow.divergence().abs().max()) * flow.h <= 1e-11
    assert float(flow.p.abs().max()) < 1e-6 * float(stale.abs().max())  # the pressure of a projected field: 0


@pytest.mark.parametrize("walls", ["staircase", "cut-cell"])
def test_spec_file_reproduces_the_python_api(tmp_path, walls):
    from datagen.cli import main

    spec = tmp_path / "cylinder.yaml"
    spec.write_text("name: small-cylinder\nlength: 1.2\nheight: 0.4\nu_max: 0.6\nviscosity: 4e-3\n"
                    "obstacles:\n  - {shape: circle, center: [0.3, 0.21], radius: 0.06}\n"
                    "  - {shape: rectangle, center: [0.8, 0.2], width: 0.1, height: 0.08}\n"
                    "resolution: 20\nt_end: 0.2\ninterval: 0.1\nwarmup: 0.0\ncfl: 0.5\nviscous_scheme: implicit\n"
                    f"probes: [[1.0, 0.2]]\nwalls: {walls}\n")
    out = tmp_path / "spec.h5"
    assert main(["navier-stokes", "--family", "obstacles", "--spec", str(spec), "--n", "1", "--out", str(out),
                 "--quiet"]) == 0
    shapes = [circle(0.3, 0.21, 0.06), rectangle(0.8, 0.2, 0.1, 0.08)]
    flow = ChannelFlow(shapes, nx=60, ny=20, height=0.4, nu=0.004, u_max=0.6,
                       tol=1e-6, viscosity="implicit", walls=walls)
    expected = simulate(flow, t_end=0.2, interval=0.1, cfl=0.5, probes=[[1.0, 0.2]])
    with h5py.File(out) as h5:
        assert np.allclose(h5["drag"][0], expected["drag"].numpy(), rtol=1e-5)
        assert np.allclose(h5["probes"][0], expected["probes"].numpy(), rtol=1e-5, atol=1e-7)
        assert np.allclose(h5["velocity"][0], expected["velocity"].numpy(), atol=1e-6)
        assert h5["drag_pressure"].shape == h5["drag"].shape == (1, expected["drag"].shape[0], 2)


def test_force_coefficients_scale_with_the_frontal_height():
    labels = np.zeros((30, 20), int)
    labels[10:14, 8:12] = 1
    shape = rectangle(0.6, 0.5, 0.2, 0.2)
    assert frontal_height(shape) == pytest.approx(0.2)
    evaluator = ForceEvaluator(labels, 0.05, [0.2])
    u = torch.zeros(31, 20, dtype=torch.float64)
    v = torch.zeros(30, 21, dtype=torch.float64)
    p = torch.as_tensor(np.tile(-(np.arange(30) + 0.5)[:, None] * 0.05, (1, 20)))  # dp/dx = -1
    c = evaluator.coefficients(u, v, p, 0.01, 2.0, torch.zeros(1, 2, dtype=torch.float64))
    # pressure drag of a 0.2 x 0.2 square under dp/dx = -1: F = 0.04, C = 2 F / (U^2 D) = 0.1
    assert float(c["drag_pressure"][0]) == pytest.approx(0.1, rel=1e-12)


@pytest.mark.parametrize("spec_name", ["cylinder_2d1.yaml", "cylinder_2d2.yaml"])
def test_channel_files_describe_the_run_in_its_own_units(tmp_path, spec_name):
    """The Schäfer–Turek specs (2.2 x 0.41, u_max 0.3 / 1.5, cut-cell walls), cut short: spacing,
    domain, inflow speeds and wall treatment in the file and in The Well export are the spec's."""
    import yaml

    from datagen.cli import main

    spec = yaml.safe_load((Path(__file__).resolve().parents[2] / "experiments/specs" / spec_name).read_text())
    spec.update(t_end=0.01, interval=0.01, steady_tol=0.0, warmup=0.0)
    short = tmp_path / spec_name
    short.write_text(yaml.safe_dump(spec))
    out = tmp_path / "run.h5"
    assert main(["navier-stokes", "--family", "obstacles", "--spec", str(short), "--n", "1", "--resolution", "12",
                 "--out", str(out), "--quiet"]) == 0
    h = 0.41 / 12
    with h5py.File(out) as h5:
        assert np.allclose(h5.attrs["spacing"], [h, h], rtol=1e-12)
        assert np.allclose(h5.attrs["domain_size"], [round(2.2 / h) * h, 0.41], rtol=1e-12)
        assert np.allclose(h5.attrs["origin"], [h / 2, h / 2])
        assert h5.attrs["u_max"] == pytest.approx(spec["u_max"]) and \
            h5.attrs["u_mean"] == pytest.approx(2 * spec["u_max"] / 3)
        assert json.loads(h5.attrs["boundary"])["obstacles"] == "no-slip (cut-cell)"
        nx = h5["mask"].shape[1]
    assert main(["export", str(out), "--format", "the-well", "--out", str(tmp_path / "well")]) == 0
    exported = next((tmp_path / "well").rglob("*.h5"))
    with h5py.File(exported) as h5:
        x = h5["dimensions/x"][()]
    assert len(x) == nx and x[0] == pytest.approx(h / 2) and x[-1] == pytest.approx(round(2.2 / h) * h - h / 2)


def test_a_named_level_channel_file_is_in_units_of_the_channel_height(channel_file):
    with h5py.File(channel_file) as h5:
        nx, ny = h5["mask"].shape[1:]
        assert np.allclose(h5.attrs["spacing"], [1 / ny] * 2)
        assert np.allclose(h5.attrs["domain_size"], [nx / ny, 1.0])
        assert h5.attrs["u_max"] == 1.0 and json.loads(h5.attrs["boundary"])["obstacles"] == "no-slip (staircase)"
