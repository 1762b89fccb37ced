"""The one Task base: optimizer and schedule chosen in YAML (today's choices the default), refused in
one line when wrong; declared data checks."""
import pytest
import torch

from pdekit.errors import ConfigError
from pdekit.learning.tasks import OperatorLearning

NET = {"n_modes": [2, 2], "hidden_channels": 2, "n_layers": 1}


class _Trainer:
    max_epochs = 7
    estimated_stepping_batches = 40


def _configured(**kwargs):
    task = OperatorLearning(network_kwargs=NET, **kwargs)
    task.trainer = _Trainer()  # what configure_optimizers reads of the trainer: the run's length
    return task.configure_optimizers()


def test_without_a_choice_the_family_default_is_kept():
    chosen = _configured(lr=3e-3, weight_decay=1e-5)
    optimizer, scheduler = chosen["optimizer"], chosen["lr_scheduler"]["scheduler"]
    assert type(optimizer) is torch.optim.AdamW
    assert optimizer.defaults["lr"] == 3e-3 and optimizer.defaults["weight_decay"] == 1e-5
    assert type(scheduler) is torch.optim.lr_scheduler.CosineAnnealingLR and scheduler.T_max == 7


def test_an_optimizer_and_schedule_named_in_yaml_are_built():
    chosen = _configured(optimizer={"name": "SGD", "lr": 0.05, "momentum": 0.9},
                         lr_scheduler={"name": "torch.optim.lr_scheduler.StepLR", "step_size": 3, "gamma": 0.5,
                                       "interval": "step"})
    optimizer, entry = chosen["optimizer"], chosen["lr_scheduler"]
    assert type(optimizer) is torch.optim.SGD and optimizer.defaults["momentum"] == 0.9
    assert optimizer.defaults["lr"] == 0.05  # the optimizer's own lr wins over the task's
    assert type(entry["scheduler"]) is torch.optim.lr_scheduler.StepLR and entry["interval"] == "step"
    cosine = _configured(lr_scheduler={"name": "CosineAnnealingLR", "interval": "step"})
    assert cosine["lr_scheduler"]["scheduler"].T_max == 40  # the run's length in the schedule's unit
    assert isinstance(_configured(lr_scheduler="none"), torch.optim.AdamW)


@pytest.mark.parametrize("kwargs,message", [
    ({"optimizer": {"name": "os.system"}}, "is not a class of torch.optim"),
    ({"optimizer": {"name": "Adamm"}}, "is not a class of torch.optim"),
    ({"optimizer": {"lr": 0.1}}, "name must be a class name of torch.optim"),
    ({"optimizer": {"name": "SGD", "momentun": 0.9}}, "SGD takes no argument(s) ['momentun']"),
    ({"optimizer": "Adam"}, "must be a mapping"),
    ({"lr_scheduler": {"name": "StepLR", "step_size": 2, "interval": "week"}}, "interval must be 'epoch' or 'step'"),
    ({"lr_scheduler": {"name": "Optimizer"}}, "is not a class of torch.optim.lr_scheduler"),
    ({"lr_scheduler": {"name": "StepLR", "every": 2}}, "StepLR takes no argument(s) ['every']"),
])
def test_bad_choices_are_refused_when_the_task_is_built(kwargs, message):
    with pytest.raises(ConfigError) as error:
        OperatorLearning(network_kwargs=NET, **kwargs)
    assert message in str(error.value)


def test_the_yaml_choice_trains_through_pdekit_fit(tmp_path, poisson_file, run_cli):
    config = tmp_path / "sgd.yaml"
    config.write_text(f"""
trainer: {{max_steps: 3, logger: false, enable_progress_bar: false, default_root_dir: {tmp_path / 'run'}}}
model:
  class_path: pdekit.learning.tasks.OperatorLearning
  init_args:
    network_kwargs: {{n_modes: [2, 2], hidden_channels: 2, n_layers: 1}}
    optimizer: {{name: SGD, lr: 0.01, momentum: 0.9}}
    lr_scheduler: {{name: StepLR, step_size: 1, gamma: 0.5, interval: step}}
data:
  class_path: pdekit.learning.datamodules.FieldDataModule
  init_args: {{files: [{poisson_file}], batch_size: 4}}
""")
    out = run_cli(["pdekit", "fit", "--config", str(config)])
    assert out.returncode == 0, out.stderr
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    state = checkpoint["optimizer_states"][0]
    assert "momentum_buffer" in next(iter(state["state"].values()))  # SGD with momentum trained it
    assert state["param_groups"][0]["lr"] == pytest.approx(0.01 * 0.5**3)  # three StepLR steps
    bad = run_cli(["pdekit", "fit", "--config", str(config), "--model.init_args.optimizer", "{name: Nope}",
                   "--trainer.default_root_dir", str(tmp_path / "bad")])
    assert bad.returncode == 2 and "is not a class of torch.optim" in bad.stderr
    assert not (tmp_path / "bad").exists()
