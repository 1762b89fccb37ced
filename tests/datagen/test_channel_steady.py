"""The channel's implicit steady mode (datagen.ns_steady): the march's steady state in far fewer
steps, and refusals of what it cannot do."""
import pytest
import torch

from datagen.ns_channel import ChannelFlow
from datagen.ns_channel_run import simulate
from datagen.ns_steady import steady_residual
from datagen.obstacles import circle


def _flow(walls="cut-cell", **kw):
    return ChannelFlow([circle(0.3, 0.24, 0.06)], nx=48, ny=16, height=0.5, nu=0.02, u_max=1.5, tol=1e-10,
                       viscosity="implicit", walls=walls, **kw)


@pytest.mark.parametrize("walls", ["staircase", "cut-cell"])
def test_implicit_steady_mode_reaches_the_marchs_steady_state_in_fewer_steps(walls):
    results = {}
    for scheme in ("march", "implicit"):
        flow = _flow(walls)
        out = simulate(flow, t_end=40.0, interval=40.0, cfl=0.9, steady_tol=1e-7, steady_scheme=scheme)
        assert out["steady_step"] == (0 if scheme == "implicit" else out["steps"]) and out["steady_step"] >= 0
        results[scheme] = (flow, out)
    (march, m_out), (implicit, i_out) = results["march"], results["implicit"]
    drag = [float(f.force_coefficients()["drag"][0]) for f in (march, implicit)]
    assert drag[1] == pytest.approx(drag[0], rel=1e-6)
    assert float((implicit.u - march.u).abs().max()) <= 1e-5 * 1.5
    # the steady equations hold at the end of both (their residual, not only the change per step)
    for flow in (march, implicit):
        assert steady_residual(flow)[1] <= 1e-5 * 1.5
    # the pseudo steps are a fraction of the march's steps (measured: staircase 38 against 433, cut cells 59 against 437; drag equal to 1e-8)
    assert 0 < i_out["pseudo_steps"] < m_out["steady_step"] / 4
    # every snapshot and force row is the steady state
    assert torch.equal(i_out["velocity"][0], i_out["velocity"][-1]) and float(i_out["drag"].std()) <= 1e-12
    assert float(i_out["relative_divergence"].max()) <= 1e-10 * (1 + 1e-6)


def test_implicit_steady_mode_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="needs a steady_tol"):
        simulate(_flow(), t_end=1.0, interval=1.0, steady_scheme="implicit")
    with pytest.raises(ValueError, match="constant inflow"):
        simulate(_flow(inflow={"waveform": "ramp", "duration": 1.0}), t_end=1.0, interval=1.0, steady_tol=1e-5,
                 steady_scheme="implicit")
    with pytest.raises(ValueError, match="steady_scheme must be one of march, implicit"):
        simulate(_flow(), t_end=1.0, interval=1.0, steady_tol=1e-5, steady_scheme="newton")


def test_the_momentum_operator_is_the_linearised_residual():
    # the pseudo step's operator is the derivative of its backward-Euler residual: applied to a small
    # change it equals the residual's change (advection is bilinear, so exactly up to round-off)
    from datagen.ns_steady import momentum_operator

    flow = _flow()
    simulate(flow, t_end=0.2, interval=0.2, cfl=0.9)
    advecting = flow.fluid_velocities(flow.u, flow.v)
    dt = 0.05
    apply = momentum_operator(flow, dt, advecting)
    g = torch.Generator().manual_seed(0)
    free = torch.cat([flow.u_free.reshape(-1), flow.v_free.reshape(-1)]).double()
    x = torch.randn(1, free.numel(), generator=g, dtype=torch.float64) * free
    n_u = flow.u.numel()

    def residual(vector):  # d/dt - A(advecting, .) - nu L of a stacked field (homogeneous boundaries)
        du = vector[:n_u].view_as(flow.u) * flow.u_free
        dv = vector[n_u:].view_as(flow.v) * flow.v_free
        fu, fv = flow.fluid_velocities(du, dv)
        hu, hv = flow.advection(advecting, (fu, fv))
        lap_u, lap_v = flow.laplacians(fu, fv)
        ru, rv = du / dt - hu - flow.nu * lap_u, dv / dt - hv - flow.nu * lap_v
        return torch.cat([(ru * flow.u_free).reshape(-1), (rv * flow.v_free).reshape(-1)])

    assert torch.allclose(apply(x)[0], residual(x[0]), rtol=0, atol=1e-10 * float(residual(x[0]).abs().max()))
    # and advection(a, a) is the march's own advection term
    u, v = advecting
    hu, hv = flow.advection((u, v), (u, v))
    Hu, Hv = flow.tendency(viscous=False)
    assert torch.allclose(hu * flow.u_free, Hu) and torch.allclose(hv * flow.v_free, Hv)
