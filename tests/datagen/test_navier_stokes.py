"""Navier–Stokes solvers against known answers: Taylor–Green decay, exact advection of a
two-mode field, inviscid conservation (periodic); Poiseuille flow, divergence at the pressure
tolerance, cylinder shedding at Re = 100 (channel)."""
import math

import numpy as np
import pytest
import torch

from datagen.burgers import BlowUpError
from datagen.ns_channel import ChannelFlow, inflow_profile
from datagen.ns_channel_run import simulate, strouhal
from datagen.ns_periodic import Forcing, SpectralGrid, gaussian_random_field, simulate as periodic, taylor_green
from datagen.obstacles import circle, polygon, rectangle


def test_taylor_green_decays_at_the_exact_viscous_rate():
    nu, n = 0.01, 64
    w0 = taylor_green(n, 0.0, nu).unsqueeze(0)
    out = periodic(w0, nu=nu, t_end=1.0, interval=0.25, forcing=Forcing("none"), max_dt=1e-3)
    assert out["vorticity"].dtype == torch.float64 and int(out["steps"][0]) == 1000
    for i, t in enumerate(out["t"].tolist()):
        exact = taylor_green(n, t, nu)
        assert float((out["vorticity"][0, i] - exact).norm() / exact.norm()) <= 1e-6


def test_periodic_fixed_step_and_one_forcing_per_sample():
    # Taylor–Green is a steady Euler flow: the forcing 2 nu k^2 w0 holds it exactly against viscosity,
    # while the unforced copy decays at the exact rate; a fixed dt takes exactly t_end / dt steps
    nu, n, k = 0.01, 32, 2 * math.pi
    w0 = taylor_green(n, 0.0, nu)
    forcing = torch.stack([torch.zeros(n, n, dtype=torch.float64), 2 * nu * k * k * w0])
    out = periodic(torch.stack([w0, w0]), nu=nu, t_end=0.5, interval=0.25, forcing=forcing, dt=1e-3)
    assert out["steps"].tolist() == [500, 500]
    held, decayed = out["vorticity"][1, -1], out["vorticity"][0, -1]
    assert float((held - w0).norm() / w0.norm()) <= 1e-9
    exact = taylor_green(n, 0.5, nu)
    assert float((decayed - exact).norm() / exact.norm()) <= 1e-6
    with pytest.raises(ValueError, match="t_end must be a whole multiple"):
        periodic(w0[None], nu=nu, t_end=0.6, interval=0.25)  # no silent rounding to 0.5
    with pytest.raises(ValueError, match="interval must be a whole multiple"):
        periodic(w0[None], nu=nu, t_end=0.5, interval=0.25, dt=0.03)
    with pytest.raises(ValueError, match="forcing array must have shape"):
        periodic(w0[None], nu=nu, t_end=0.5, interval=0.25, forcing=torch.zeros(3, n, n))


def test_advection_term_is_exact_for_resolved_modes():
    # w = sin(2 pi x) cos(4 pi y) + cos(6 pi y): psi = w_1 / (20 pi^2) + w_2 / (36 pi^2)
    n = 32
    x = torch.arange(n, dtype=torch.float64) / n
    X, Y = torch.meshgrid(x, x, indexing="ij")
    p = math.pi
    w = torch.sin(2 * p * X) * torch.cos(4 * p * Y) + torch.cos(6 * p * Y)
    psi_y = -4 * p * torch.sin(2 * p * X) * torch.sin(4 * p * Y) / (20 * p**2) - 6 * p * torch.sin(6 * p * Y) / (36 * p**2)
    psi_x = 2 * p * torch.cos(2 * p * X) * torch.cos(4 * p * Y) / (20 * p**2)
    w_x = 2 * p * torch.cos(2 * p * X) * torch.cos(4 * p * Y)
    w_y = -4 * p * torch.sin(2 * p * X) * torch.sin(4 * p * Y) - 6 * p * torch.sin(6 * p * Y)
    exact = psi_y * w_x - psi_x * w_y  # u = psi_y, v = -psi_x
    spec = SpectralGrid(n)
    got = torch.fft.irfft2(spec.advection(torch.fft.rfft2(w.unsqueeze(0))), s=(n, n))[0]
    assert float((got - exact).abs().max()) <= 1e-12 * float(exact.abs().max())


def test_inviscid_flow_conserves_energy_and_enstrophy_and_batches_do_not_mix():
    n = 32
    gen = torch.Generator().manual_seed(3)
    w0 = torch.stack([gaussian_random_field(n, gen) for _ in range(3)])
    out = periodic(w0, nu=0.0, t_end=1.0, interval=1.0, forcing=Forcing("none"), cfl=0.2)
    spec = SpectralGrid(n)
    for i in range(3):
        first, last = out["vorticity"][i, 0], out["vorticity"][i, -1]
        energy = [float(sum(c.pow(2).sum() for c in spec.velocity(torch.fft.rfft2(w)))) for w in (first, last)]
        enstrophy = [float(w.pow(2).sum()) for w in (first, last)]
        assert abs(energy[1] / energy[0] - 1) < 1e-4 and abs(enstrophy[1] / enstrophy[0] - 1) < 1e-3
        assert float((last - first).norm() / first.norm()) > 0.05  # the flow did evolve
    alone = periodic(w0[1:2], nu=0.0, t_end=1.0, interval=1.0, forcing=Forcing("none"), cfl=0.2)
    # its own steps whatever the batch: equal up to the FFT's batch-dependent round-off
    assert torch.allclose(alone["vorticity"][0], out["vorticity"][1], rtol=0, atol=1e-12)


def test_periodic_blow_up_names_the_sample():
    n = 16
    w0 = torch.zeros(2, n, n, dtype=torch.float64)
    w0[1] = taylor_green(n, 0.0, 0.0) * 1e3 + torch.randn(n, n, generator=torch.Generator().manual_seed(0),
                                                          dtype=torch.float64) * 1e3
    with pytest.raises(BlowUpError, match="sample b blew up by step"):
        periodic(w0, nu=0.0, t_end=1.0, interval=1.0, forcing=Forcing("none"), cfl=1.5, max_dt=1.0, names=["a", "b"])


def test_poiseuille_flow_is_stationary_and_exact():
    nu, u_max, ny = 0.05, 1.0, 16
    flow = ChannelFlow([], nx=48, ny=ny, height=1.0, nu=nu, u_max=u_max, tol=1e-12)
    u0 = flow.u.clone()
    out = simulate(flow, t_end=1.0, interval=0.5)
    assert float((flow.u - u0).abs().max()) <= 1e-10 and float(flow.v.abs().max()) <= 1e-10
    # the pressure gradient balances the viscous stress: dp/dx = nu u'' = -8 nu U' / H^2, with U' the
    # discrete profile's peak scaled to the parabola's exact flux, U / (1 + 2 h^2 / H^2)
    dpdx = (flow.p[1:] - flow.p[:-1]) / flow.h
    peak = u_max / (1 + 2 / ny**2)
    assert torch.allclose(dpdx, torch.full_like(dpdx, -8 * nu * peak), rtol=1e-8)
    # the inflow is the parabola up to O(h^2): the lift that makes it exactly discrete, and the scale
    y = (np.arange(ny) + 0.5) / ny
    assert np.abs(inflow_profile(ny, 1.0, u_max) - 4 * y * (1 - y)).max() <= 1.5 / ny**2
    # div u* is round-off here: the solve stops at the residual floor, leaving div u at round-off too
    assert float(flow.divergence().abs().max()) * flow.h / u_max <= 1e-12


def test_divergence_equals_the_pressure_tolerance_every_step():
    shapes = [circle(0.8, 0.5, 0.15), rectangle(1.6, 0.35, 0.3, 0.2, 0.4),
              polygon([(2.2, 0.5), (2.5, 0.4), (2.6, 0.7), (2.3, 0.8)])]
    for tol in (1e-4, 1e-8):
        flow = ChannelFlow(shapes, nx=96, ny=32, height=1.0, nu=1e-3, u_max=1.0, tol=tol)
        out = simulate(flow, t_end=0.4, interval=0.2)
        assert out["steps"] > 30 and out["drag"].shape == (out["steps"], 3)
        divergence = out["relative_divergence"]
        assert float(divergence.max()) <= tol * (1 + 1e-6)  # ||div u|| <= tol ||div u*||, every step
        if tol == 1e-4:
            assert float(divergence.max()) > 1e-6  # and not far below: it is the solve that sets it
        assert float(out["drag"].min()) > 0  # every obstacle is pushed downstream


def test_obstacles_must_be_resolved_and_leave_the_walls_free():
    with pytest.raises(ValueError, match="covers no cell"):
        ChannelFlow([circle(1.0, 0.5, 0.01)], nx=64, ny=16, height=1.0, nu=1e-2, u_max=1.0)
    with pytest.raises(ValueError, match="must not touch"):
        ChannelFlow([circle(1.0, 0.1, 0.2)], nx=64, ny=16, height=1.0, nu=1e-2, u_max=1.0)


def test_cylinder_at_re100_sheds_with_the_schaefer_turek_strouhal_number():
    # Schaefer & Turek (1996), benchmark 2D-2: channel 2.2 x 0.41, cylinder D = 0.1 at (0.2, 0.2),
    # U_max = 1.5 (U_mean = 1), nu = 1e-3, Re = U_mean D / nu = 100: St = 0.2950 ... 0.3050,
    # C_D max 3.22 ... 3.24.  Here: staircase cylinder, 10 cells per diameter (coarse: see below).
    ny = 41
    nx = round(2.2 / (0.41 / ny))
    flow = ChannelFlow([circle(0.2, 0.2, 0.05)], nx=nx, ny=ny, height=0.41, nu=1e-3, u_max=1.5, tol=1e-6)
    out = simulate(flow, warmup=3.0, t_end=1.5, interval=0.5, cfl=0.8)
    lift, drag = out["lift"][:, 0].numpy(), out["drag"][:, 0].numpy()
    st = strouhal(out["t_force"].numpy(), lift, 0.1, 1.0)
    assert 0.295 <= st <= 0.305
    assert lift.max() > 0.3 and lift.min() < -0.3  # periodic shedding, not a steady wake
    # 10 cells per diameter under-resolves the wake: the control-volume drag lies 5% below the
    # reference here and converges toward it (README: 2D-2 at 10 and 20 cells per diameter)
    assert abs(drag.max() - 3.23) / 3.23 < 0.06


def test_channel_blow_up_names_sample_and_step():
    flow = ChannelFlow([circle(1.0, 0.5, 0.15)], nx=64, ny=16, height=1.0, nu=1e-3, u_max=1.0)
    with pytest.raises(BlowUpError, match=r"sample 7 blew up at step \d+"):
        simulate(flow, t_end=2.0, interval=1.0, dt=0.2, name=7)
