"""Source families (pdekit.sources) have the statistics their documentation states, and the data
module draws them on the fly for label-free training only."""
import math

import numpy as np
import pytest
import torch

from pdekit.sources import GAUSSIAN_COUNT, GAUSSIAN_WIDTH, PIECEWISE_CELLS, SMOOTH_LENGTH, SOURCE_FAMILIES, draw_source


def unit_grid(n=64, dim=2):
    axis = (np.arange(n) + 0.5) / n
    return tuple(np.meshgrid(*[axis] * dim, indexing="ij"))


def draws(family, count=40, n=64):
    coords = unit_grid(n)
    return [draw_source(family, np.random.default_rng([7, i]), coords) for i in range(count)]


@pytest.mark.parametrize("family", SOURCE_FAMILIES)
def test_every_family_is_deterministic_and_scaled(family):
    first, again = draws(family, 5), draws(family, 5)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    for f in first:
        assert f.shape == (64, 64) and np.isfinite(f).all()
        assert np.abs(f).max() == pytest.approx(1.0, abs=1e-9)
    if family == "constant":
        assert all((f == 1).all() for f in first)
    else:  # the draws differ
        assert not np.allclose(first[0], first[1])


def test_smooth_field_has_zero_mean_and_the_stated_correlation_length():
    """Covariance exp(−r²/(4ℓ²)): the correlation at lag ℓ is exp(−1/4) = 0.78 (periodic field,
    so lags wrap); measured over 40 draws: 0.78 ± 0.01."""
    fields = draws("smooth")
    assert all(abs(f.mean()) < 1e-12 for f in fields)
    lag = round(SMOOTH_LENGTH * 64)  # 6 nodes = 0.094 of the box
    correlation = np.mean([np.mean(f * np.roll(f, lag, axis=0)) / np.mean(f * f) for f in fields])
    assert correlation == pytest.approx(math.exp(-((lag / 64) ** 2) / (4 * SMOOTH_LENGTH**2)), abs=0.05)


def test_gaussians_are_one_to_four_bumps_of_the_stated_width():
    for f in draws("gaussians"):
        a = np.abs(f)
        interior = a[1:-1, 1:-1]
        neighbours = np.stack([a[:-2, 1:-1], a[2:, 1:-1], a[1:-1, :-2], a[1:-1, 2:]])
        peaks = int(((interior > neighbours.max(0)) & (interior > 0.3)).sum())
        assert GAUSSIAN_COUNT[0] <= peaks <= GAUSSIAN_COUNT[1]
    # a single bump: the area above half its maximum is π (2 ln 2) σ²
    rng = next(np.random.default_rng([3, i]) for i in range(1000)
               if np.random.default_rng([3, i]).integers(GAUSSIAN_COUNT[0], GAUSSIAN_COUNT[1] + 1) == 1)
    f = draw_source("gaussians", rng, unit_grid(256))
    area = (np.abs(f) > 0.5).mean()
    assert area == pytest.approx(math.pi * 2 * math.log(2) * GAUSSIAN_WIDTH**2, rel=0.1)


def test_piecewise_sources_take_two_to_six_values():
    for f in draws("piecewise"):
        values = np.unique(f)
        assert PIECEWISE_CELLS[0] - 1 <= len(values) <= PIECEWISE_CELLS[1]  # a cell may hold no node
        assert values.min() >= -1 and values.max() <= 1


def test_unknown_family_is_refused():
    with pytest.raises(ValueError, match="unknown source family 'delta'"):
        draw_source("delta", np.random.default_rng(0), unit_grid(8))


@pytest.fixture(scope="module")
def medium_file(tmp_path_factory):
    """Six medium 2-D samples at 16² (obstacles: some inactive nodes)."""
    from datagen import runner
    from datagen.generators import config_for

    path = tmp_path_factory.mktemp("sources") / "medium16.h5"
    runner.run(config_for("poisson", "medium", 6, 16, dim=2), path, progress=False)
    return path


def test_data_module_draws_sources_per_sample_and_epoch(medium_file):
    from pdekit.learning.datamodules import FieldDataModule

    data = FieldDataModule([str(medium_file)], split=[1.0, 0.0, 0.0], batch_size=6, system=True,
                           sources=["constant", "gaussians", "piecewise"])
    data.setup()
    batch = next(iter(data.train_dataloader()))
    first, again = data._with_drawn_sources(batch, 0), data._with_drawn_sources(batch, 0)
    later = data._with_drawn_sources(batch, 1)
    assert torch.equal(first["f"], again["f"]) and not torch.equal(first["f"], later["f"])
    assert not torch.equal(first["f"], batch["f"])
    assert (first["f"][~batch["mask"]] == 0).all()  # nothing off the active nodes
    assert torch.equal(first["x"][:, data.inputs.index("f")], first["f"].float())
    assert torch.isnan(first["y"]).all()  # the new sources' solutions are unknown
    assert torch.equal(first["a"], batch["a"]) and torch.equal(first["bc_type"], batch["bc_type"])
    constant = [f[m] for f, m in zip(first["f"], batch["mask"]) if (f[m] == 1).all()]
    assert len(constant) < 6  # several families drawn


def test_sources_are_refused_for_labelled_training_and_bad_settings(medium_file):
    from models.npsolver import NPSolver
    from pdekit.errors import ConfigError
    from pdekit.learning.datamodules import FieldDataModule

    with pytest.raises(ConfigError, match="must be a list of fourier, constant"):
        FieldDataModule([str(medium_file)], system=True, sources=["delta"])
    with pytest.raises(ConfigError, match="needs Poisson files and data.init_args.system: true"):
        FieldDataModule([str(medium_file)], sources=["constant"])
    data = FieldDataModule([str(medium_file)], system=True, sources=["constant"])
    small = {"layers": 1, "width": 8, "heads": 2, "slices": [4, 2]}
    NPSolver(network_kwargs=small, loss="pcg").check_data(data)  # label-free: accepted
    with pytest.raises(ConfigError, match="learns from labels"):
        NPSolver(network_kwargs=small, loss="supervised").check_data(data)
