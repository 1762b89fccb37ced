"""Old checkpoints, configs and imports keep working after pdekit's modules moved (pdekit/_moved.py)."""
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

OLD_CHECKPOINT = Path(__file__).resolve().parents[1] / "data" / "fno_before_layers.ckpt"


def test_the_old_checkpoint_names_the_old_path():
    record = torch.load(OLD_CHECKPOINT, weights_only=True)["pdekit"]
    assert record["task"] == "pdekit.tasks.OperatorLearning"


def test_old_module_paths_import_the_moved_modules_with_a_warning():
    code = ("import warnings; warnings.simplefilter('always')\n"
            "with warnings.catch_warnings(record=True) as caught:\n"
            "    import pdekit.tasks as old\n"
            "import pdekit.learning.tasks as new\n"
            "assert old is new, (old, new)\n"
            "assert new.__spec__.name == 'pdekit.learning.tasks'\n"
            "print([str(w.message) for w in caught])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "pdekit.tasks moved to pdekit.learning.tasks" in out.stdout


def test_moved_class_paths_resolve_through_the_registry():
    import lightning as L

    from pdekit.learning.registry import load_class
    from pdekit.learning.tasks import OperatorLearning

    with pytest.warns(FutureWarning, match="pdekit.learning.tasks.OperatorLearning"):
        assert load_class("pdekit.tasks.OperatorLearning", L.LightningModule, "task") is OperatorLearning
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new path resolves without a warning
        assert load_class("pdekit.learning.tasks.OperatorLearning", L.LightningModule, "task") is OperatorLearning


def test_a_checkpoint_written_before_the_move_loads_predicts_and_evaluates(tmp_path, run_cli):
    from pdekit.learning.checkpoints import load_task

    data = tmp_path / "p.h5"
    assert run_cli(["datagen", "poisson", "--level", "easy", "--n", "4", "--resolution", "17", "--seed", "0",
                    "--out", str(data)]).returncode == 0
    with pytest.warns(FutureWarning, match="moved to pdekit.learning.tasks.OperatorLearning"):
        task, info = load_task(OLD_CHECKPOINT)
    assert type(task).__module__ == "pdekit.learning.tasks"
    assert task.hparams.network_kwargs["n_modes"] == [2, 2]
    out = run_cli(["pdekit", "evaluate", "--ckpt", str(OLD_CHECKPOINT), "--data", str(data),
                   "--out", str(tmp_path / "eval")])
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "eval" / "metrics.json").exists()


def test_a_config_naming_old_class_paths_trains(tmp_path, run_cli):
    data = tmp_path / "p.h5"
    assert run_cli(["datagen", "poisson", "--level", "easy", "--n", "4", "--resolution", "17", "--seed", "0",
                    "--out", str(data)]).returncode == 0
    config = tmp_path / "old.yaml"
    config.write_text(f"""
trainer: {{max_steps: 1, logger: false, enable_progress_bar: false, default_root_dir: {tmp_path / 'run'}}}
model:
  class_path: pdekit.tasks.OperatorLearning
  init_args: {{network_kwargs: {{n_modes: [2, 2], hidden_channels: 2, n_layers: 1}}}}
data:
  class_path: pdekit.datamodule.FieldDataModule
  init_args: {{files: [{data}], batch_size: 2}}
""")
    out = run_cli(["pdekit", "fit", "--config", str(config)])
    assert out.returncode == 0, out.stderr
    assert "pdekit.tasks.OperatorLearning moved to pdekit.learning.tasks.OperatorLearning" in out.stderr
    assert list((tmp_path / "run").rglob("*.ckpt"))
