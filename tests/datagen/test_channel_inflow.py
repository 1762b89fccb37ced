"""Time-dependent inflow of the channel (datagen.inflow): waveforms against their formulas, the
inflow's exact flux, a ramp reaching the constant inflow's steady state, a sine inflow's flux at
every step, start from rest, restart across a waveform, bad waveforms in one line."""
import math

import pytest
import torch

from datagen.inflow import Waveform
from datagen.ns_channel import ChannelFlow, inflow_profile
from datagen.ns_channel_run import simulate
from datagen.obstacles import circle


def test_waveforms_follow_their_formulas():
    sine = Waveform.parse({"waveform": "sine", "period": 16})
    assert sine(4.0) == pytest.approx(1.0) and sine(8.0) == pytest.approx(0.0, abs=1e-15)
    assert sine(2.0) == pytest.approx(math.sin(math.pi * 2.0 / 8.0))
    ramp = Waveform.parse({"waveform": "ramp", "duration": 2.0})
    assert [ramp(t) for t in (-1.0, 0.0, 1.0, 2.0, 5.0)] == pytest.approx([0.0, 0.0, 0.5, 1.0, 1.0])
    table = Waveform.parse({"waveform": "table", "points": [[0, 0], [1, 2], [3, 1]]})
    assert [table(t) for t in (-1, 0.5, 2.0, 9.0)] == pytest.approx([0.0, 1.0, 1.5, 1.0])
    assert table.peak(10.0) == 2.0 and sine.peak(8.0) == pytest.approx(1.0) and sine.peak(2.0) < 0.71
    assert Waveform.parse("constant")(3.0) == 1.0 and Waveform.parse({"waveform": "constant", "value": 0.5})(1.0) == 0.5
    for waveform in (sine, ramp, table):  # the stored form reads back to the same waveform
        assert Waveform.parse(waveform.to_json()) == waveform


@pytest.mark.parametrize("spec, message", [
    ("square", "waveform must be one of constant, ramp, sine, table"),
    ({"waveform": "sine"}, "needs `period`"),
    ({"waveform": "sine", "period": -1}, "period must be a positive"),
    ({"waveform": "ramp", "duration": "soon"}, "duration must be a number"),
    ({"waveform": "ramp", "duration": 1, "speed": 2}, "takes duration, start, value, not speed"),
    ({"waveform": "table", "points": [[0, 0], [0, 1]]}, "times must increase"),
    ({"waveform": "table", "points": [[0, float("nan")]]}, "finite"),
    ([1, 2], "a waveform name or a mapping"),
])
def test_bad_waveforms_are_one_line_errors(spec, message):
    with pytest.raises(ValueError, match=message) as err:
        Waveform.parse(spec)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("ny, height", [(16, 1.0), (41, 0.41), (7, 2.0)])
def test_inflow_carries_the_parabolas_exact_flux(ny, height):
    u_max = 1.5
    h = height / ny
    flux = float(inflow_profile(ny, height, u_max).sum() * h)
    assert flux == pytest.approx(2.0 / 3.0 * u_max * height, rel=1e-14)


def _flow(**kw):
    return ChannelFlow([circle(0.3, 0.24, 0.06)], nx=48, ny=16, height=0.5, nu=0.05, u_max=1.5, tol=1e-10,
                       viscosity="implicit", **kw)


def test_a_ramped_inflow_reaches_the_constant_inflows_steady_state():
    constant, ramped = _flow(), _flow(inflow={"waveform": "ramp", "duration": 2.0})
    assert float(ramped.u.abs().max()) == 0.0  # f(0) = 0: it starts from rest
    for flow in (constant, ramped):
        out = simulate(flow, t_end=40.0, interval=40.0, cfl=0.9, steady_tol=1e-8)
        assert out["steady_step"] > 0
    assert ramped.time > 2.0
    drag = [float(f.force_coefficients()["drag"][0]) for f in (constant, ramped)]
    assert drag[1] == pytest.approx(drag[0], rel=1e-6)
    assert float((ramped.u - constant.u).abs().max()) <= 1e-6 * 1.5


def test_a_sine_inflow_carries_the_waveforms_flux_at_every_step():
    waveform = Waveform.parse({"waveform": "sine", "period": 4.0})
    flow = _flow(inflow=waveform)
    assert float(flow.u.abs().max()) == 0.0 and float(flow.v.abs().max()) == 0.0  # from rest
    full_flux = 2.0 / 3.0 * 1.5 * 0.5
    dt = 0.01
    for _ in range(300):  # through the reversal at t = 2
        flow.step(dt)
        inlet, outlet = float(flow.u[0].sum()) * flow.h, float(flow.u[-1].sum()) * flow.h
        assert inlet == pytest.approx(full_flux * waveform(flow.time), rel=1e-12, abs=1e-15)
        # divergence-free at the pressure tolerance: what comes in goes out
        assert outlet == pytest.approx(inlet, abs=1e-8 * full_flux)
        assert float(flow.divergence().abs().max()) * flow.h**2 <= 1e-9 * full_flux  # net outflow per cell


def test_restart_carries_the_time_through_a_waveform(tmp_path):
    make = lambda: _flow(inflow={"waveform": "sine", "period": 2.0})  # noqa: E731
    whole = make()
    simulate(whole, t_end=0.4, interval=0.1, dt=0.01)
    first = make()
    simulate(first, t_end=0.2, interval=0.1, dt=0.01)
    first.save_state(tmp_path / "state.pt")
    second = make()
    simulate(second, t_end=0.2, interval=0.1, dt=0.01, initial_state=tmp_path / "state.pt")
    assert torch.equal(second.u, whole.u) and torch.equal(second.p, whole.p)
    other = _flow(inflow={"waveform": "sine", "period": 3.0})
    with pytest.raises(ValueError, match="inflow"):
        other.load_state(torch.load(tmp_path / "state.pt", weights_only=True))


def test_any_function_of_time_drives_the_inflow():
    flow = _flow(inflow=lambda t: min(t, 0.5))
    out = simulate(flow, t_end=1.0, interval=0.5, cfl=0.5)
    assert float(flow.u[0].sum()) * flow.h == pytest.approx(0.5 * 0.5, rel=1e-12)
    # the step followed the function's peak (0.5), not u_max
    assert out["dt"] == pytest.approx(2 * 0.5 * flow.h / (2.5 * 1.5), rel=0.05)


@pytest.mark.parametrize("walls", ["staircase", "cut-cell"])
def test_do_nothing_outflow_keeps_poiseuille_flow_and_the_steady_state(walls):
    # Poiseuille flow satisfies -p + nu du/dx = 0 (p = 0 there, du/dx = 0): exactly stationary
    flow = ChannelFlow([], nx=48, ny=16, height=1.0, nu=0.05, u_max=1.0, tol=1e-12, outflow="do-nothing")
    u0 = flow.u.clone()
    simulate(flow, t_end=1.0, interval=0.5)
    assert float((flow.u - u0).abs().max()) <= 1e-12 and float(flow.v.abs().max()) <= 1e-12
    dpdx = (flow.p[1:] - flow.p[:-1]) / flow.h
    assert torch.allclose(dpdx, torch.full_like(dpdx, -8 * 0.05 / (1 + 2 / 16**2)), rtol=1e-8)
    # past a cylinder the outlet condition barely reaches upstream: the same steady drag to 1e-6
    # (measured: 1e-8), the outlet's flux equal to the inlet's
    drag = {}
    for outflow in ("convective", "do-nothing"):
        flow = _flow(outflow=outflow, walls=walls)
        out = simulate(flow, t_end=40.0, interval=40.0, cfl=0.9, steady_tol=1e-7)
        assert out["steady_step"] > 0
        drag[outflow] = float(flow.force_coefficients()["drag"][0])
        assert float(flow.u[-1].sum()) == pytest.approx(float(flow.u[0].sum()), rel=1e-9)
    assert drag["do-nothing"] == pytest.approx(drag["convective"], rel=1e-6)
    with pytest.raises(ValueError, match="outflow must be one of convective, do-nothing"):
        _flow(outflow="open")
