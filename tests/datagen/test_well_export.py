"""`datagen export --format the-well`: The Well's own reader (`the_well.data.WellDataset`) reads a
pdekit time-series dataset unchanged, and every value lands where the field mapping says."""
import h5py
import numpy as np
import pytest
from the_well.data import WellDataset

import datagen.cli


def test_burgers_reads_back_through_the_well(tmp_path, burgers_file):
    assert datagen.cli.main(["export", str(burgers_file), "--format", "the-well", "--out", str(tmp_path / "well"),
                             "--split", "1,0,0"]) == 0
    ds = WellDataset(path=str(tmp_path / "well"), well_split_name="train", n_steps_input=2, n_steps_output=3,
                     use_normalization=False)
    with h5py.File(burgers_file) as h5:
        u, t, viscosity = h5["u"][()], h5["t"][()], h5["viscosity"][()]
    samples, steps = u.shape[:2]
    windows = steps - 5 + 1
    assert len(ds) == samples * windows
    assert ds.metadata.field_names[0] == ["u"] and ds.metadata.boundary_condition_types == ["PERIODIC"]
    item = ds[windows + 7]  # trajectory 1, first input step 7
    assert np.array_equal(item["input_fields"][..., 0].numpy(), u[1, 7:9])
    assert np.array_equal(item["output_fields"][..., 0].numpy(), u[1, 9:12])
    assert np.allclose(item["input_time_grid"].numpy(), t[7:9] - t[7])  # WellDataset shifts time to 0
    with h5py.File(tmp_path / "well" / "data" / "train" / f"{burgers_file.stem}.h5") as h5:
        assert h5.attrs["viscosity"] == viscosity[0] and "viscosity" in list(h5.attrs["simulation_parameters"])
        # physical parameters are model inputs; diagnostics are attributes only
        assert list(h5["scalars"].attrs["field_names"]) == ["viscosity"] and "seed" not in h5["scalars"]
        assert "pdekit_seed" in h5.attrs
        assert np.allclose(h5["dimensions/x"][()], 2 * np.pi * np.arange(u.shape[-1]) / u.shape[-1])


def test_channel_vectors_and_mask_map_to_t1_and_constant_t0(tmp_path, channel_file):
    assert datagen.cli.main(["export", str(channel_file), "--format", "the-well", "--out", str(tmp_path / "w")]) == 0
    ds = WellDataset(path=str(tmp_path / "w"), well_split_name="train", n_steps_input=1, n_steps_output=1,
                     use_normalization=False)
    with h5py.File(channel_file) as h5:
        velocity, pressure, mask = h5["velocity"][()], h5["pressure"][()], h5["mask"][()]
    assert ds.metadata.field_names[0] == ["pressure"] and ds.metadata.field_names[1] == ["velocity_x", "velocity_y"]
    assert sorted(ds.metadata.boundary_condition_types) == ["OPEN", "WALL"]
    item = ds[4]
    x = item["input_fields"][0].numpy()  # (nx, ny, pressure + 2 velocity components)
    assert np.array_equal(x[..., 0], pressure[0, 4])
    assert np.array_equal(x[..., 1], velocity[0, 4, 0]) and np.array_equal(x[..., 2], velocity[0, 4, 1])
    assert np.array_equal(item["constant_fields"][..., 0].numpy(), mask[0].astype(np.float32))


def test_poisson_files_are_refused(tmp_path, poisson_file, capsys):
    assert datagen.cli.main(["export", str(poisson_file), "--format", "the-well", "--out", str(tmp_path / "w")]) == 2
    assert "The Well holds time series" in capsys.readouterr().err and not (tmp_path / "w").exists()


def test_splits_by_trajectory_and_normalisation_statistics(tmp_path, burgers_file):
    """Two trajectories split 1/1 into train and test; stats.yaml holds the training trajectory's
    moments, and The Well's z-score normalisation reads them."""
    import yaml
    from the_well.data.normalization import ZScoreNormalization

    out = tmp_path / "well"
    assert datagen.cli.main(["export", str(burgers_file), "--format", "the-well", "--out", str(out),
                             "--split", "0.5,0,0.5", "--seed", "3"]) == 0
    with h5py.File(out / "data/train" / f"{burgers_file.stem}.h5") as h5:
        train = int(h5.attrs["pdekit_trajectories"][0])
    with h5py.File(out / "data/test" / f"{burgers_file.stem}.h5") as h5:
        assert list(h5.attrs["pdekit_trajectories"]) == [1 - train]
    assert not (out / "data/valid").exists()
    with h5py.File(burgers_file) as h5:
        u = h5["u"][train].astype(np.float64)
    stats = yaml.safe_load((out / "stats.yaml").read_text())
    assert stats["mean"]["u"] == pytest.approx(u.mean(), rel=1e-5)
    assert stats["std"]["u"] == pytest.approx(u.std(), rel=1e-5)
    assert stats["rms"]["u"] == pytest.approx(np.sqrt((u**2).mean()), rel=1e-5)
    assert stats["std_delta"]["u"] == pytest.approx(np.diff(u, axis=0).std(), rel=1e-4)
    ds = WellDataset(path=str(out), well_split_name="train", n_steps_input=1, n_steps_output=1,
                     use_normalization=True, normalization_type=ZScoreNormalization)
    item = ds[0]
    assert np.allclose(item["input_fields"][0, ..., 0].numpy(), (u[0] - u.mean()) / u.std(), atol=1e-4)


def test_existing_outputs_are_never_replaced_without_overwrite(tmp_path, burgers_file):
    out = tmp_path / "well"
    args = ["export", str(burgers_file), "--format", "the-well", "--out", str(out), "--split", "1,0,0"]
    assert datagen.cli.main(args) == 0
    stats = (out / "stats.yaml").read_bytes()
    assert datagen.cli.main(args) == 2  # refused: it would replace its own earlier output
    assert datagen.cli.main([*args, "--overwrite"]) == 0 and (out / "stats.yaml").read_bytes() == stats
