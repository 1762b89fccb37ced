"""The console scripts are installed and work; `pdekit --help` and `pdekit predict` as documented."""
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import yaml

import pdekit.learning.cli

BIN = Path(sys.executable).parent


def run(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_pdekit_check_solves_known_problem():
    exe = shutil.which("pdekit", path=str(BIN)) or "pdekit"
    out = run(exe, "check", "--resolution", "32")
    assert out.returncode == 0, out.stderr
    assert "max error" in out.stdout


def test_pdekit_info_and_datagen_help():
    assert "pdekit" in run(str(BIN / "pdekit"), "info").stdout
    assert run(str(BIN / "datagen"), "--help").returncode == 0


def test_pdekit_help_lists_every_command(capsys):
    try:
        pdekit.learning.cli.main(["--help"])
    except SystemExit as done:
        assert done.code == 0
    text = capsys.readouterr().out
    for command in ("fit", "validate", "test", "predict", "evaluate", "check", "info", "problems"):
        assert f"\n    {command} " in text, command


def test_every_datagen_option_has_help():
    import argparse

    from datagen.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    missing = [f"{name} {action.option_strings or action.dest}" for name, sub in commands.items()
               for action in sub._actions if not action.help]
    assert missing == []
    assert "--batch" not in commands["poisson"].format_help()  # only options it has


def test_predict_writes_an_hdf5_file_in_the_dataset_layout(tmp_path, monkeypatch, poisson_file, capsys):
    cfg = {"seed_everything": 0,
           "trainer": {"max_epochs": 1, "accelerator": "cpu", "logger": False, "enable_progress_bar": False,
                       "default_root_dir": str(tmp_path), "enable_model_summary": False,
                       "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                                      "init_args": {"dirpath": str(tmp_path / "ckpt"), "save_last": True}}]},
           "model": {"class_path": "pdekit.learning.tasks.OperatorLearning",
                     "init_args": {"network_kwargs": {"n_modes": [4, 4], "hidden_channels": 8, "n_layers": 2}}},
           "data": {"class_path": "pdekit.learning.datamodules.FieldDataModule",
                    "init_args": {"files": [str(poisson_file)], "batch_size": 8, "split": [0.5, 0.25, 0.25]}}}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    monkeypatch.setattr("sys.argv", ["pdekit"])
    assert pdekit.learning.cli.main(["fit", "--config", str(tmp_path / "cfg.yaml")]) == 0
    out = tmp_path / "pred.h5"
    assert pdekit.learning.cli.main(["predict", "--config", str(tmp_path / "cfg.yaml"), "--ckpt_path",
                            str(tmp_path / "ckpt" / "last.ckpt"), "--predictions", str(out)]) == 0
    assert f"wrote {out} (6 predictions)" in capsys.readouterr().out
    with h5py.File(out) as h5, h5py.File(poisson_file) as src:
        assert h5.attrs["kind"] == "predictions" and h5.attrs["pde"] == "poisson"
        assert h5["u"].shape == (6, 16, 16) and np.isfinite(h5["u"][()]).all()
        index = h5["source_index"][()]
        assert np.array_equal(h5["mask"][()], src["mask"][()][index])
        assert list(h5.attrs["source_files"]) == [str(poisson_file)]
