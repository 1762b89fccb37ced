"""Figures users look at: panels that share a colour scale where they should, errors on a scale
centred at 0, labelled 3-D slices, samples from every file, a channel figure that fills its canvas."""
import shutil

import numpy as np
import pytest
from matplotlib.image import imread

from datagen.plot import plot
from pdekit.learning.evaluation.fields import evaluate, sample_panels


def test_truth_and_prediction_share_a_scale_and_the_error_is_centred():
    rng = np.random.default_rng(0)
    truth, prediction = rng.normal(size=(8, 8)), 3 + rng.normal(size=(8, 8))
    mask = np.ones((8, 8), bool)
    mask[0, 0] = False
    t, p, e = sample_panels("s", truth, prediction, mask)
    assert (t["vmin"], t["vmax"]) == (p["vmin"], p["vmax"])
    assert t["vmin"] == pytest.approx(np.min(truth[mask])) and t["vmax"] == pytest.approx(np.max(prediction[mask]))
    assert e["vmin"] == -e["vmax"] and e["cmap"] == "RdBu_r" and np.isnan(e["data"][0, 0])
    assert e["vmax"] == pytest.approx(np.max(np.abs(prediction - truth)[mask]))


def test_three_d_panels_name_their_slice():
    field = np.zeros((6, 6, 10))
    panels = sample_panels("s", field, field, np.ones_like(field))
    assert all("slice z index 5 of 10" in p["title"] for p in panels) and panels[0]["data"].shape == (6, 6)
    assert panels[2]["vmax"] > 0  # a zero error still has a valid, centred scale


def test_evaluate_figure_shows_every_file(tmp_path, fno_checkpoint, poisson_file):
    files = [shutil.copy(poisson_file, tmp_path / name) for name in ("first.h5", "second.h5", "third.h5")]
    metrics = evaluate(fno_checkpoint, files, tmp_path / "ev", figures=4)
    stems = {label.split(":")[0] for label in metrics["figure_samples"]}
    assert stems == {"first", "second", "third"}
    assert (tmp_path / "ev" / "samples.png").read_bytes()[:4] == b"\x89PNG"


def test_channel_snapshot_figure_fills_its_canvas(tmp_path, channel_file):
    png = plot(channel_file, tmp_path / "channel.png", samples=1, animate=False)[0]
    image = imread(png)
    ink = (image[..., :3] < 0.9).any(axis=2)
    columns = np.flatnonzero(ink.any(axis=0))
    assert columns[0] < 0.05 * image.shape[1]  # no blank band on the left
    assert len(columns) > 0.8 * image.shape[1]
