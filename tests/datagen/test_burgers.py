"""1-D Burgers solver against the exact Cole–Hopf solution: accuracy and 4th order in time."""
import math

import pytest
import torch

from datagen.burgers import BlowUpError, cole_hopf, solve_burgers

MODES = [(1, 0.8, 0.3), (2, 0.5, 1.1), (3, 0.3, -0.4)]
NU, T, N = 0.1, 0.5, 128


def error(dt):
    x = 2 * math.pi * torch.arange(N, dtype=torch.float64) / N
    u0 = cole_hopf(x, 0.0, NU, MODES)[None]
    steps = round(T / dt)
    u = solve_burgers(u0, NU, dt, steps, save_every=steps)[0, -1]
    return float((u - cole_hopf(x, T, NU, MODES)).abs().max() / cole_hopf(x, T, NU, MODES).abs().max())


def test_matches_cole_hopf_with_fourth_order_in_time():
    coarse, fine = error(0.05), error(0.025)
    assert fine < 1e-6
    assert math.log2(coarse / fine) > 3.7  # integrating-factor RK4


def test_blow_up_is_a_clear_error():
    x = 2 * math.pi * torch.arange(64, dtype=torch.float64) / 64
    u0 = (5 * torch.sin(x))[None]
    with pytest.raises(BlowUpError, match="trajectory 0 blew up"):
        solve_burgers(u0, 1e-4, 2.0, 50)


def test_under_resolved_trajectories_are_flagged_and_reported(tmp_path, capsys):
    """Burgers `hard` (nu = 0.002) at 256 points has Gibbs oscillations at its shocks: the file
    flags it and datagen warns; `easy` at 256 points is resolved."""
    import h5py

    import datagen.cli

    for level, flagged in (("hard", True), ("easy", False)):
        out = tmp_path / f"{level}.h5"
        assert datagen.cli.main(["burgers", "--level", level, "--n", "2", "--resolution", "256", "--out", str(out),
                                 "--quiet"]) == 0
        err = capsys.readouterr().err
        with h5py.File(out) as h5:
            assert h5["under_resolved"][()].tolist() == [flagged, flagged]
            assert (h5["spectral_tail"][()] > 1e-4).all() if flagged else (h5["spectral_tail"][()] < 1e-10).all()
        assert ("under-resolved" in err) == flagged
