"""`datagen export --format the-well`: The Well's own reader (`the_well.data.WellDataset`) reads a
pdekit time-series dataset unchanged, and every value lands where the field mapping says."""
import h5py
import numpy as np
from the_well.data import WellDataset

import datagen.cli


def test_burgers_reads_back_through_the_well(tmp_path, burgers_file):
    assert datagen.cli.main(["export", str(burgers_file), "--format", "the-well", "--out", str(tmp_path / "well")]) == 0
    ds = WellDataset(path=str(tmp_path / "well"), n_steps_input=2, n_steps_output=3, use_normalization=False)
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
    with h5py.File(tmp_path / "well" / f"{burgers_file.stem}.h5") as h5:
        assert h5.attrs["viscosity"] == viscosity[0] and "viscosity" in list(h5.attrs["simulation_parameters"])
        assert np.allclose(h5["dimensions/x"][()], 2 * np.pi * np.arange(u.shape[-1]) / u.shape[-1])


def test_channel_vectors_and_mask_map_to_t1_and_constant_t0(tmp_path, channel_file):
    assert datagen.cli.main(["export", str(channel_file), "--format", "the-well", "--out", str(tmp_path / "w")]) == 0
    ds = WellDataset(path=str(tmp_path / "w"), n_steps_input=1, n_steps_output=1, use_normalization=False)
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
