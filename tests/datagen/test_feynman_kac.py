"""Feynman–Kac labels (datagen.feynman_kac), the analytic problems' domains, and FK-PINN
(models.fkpinn): against exact solutions and closed forms."""
import math

import h5py
import numpy as np
import pytest
import torch

from datagen.feynman_kac import green_radius, labels, screened_weights
from pdekit.errors import ConfigError
from pdekit.problems import get

f64 = torch.float64


def _points(name, n, seed=3):
    return get(name).domain.sample_interior(n, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name, sampler, paths", [
    ("laplace-ball-2d", "walk-on-spheres", 1000), ("laplace-ball-5d", "walk-on-spheres", 1000),
    ("poisson-ball-2d", "walk-on-spheres", 1000), ("poisson-ball-5d", "walk-on-spheres", 400),
    ("exit-time-ball-5d", "walk-on-spheres", 400), ("laplace-lshape", "walk-on-spheres", 1000),
    ("schrodinger-square", "walk-on-spheres", 1000), ("exit-time-ball-2d", "euler-maruyama", 300),
    ("poisson-ball-2d", "euler-maruyama", 300)])
def test_labels_agree_with_exact_solutions_within_four_standard_errors(name, sampler, paths):
    problem = get(name)
    x = _points(name, 4)
    out = labels(problem, x, sampler, paths, seeds=range(4), dt=1e-3)
    z = (out["value"] - problem.solution(x).numpy()) / out["stderr"]
    assert np.all(np.abs(z) < 4), z
    assert np.all(out["stderr"] > 0) and np.all(out["steps"] >= 1)


def test_standard_error_shrinks_like_one_over_root_paths_and_labels_do_not_depend_on_the_batch():
    problem = get("poisson-ball-2d")
    x = _points("poisson-ball-2d", 3)
    small = labels(problem, x, "walk-on-spheres", 250, seeds=[5, 6, 7])
    large = labels(problem, x, "walk-on-spheres", 4000, seeds=[5, 6, 7])
    ratio = small["stderr"] / large["stderr"]
    assert np.all((ratio > 3) & (ratio < 5)), ratio  # √16 = 4
    alone = labels(problem, x[1:2], "walk-on-spheres", 250, seeds=[6])
    assert alone["value"][0] == small["value"][1]  # each point has its own random stream
    again = labels(problem, x, "walk-on-spheres", 250, seeds=[5, 6, 7])
    assert np.array_equal(again["value"], small["value"])


@pytest.mark.parametrize("dim", [2, 3, 5, 10])
def test_green_radius_sampler_has_the_greens_function_radial_law(dim):
    u = (torch.arange(20000, dtype=f64) + 0.5) / 20000  # quantiles: a deterministic check of the inverse CDF
    s = green_radius(u, dim)
    expected = 4 / 9 if dim == 2 else (1 / 3 - 1 / (dim + 1)) / (0.5 - 1 / dim)  # E[s] under s log(1/s) / s − s^{d−1}
    assert float(s.mean()) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("dim", [2, 3, 5])
def test_screened_greens_function_integrates_to_the_screened_ball_solution(dim):
    """∫_B G_σ(0, y) dy = (1 − 1/ψ(R))/σ: the solution at the centre of −Δw + σw = 1, w = 0 on the sphere;
    and in 3-D the survival weight is z/sinh z."""
    sigma, R = 7.0, 0.8
    r = torch.linspace(1e-6, R - 1e-9, 200001, dtype=f64)
    ratio, survival = screened_weights(r, torch.full_like(r, R), dim, sigma)
    sphere = 2 * math.pi ** (dim / 2) / math.gamma(dim / 2)
    laplace = torch.log(R / r) / (2 * math.pi) if dim == 2 else (r ** (2 - dim) - R ** (2 - dim)) / ((dim - 2) * sphere)
    integral = torch.trapezoid(ratio * laplace * sphere * r ** (dim - 1), r)
    assert float(integral) == pytest.approx((1 - float(survival[0])) / sigma, rel=1e-4)
    if dim == 3:
        z = math.sqrt(sigma) * R
        assert float(survival[0]) == pytest.approx(z / math.sinh(z), rel=1e-12)


@pytest.mark.parametrize("name", ["poisson-ball-10d", "laplace-lshape", "poisson-lshape", "schrodinger-square"])
def test_domains_sample_inside_and_on_the_boundary(name):
    domain = get(name).domain
    g = torch.Generator().manual_seed(0)
    assert bool(domain.contains(domain.sample_interior(500, g)).all())
    assert float(domain.distance(domain.sample_boundary(500, g)).abs().max()) < 1e-12


def test_lshape_distance_is_exact_inside():
    domain = get("laplace-lshape").domain
    x = torch.tensor([[-0.5, -0.5], [0.5, 0.5], [-0.9, 0.0], [0.1, 0.05], [-0.05, -0.5]], dtype=f64)
    torch.testing.assert_close(domain.distance(x), -torch.tensor([0.5, 0.5, 0.1, 0.05, 0.05], dtype=f64))


def test_autograd_laplacian_is_exact_and_explicit_sources_match_the_exact_solutions():
    from pdekit.problems.autodiff import gradient_and_laplacian

    x = _points("poisson-ball-10d", 8).requires_grad_(True)
    u = (x**3).sum(-1) * torch.exp(x[:, 0])
    grad, laplacian = gradient_and_laplacian(u, x)
    e = torch.exp(x[:, 0])
    expected = 6 * x.sum(-1) * e + 2 * 3 * x[:, 0] ** 2 * e + (x**3).sum(-1) * e  # Δ(s e) = e Δs + 2 ∂₀s ∂₀e + s ∂₀²e
    torch.testing.assert_close(laplacian, expected)
    for name in ("laplace-ball-5d", "exit-time-ball-10d", "laplace-lshape", "poisson-ball-2d", "poisson-ball-10d"):
        problem = get(name)
        y = _points(name, 6)
        grad_u, lap_u = problem.derivatives_of_solution(y)
        residual = problem.residual(problem.solution(y), lap_u, problem.source(y), grad_u, y)
        assert float(residual.abs().max()) < 1e-10


def test_bad_label_requests_are_one_line_errors():
    problem = get("poisson-ball-2d")
    with pytest.raises(ConfigError, match="is not inside the domain"):
        labels(problem, torch.tensor([[0.0, 0.0], [2.0, 0.0]], dtype=f64))
    with pytest.raises(ConfigError, match="paths must be an integer >= 2"):
        labels(problem, torch.zeros(1, 2, dtype=f64), paths=-5)
    with pytest.raises(ConfigError, match="unknown sampler"):
        labels(problem, torch.zeros(1, 2, dtype=f64), "metropolis")


def test_datagen_feynman_kac_writes_a_resumable_self_describing_file(tmp_path, capsys):
    from datagen.cli import main
    from pdekit.files.dataset import open_dataset

    out = tmp_path / "labels.h5"
    args = ["feynman-kac", "--problem", "exit-time-ball-5d", "--n", "6", "--paths", "200", "--batch", "4",
            "--out", out, "--quiet"]
    assert main(args) == 0
    with open_dataset(out) as h5:
        assert h5.attrs["problem"] == "exit-time-ball-5d" and h5.attrs["sampler"] == "walk-on-spheres"
        points, value, stderr, exact = (h5[k][()] for k in ("points", "value", "stderr", "exact"))
    np.testing.assert_allclose(exact, (1 - (points**2).sum(1)) / 5)
    assert np.all(np.abs(value - exact) < 4 * stderr)
    shard = tmp_path / "shard.h5"  # a shard holds the same labels as the full run
    assert main([*args[:-3], "--shard", "1/2", "--out", shard, "--quiet"]) == 0
    with h5py.File(shard) as h5:
        np.testing.assert_array_equal(h5["value"][()], value[4:])
    assert main(["feynman-kac", "--problem", "poisson-9d", "--n", "3", "--out", tmp_path / "x.h5"]) == 2
    assert "unknown problem 'poisson-9d'" in capsys.readouterr().err
    assert not (tmp_path / "x.h5").exists()


@pytest.fixture(scope="module")
def square_labels(tmp_path_factory):
    from datagen.feynman_kac import labels as fk_labels

    problem = get("poisson-square-sin4")
    points = problem.domain.sample_interior(64, torch.Generator().manual_seed(1))
    out = fk_labels(problem, points, "walk-on-spheres", 300, seeds=range(64))
    path = tmp_path_factory.mktemp("fk") / "square.h5"
    from pdekit.files.dataset import write_labels

    n = len(points)
    write_labels(path, {"points": points.numpy(), "value": out["value"], "stderr": out["stderr"],
                        "steps": out["steps"], "seconds": out["seconds"], "exact": problem.solution(points).numpy(),
                        "level": np.array(["poisson-square-sin4"] * n), "seed": np.arange(n),
                        "sample_index": np.arange(n)},
                 config={"problem": problem.name, "sampler": "walk-on-spheres", "paths": 300},
                 generator_version="feynman-kac-1")
    return path


def _train(labels_path, label_weight, steps):
    import lightning as L

    from models.fkpinn import FKPINN
    from pdekit.learning.datamodules import ProblemDataModule

    torch.manual_seed(0)
    data = ProblemDataModule("poisson-square-sin4", steps_per_epoch=steps, labels=str(labels_path))
    model = FKPINN(width=32, depth=3, collocation=256, boundary_points=128, label_weight=label_weight, lr=3e-3,
                   test_points=1000, dim=2, in_channels=2)
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, datamodule=data)
    return model


def test_short_fk_pinn_training_beats_the_same_pinn_without_labels(square_labels):
    """u = sin(4πx) sin(4πy): 300 Adam steps; the labelled run ends clearly closer to u."""
    plain = _train(square_labels, 0.0, 300).relative_error()
    labelled = _train(square_labels, 100.0, 300).relative_error()
    assert labelled < 0.7 * plain, (labelled, plain)


def test_fk_pinn_config_errors_are_one_line(square_labels, tmp_path):
    from models.fkpinn import FKPINN
    from pdekit.learning.datamodules import ProblemDataModule

    with pytest.raises(ConfigError, match="labels problem 'poisson-square-sin4', not 'poisson-ball-2d'"):
        ProblemDataModule("poisson-ball-2d", labels=str(square_labels))
    with pytest.raises(ConfigError, match="no such file"):
        ProblemDataModule("poisson-ball-2d", labels=str(tmp_path / "missing.h5"))
    with pytest.raises(ConfigError, match="label_weight must be a finite number >= 0"):
        FKPINN(label_weight=-1.0)


def test_reference_finite_differences_converge_on_a_manufactured_drift_problem():
    """The committor's reference solver on a problem with the same domain, drift and reflecting faces
    and a known solution (zero normal derivative on the box): the error falls with h."""
    from pdekit.problems.registry import COMMITTOR_BETA, Problem, _double_well_drift
    from pdekit.problems.reference import GridInterpolant, solve_box_with_holes

    committor = get("committor-double-well-2d")
    exact = lambda x: torch.cos(math.pi * (x[:, 0] + 1.8) / 3.6) * torch.cos(math.pi * (x[:, 1] + 1.2) / 2.4) + 1  # noqa: E731
    problem = Problem("manufactured-drift", 2, committor.bounds, exact, "test", diffusion=1 / COMMITTOR_BETA,
                      drift=_double_well_drift, domain=committor.domain)
    x = committor.domain.sample_interior(400, torch.Generator().manual_seed(0))
    errors = []
    for h in (0.06, 0.03):
        u = GridInterpolant(*solve_box_with_holes(problem, h))(x)
        errors.append(float((u - exact(x)).abs().max()))
    assert errors[1] < 0.02 and errors[1] < errors[0] / 1.8, errors


def test_committor_labels_match_the_reference_and_respect_the_symmetry():
    problem = get("committor-double-well-2d")
    x = torch.tensor([[0.0, 0.0], [-0.5, 0.3], [0.5, -0.2], [1.5, 1.0]], dtype=f64)
    reference = problem.solution(x)
    assert float(reference[0]) == pytest.approx(0.5, abs=1e-6)  # x ↦ −x swaps A and B
    out = labels(problem, x, "euler-maruyama", 400, seeds=range(4), dt=1e-3)
    assert np.all(np.abs(out["value"] - reference.numpy()) < 4 * out["stderr"] + 1e-3)
    with pytest.raises(ConfigError, match="walk-on-spheres cannot follow the drift"):
        labels(problem, x, "walk-on-spheres", 10)


def test_pdekit_problems_lists_every_problem(capsys):
    import pdekit.learning.cli
    from pdekit.problems import PROBLEMS

    assert pdekit.learning.cli.main(["problems"]) == 0
    text = capsys.readouterr().out
    assert all(name in text for name in PROBLEMS)


def test_trained_fk_pinn_checkpoint_evaluates_against_the_exact_solution(square_labels, tmp_path):
    """pdekit evaluate on an FK-PINN checkpoint: no --data, the error at the held-out points the
    task logs, the residual by autograd, and the figure; --data is refused in one line."""
    import pdekit.learning.cli

    model = _train(square_labels, 100.0, 20)
    ckpt = tmp_path / "fk.ckpt"
    model.trainer.save_checkpoint(ckpt)
    assert pdekit.learning.cli.main(["evaluate", "--ckpt", ckpt, "--out", tmp_path / "eval"]) == 0
    import json

    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["problem"] == "poisson-square-sin4" and metrics["residual_rms"] > 0
    assert metrics["rel_l2"] == pytest.approx(model.relative_error(4096), rel=1e-9)
    assert (tmp_path / "eval" / "solution.png").stat().st_size > 0
    assert pdekit.learning.cli.main(["evaluate", "--ckpt", ckpt, "--data", square_labels]) == 2
