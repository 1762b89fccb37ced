"""Learning to Relax: SSOR is an SPD preconditioner, SOR converges in the textbook number of
iterations, the bandit's regret per instance falls with the horizon, the chooser's state
round-trips, and a resumed `datagen poisson --omega auto` run learns exactly as an uninterrupted one."""
import math

import h5py
import numpy as np
import pyamg
import pytest
import torch

import datagen.cli
from datagen import kinds
from pdekit import DiffusionOperator, Grid
from pdekit.errors import ConfigError
from pdekit.krylov import cg, pcg, sor
from pdekit.precond import SSOR
from pdekit.relaxation import DEFAULT_ARMS, ContextualTsallisINF, TsallisINF, load


def masked_variable_operator():
    grid = Grid.box((12, 10))
    rng = np.random.default_rng(0)
    a = np.exp(rng.normal(size=grid.shape))
    mask = np.ones(grid.shape, bool)
    mask[4:7, 3:6] = False
    return DiffusionOperator(grid, a, mask)


@pytest.mark.parametrize("omega", [0.3, 1.0, 1.5, 1.9])
def test_ssor_is_symmetric_positive_definite(omega):
    op = masked_variable_operator()
    M = SSOR(op, omega)
    inverse = M.as_linear_operator() @ np.eye(M.n)
    assert np.abs(inverse - inverse.T).max() < 1e-12 * np.abs(inverse).max()
    assert np.linalg.eigvalsh(inverse).min() > 0
    # the assembled M = (D + wL) D^-1 (D + wU) / (w (2 - w)) is what it inverts
    A = op.to_sparse().toarray()
    D, L = np.diag(np.diag(A)), np.tril(A, -1)
    assembled = (D + omega * L) @ np.linalg.inv(D) @ (D + omega * L.T) / (omega * (2 - omega))
    assert np.allclose(inverse @ assembled, np.eye(M.n), atol=1e-9)


def test_ssor_pcg_needs_fewer_iterations_than_cg():
    op = masked_variable_operator()
    b = op.rhs(torch.ones(op.grid.shape, dtype=torch.float64))
    plain, ssor = cg(op, b), pcg(op, b, SSOR(op, 1.5))
    assert bool(ssor.converged) and int(ssor.iterations) < 0.6 * int(plain.iterations)
    assert torch.allclose(ssor.x, plain.x, atol=1e-6)


@pytest.mark.parametrize("omega", [0.0, 2.0, -1.0, float("nan"), "1.5"])
def test_omega_outside_zero_two_is_refused(omega):
    with pytest.raises(ConfigError, match="omega must be a number in \\(0, 2\\)"):
        SSOR(masked_variable_operator(), omega)


def test_sor_converges_in_the_textbook_number_of_iterations():
    n = 32
    A = pyamg.gallery.poisson((n, n), format="csr")
    b = np.random.default_rng(0).random(n * n)
    h = 1.0 / (n + 1)
    rho_jacobi = math.cos(math.pi * h)
    omega_star = 1 + (rho_jacobi / (1 + math.sqrt(1 - rho_jacobi**2))) ** 2  # = 2 / (1 + sin(pi h))
    gauss_seidel = int(sor(A, b, 1.0, tol=1e-8).iterations)
    assert gauss_seidel == pytest.approx(math.log(1e-8) / math.log(rho_jacobi**2), rel=0.05)
    optimal = int(sor(A, b, omega_star, tol=1e-8).iterations)
    textbook = math.log(1e-8) / math.log(omega_star - 1)  # rho(SOR) = omega* - 1
    assert textbook <= optimal <= 1.4 * textbook  # the defective optimum adds a ~log k factor
    grid = np.round(np.linspace(1.0, 1.95, 20), 4)
    costs = [int(sor(A, b, w, tol=1e-8, maxiter=5000).iterations) for w in grid]
    assert abs(grid[int(np.argmin(costs))] - omega_star) <= 0.05


def synthetic_regret(horizon, trials=4, best=1.6):
    """Average regret per instance against the best fixed arm on noisy costs with a known optimum."""
    mean = lambda w: 20 + 200 * (w - best) ** 2  # noqa: E731
    best_mean = min(mean(a) for a in DEFAULT_ARMS)
    regrets = []
    for trial in range(trials):
        chooser, rng, total = TsallisINF(seed=trial), np.random.default_rng(100 + trial), 0.0
        for _ in range(horizon):
            omega = chooser.choose()
            chooser.update(omega, max(1.0, mean(omega) + 2 * rng.normal()))
            total += mean(omega)
        regrets.append(total / horizon - best_mean)
    return float(np.mean(regrets))


def test_bandit_regret_per_instance_falls_with_the_horizon():
    short, long = synthetic_regret(100), synthetic_regret(2000)
    assert long < 0.5 * short and long < 5.0  # ~13 at 100 instances, ~3 at 2000 (a fixed w=1 costs 72)


def test_contextual_chooser_learns_a_best_arm_per_context():
    chooser = ContextualTsallisINF(edges=[[0.5]], seed=1)
    best = {0.0: 1.2, 1.0: 1.8}
    for t in range(1500):
        context = float(t % 2)
        omega = chooser.choose([context])
        chooser.update(omega, 10 + 300 * (omega - best[context]) ** 2, [context])
    for context, omega in best.items():
        learner = chooser.cells[chooser.cell([context])]
        assert abs(learner.arms[int(np.argmax(learner.probabilities()))] - omega) <= 0.1


def test_state_round_trips_and_learning_goes_on_identically(tmp_path):
    first = TsallisINF(seed=5)
    for _ in range(40):
        omega = first.choose()
        first.update(omega, 30 + 100 * abs(omega - 1.5))
    path = first.save(tmp_path / "chooser.json")
    second = load(path)
    for _ in range(40):
        a, b = first.choose(), second.choose()
        assert a == b
        first.update(a, 30 + 100 * abs(a - 1.5))
        second.update(b, 30 + 100 * abs(b - 1.5))
    assert np.array_equal(first.probabilities(), second.probabilities())
    with pytest.raises(ConfigError, match="does not follow choose"):
        second.update(1.0, 5)


def test_datagen_omega_auto_resumes_exactly(tmp_path, monkeypatch):

    monkeypatch.chdir(tmp_path)
    argv = ["poisson", "--level", "medium", "--n", "12", "--resolution", "24", "--solver", "ssor-pcg", "--quiet"]
    assert datagen.cli.main([*argv, "--out", "whole.h5"]) == 0
    original = kinds.get("poisson").generate

    def stop_at_seven(config, indices, seeds, progress=None, parts=None):
        if 7 in indices:
            raise KeyboardInterrupt
        return original(config, indices, seeds, progress, parts)

    monkeypatch.setattr(kinds.get("poisson"), "generate", stop_at_seven)
    assert datagen.cli.main([*argv, "--out", "resumed.h5"]) == 130
    monkeypatch.setattr(kinds.get("poisson"), "generate", original)
    assert datagen.cli.main([*argv, "--out", "resumed.h5", "--resume"]) == 0
    with h5py.File("whole.h5") as a, h5py.File("resumed.h5") as b:
        assert np.array_equal(a["omega"][()], b["omega"][()])
        assert np.array_equal(a["solver_iterations"][()], b["solver_iterations"][()])
        assert len(set(a["omega"][()])) > 3 and (a["solver_residual"][()] <= 1e-10).all()


def test_channel_pressure_solves_learn_omega(tmp_path, monkeypatch):
    """`--pressure-precond ssor --omega auto`: every pressure solve is SSOR-PCG with the bandit's
    omega, the flow still meets its divergence tolerance, and the omega of each snapshot is stored."""
    from pdekit.relaxation import DEFAULT_ARMS

    monkeypatch.chdir(tmp_path)
    (tmp_path / "short.yaml").write_text("base: easy\nt_end: 0.8\ninterval: 0.2\nwarmup: 0.2\n")
    assert datagen.cli.main(["navier-stokes", "--family", "obstacles", "--spec", "short.yaml", "--n", "1",
                             "--resolution", "16", "--pressure-precond", "ssor", "--out", "flow.h5", "--quiet"]) == 0
    with h5py.File("flow.h5") as h5:
        omegas = h5["pressure_omega"][0]
        assert omegas.shape == h5["t"].shape and set(omegas.tolist()) <= set(DEFAULT_ARMS)
        assert h5["max_relative_divergence"][0] <= 1e-5
