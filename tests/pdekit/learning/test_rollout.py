"""Rollout-stability metrics against known answers, the Jacobian penalty against the exact
Frobenius norm, JAWS's sigma head, blow-up reported (not raised), and `pdekit evaluate --rollout`."""
import json
import math

import numpy as np
import pytest
import torch

import pdekit.learning.cli
from pdekit.learning.evaluation import rollout_metrics as rm
from pdekit.learning.evaluation.rollout import evaluate_rollout_suite
from pdekit.learning.tasks import Autoregressive

x1 = 2 * np.pi * np.arange(64) / 64


def test_correlation_of_a_field_with_itself_and_its_negative():
    rng = np.random.default_rng(0)
    u = rng.normal(size=(5, 3, 16, 16))
    assert np.allclose(rm.correlation(u, u), 1.0) and np.allclose(rm.correlation(-u, u), -1.0)
    assert np.allclose(rm.relative_l2_per_step(u, u), 0.0)


@pytest.mark.parametrize("dim", [1, 2])
def test_spectrum_of_one_mode_peaks_at_its_wavenumber_with_its_energy(dim):
    field = 2.0 * np.sin(3 * x1)  # energy 1/2 <u^2> = A^2 / 4 = 1
    if dim == 2:
        field = np.broadcast_to(field[:, None], (64, 64))
    spectrum = rm.energy_spectrum(field, dim)
    assert int(np.argmax(spectrum)) == 3 and spectrum[3] == pytest.approx(1.0)
    assert spectrum.sum() == pytest.approx(0.5 * np.mean(field**2))  # Parseval
    assert rm.spectral_error(field, field, dim) == pytest.approx(0.0)


def test_time_until_correlation_drops_on_a_known_series():
    times = 0.1 * np.arange(1, 101)
    corr = np.exp(-times / 10)  # below 0.9 from t = 10 ln(10/9) = 1.054
    assert rm.time_until_below(corr, 0.9, times) == pytest.approx(1.1)
    assert rm.time_until_below(np.ones(5), 0.9) == 5.0  # never drops: the horizon
    assert rm.time_until_below(np.array([1.0, np.nan, 1.0]), 0.9) == 2.0  # NaN (blown up) counts as dropped


def test_invariants_and_shock_of_known_fields():
    u = np.stack([np.sin(x1) + 0.5, np.where(x1 < np.pi, 1.0, -1.0)])
    inv = rm.invariants(u, 1, [x1[1]])
    assert inv["mean"][0] == pytest.approx(0.5) and inv["energy"][0] == pytest.approx(0.5 * (0.5 + 0.25))
    assert inv["total_variation"][1] == pytest.approx(4.0)  # a jump of 2 up and 2 down (periodic)
    position, height = rm.steepest_gradient(u[1:], x1[1])
    assert position[0] == pytest.approx(np.pi, abs=x1[1]) and height[0] == pytest.approx(2.0)


def test_kinetic_energy_of_a_vorticity_field_is_the_velocitys():
    """ω = cos(3x) on the 2π-periodic box is induced by v = sin(3x)/3, whose energy ½⟨v²⟩ = 1/36;
    its enstrophy ½⟨ω²⟩ = 1/4."""
    n = 32
    x = np.linspace(0, 2 * np.pi, n, endpoint=False)
    w = np.cos(3 * x)[:, None] * np.ones(n)[None, :]
    inv = rm.invariants(w[None], 2, [x[1], x[1]], vorticity=True)
    assert inv["energy"][0] == pytest.approx(1 / 36) and inv["enstrophy"][0] == pytest.approx(1 / 4)


def linear_task(kernel, **kwargs):
    task = Autoregressive(network="torch.nn.Conv1d", in_channels=1, out_channels=1, dim=1,
                          network_kwargs={"kernel_size": len(kernel), "padding": len(kernel) // 2, "bias": False,
                                          "padding_mode": "circular"}, **kwargs)
    with torch.no_grad():
        task.net.weight.copy_(torch.tensor(kernel, dtype=torch.float32).view(1, 1, -1))
    return task


@pytest.fixture
def conv_allowed(monkeypatch):
    monkeypatch.setenv("PDEKIT_ALLOW", "torch.nn.Conv1d")


def test_jacobian_penalty_matches_the_frobenius_norm_in_expectation(conv_allowed):
    kernel = [0.3, -1.2, 0.7]
    task = linear_task(kernel, regularizer="jacobian", jacobian_weight=1.0)
    torch.manual_seed(0)
    x, mask = torch.randn(4000, 1, 32), torch.ones(4000, 32, dtype=torch.bool)
    penalty = float(task.rollout_regularization(x, mask, None))
    # J is the circulant matrix of the kernel: ||J||_F^2 / n = sum of squared weights
    assert penalty == pytest.approx(sum(w * w for w in kernel), rel=0.03)


def test_jaws_sigma_head_is_positive_and_rollouts_use_the_mean(conv_allowed):
    task = Autoregressive(network="torch.nn.Conv1d", in_channels=1, out_channels=1, dim=1, regularizer="jaws",
                          network_kwargs={"kernel_size": 3, "padding": 1, "padding_mode": "circular"})
    with torch.no_grad():
        task.net.bias.copy_(torch.tensor([0.0, -50.0]))  # a sigma head pushed far negative
    x = torch.randn(2, 1, 16)
    mean, sigma = task._heads(x)
    assert mean.shape == sigma.shape == (2, 1, 16) and (sigma > 0).all()
    assert task(x, torch.ones(2, 16, dtype=torch.bool)).shape == (2, 1, 16)
    loss = task.training_step({"x": x, "y": torch.randn(2, 1, 1, 16), "mask": torch.ones(2, 16, dtype=torch.bool)}, 0)
    assert torch.isfinite(loss)


def test_blow_up_is_reported_not_raised(conv_allowed, burgers_file):
    task = linear_task([0.0, 2.0, 0.0])  # doubles every step
    signature = {"inputs": ["u"], "history": 1}
    suite, _ = evaluate_rollout_suite(task, signature, [burgers_file], steps=300)
    overall = suite["overall"]
    # the truth stays below max|u0| (maximum principle): 2^k exceeds 100x that at k = 7
    assert overall["blown_up"] == 2 and overall["first_blow_up_step"] == 7
    assert all(math.isnan(c) for c in suite["trajectories"][0]["correlation"][7:])


def test_evaluate_rollout_writes_json_and_figures(tmp_path, burgers_file, capsys):
    from tests.conftest import save_task_checkpoint

    torch.manual_seed(0)
    task = Autoregressive(network_kwargs={"n_modes": [8], "hidden_channels": 8, "n_layers": 2}, in_channels=1,
                          out_channels=1, dim=1)
    signature = {"pde": "burgers", "dim": 1, "timeseries": True, "inputs": ["u"], "target": ["u"], "log_inputs": [],
                 "history": 1, "unroll": 1, "levels": ["easy"]}
    ckpt = save_task_checkpoint(task, tmp_path / "ar.ckpt", signature)
    assert pdekit.learning.cli.main(["evaluate", "--ckpt", str(ckpt), "--data", str(burgers_file), "--rollout",
                            "--steps", "150", "--out", str(tmp_path / "ev")]) == 0
    assert "time until corr < 0.9" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    row = metrics["rollout_suite"]["per_level"]["easy"]
    for key in ("time_until_corr_0.8_mean", "time_until_corr_0.9_mean", "time_until_corr_0.95_mean",
                "late_spectral_error_mean", "energy_drift_mean", "total_variation_drift_mean",
                "shock_position_error_mean", "correlation_vs_step"):
        assert key in row, key
    for name in ("rollout_curves.png", "spectra.png", "strips.png"):
        assert (tmp_path / "ev" / name).read_bytes()[:4] == b"\x89PNG"
    assert pdekit.learning.cli.main(["evaluate", "--ckpt", str(ckpt), "--data", str(burgers_file), "--steps", "5"]) == 2
