"""A checkpoint never decides what code runs: crafted records naming `torch.hub.load`,
`logging.basicConfig`, `os.system` or `builtins.eval` (as the task or as the network) are refused
by every entry point that opens a checkpoint, and leave no trace on disk."""
from __future__ import annotations


import pytest
import torch

import datagen.cli
import pdekit.learning.cli
from pdekit import DiffusionOperator, Grid
from pdekit.learning.checkpoints import CheckpointError, load_task
from pdekit.learning.registry import NotAllowedError, allowed


@pytest.fixture
def trap(tmp_path):
    """A hub folder whose code would write ``marker``, and a ``victim`` file a payload would truncate."""
    hub = tmp_path / "hub"
    hub.mkdir()
    marker, victim = tmp_path / "marker", tmp_path / "victim.txt"
    (hub / "hubconf.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
                                    f"def evil(**kw):\n    pathlib.Path({str(marker)!r}).write_text('ran')\n")
    victim.write_text("precious")
    return {"hub": str(hub), "marker": marker, "victim": victim}


def records(trap):
    hub = {"repo_or_dir": trap["hub"], "model": "evil", "source": "local"}
    log = {"filename": str(trap["victim"]), "filemode": "w"}
    touch = {"command": f"touch {trap['marker']}"}
    source = {"source": f"open({str(trap['marker'])!r}, 'w')"}
    as_network = lambda path, kwargs: ("pdekit.learning.tasks.OperatorLearning",  # noqa: E731
                                       {"network": path, "network_kwargs": kwargs})
    return {
        "task=torch.hub.load": ("torch.hub.load", hub),
        "network=torch.hub.load": as_network("torch.hub.load", hub),
        "task=logging.basicConfig": ("logging.basicConfig", log),
        "network=logging.basicConfig": as_network("logging.basicConfig", log),
        "task=os.system": ("os.system", touch),
        "network=os.system": as_network("os.system", touch),
        "task=builtins.eval": ("builtins.eval", source),
        "network=builtins.eval": as_network("builtins.eval", source),
    }


CASES = ["task=torch.hub.load", "network=torch.hub.load", "task=logging.basicConfig", "network=logging.basicConfig",
         "task=os.system", "network=os.system", "task=builtins.eval", "network=builtins.eval"]


def write_record(path, task, hparams):
    torch.save({"state_dict": {}, "pdekit": {"task": task, "hparams": hparams, "data": None},
                "hyper_parameters": {"_class_path": task, **hparams}}, path)
    return path


def untouched(trap):
    return not trap["marker"].exists() and trap["victim"].read_text() == "precious"


@pytest.mark.parametrize("case", CASES)
def test_crafted_record_is_refused_everywhere(tmp_path, trap, case, capsys, monkeypatch, poisson_file):
    task, hparams = records(trap)[case]
    ckpt = write_record(tmp_path / "evil.ckpt", task, hparams)
    named = hparams.get("network", task)
    # the Python entry point
    with pytest.raises(NotAllowedError, match=f"refusing to build (task|network) '{named}'"):
        from pdekit.learning.solvers import load

        load(ckpt, DiffusionOperator(Grid.box((16, 16))))
    assert untouched(trap)
    # pdekit evaluate
    monkeypatch.chdir(tmp_path)
    assert pdekit.learning.cli.main(["evaluate", "--ckpt", str(ckpt), "--data", str(poisson_file), "--out", "ev"]) == 2
    err = capsys.readouterr().err
    assert f"'{named}'" in err and "allow-list" in err and len(err.strip().splitlines()) == 1
    assert untouched(trap) and not (tmp_path / "ev").exists()
    # datagen's learned pressure preconditioner
    code = datagen.cli.main(["navier-stokes", "--family", "obstacles", "--level", "easy", "--n", "1",
                             "--resolution", "16", "--out", "flow.h5", "--quiet", "--pressure-precond", str(ckpt)])
    err = capsys.readouterr().err
    assert code == 2 and f"'{named}'" in err and len(err.strip().splitlines()) == 1
    assert untouched(trap) and not (tmp_path / "flow.h5").exists() and not (tmp_path / "flow.h5.parts").exists()


def test_resume_checkpoint_supplies_weights_not_hyperparameters(tmp_path, trap, capsys, monkeypatch, poisson_file):
    """LightningCLI would take `hyper_parameters` (class path included) from --ckpt_path: pdekit does not."""
    import yaml

    task, hparams = records(trap)["network=torch.hub.load"]
    ckpt = write_record(tmp_path / "evil.ckpt", task, hparams)
    cfg = {"trainer": {"max_epochs": 1, "logger": False, "enable_checkpointing": False,
                       "default_root_dir": str(tmp_path / "run")},
           "model": {"class_path": "pdekit.learning.tasks.OperatorLearning",
                     "init_args": {"network_kwargs": {"n_modes": [4, 4], "hidden_channels": 8, "n_layers": 2}}},
           "data": {"class_path": "pdekit.learning.datamodules.FieldDataModule",
                    "init_args": {"files": [str(poisson_file)], "batch_size": 8}}}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    monkeypatch.setattr("sys.argv", ["pdekit"])
    monkeypatch.chdir(tmp_path)
    assert pdekit.learning.cli.main(["fit", "--config", "cfg.yaml", "--ckpt_path", str(ckpt)]) == 2
    err = capsys.readouterr().err
    assert "do not fit the configured model" in err and "Traceback" not in err
    assert untouched(trap)


def test_pickled_checkpoint_refused_without_advice_to_unpickle(pickled_checkpoint):
    with pytest.raises(CheckpointError) as info:
        load_task(pickled_checkpoint)
    message = str(info.value)
    assert "argparse.Namespace" in message and "refuses to unpickle" in message
    assert "weights_only=False" not in message and "False" not in message and "\n" not in message


def test_non_plain_hyperparameters_are_refused(tmp_path):
    ckpt = write_record(tmp_path / "t.ckpt", "pdekit.learning.tasks.OperatorLearning", {"lr": torch.tensor(1e-3)})
    with pytest.raises(NotAllowedError, match="holds a Tensor"):
        load_task(ckpt)


def test_the_allow_list_is_extended_only_deliberately(tmp_path, monkeypatch, fno_checkpoint):
    from pdekit.learning.registry import allow
    from pdekit.learning.tasks import OperatorLearning, build_network

    assert "neuralop.models.FNO" in allowed() and "models.dcdm.DCDM" in allowed()
    monkeypatch.delenv("PDEKIT_ALLOW", raising=False)
    with pytest.raises(NotAllowedError, match="PDEKIT_ALLOW=torch.nn.Identity"):
        build_network("torch.nn.Identity", {}, 1, 1)
    monkeypatch.setenv("PDEKIT_ALLOW", "torch.nn.Identity")
    assert isinstance(build_network("torch.nn.Identity", {}, 1, 1), torch.nn.Identity)
    monkeypatch.delenv("PDEKIT_ALLOW")
    assert "torch.nn.Identity" not in allowed()
    monkeypatch.setattr("pdekit.learning.registry._added", set())  # allow() lasts for the process: undo after the test
    allow("torch.nn.Identity")
    assert isinstance(build_network("torch.nn.Identity", {}, 1, 1), torch.nn.Identity)
    # a checkpoint that names an allowed class still loads
    task, info = load_task(fno_checkpoint)
    assert isinstance(task, OperatorLearning) and info["task"] == "pdekit.learning.tasks.OperatorLearning"


def test_checkpoints_that_would_drive_memory_or_hold_nan_are_refused(tmp_path, fno_checkpoint):
    """Recorded sizes that do not fit the weights are refused before any allocation (the task is
    built on the meta device first); NaN weights and compressed archive entries are refused."""
    import zipfile

    from pdekit.learning.checkpoints import CheckpointError, load_task

    checkpoint = torch.load(fno_checkpoint, weights_only=True)
    huge = dict(checkpoint)
    huge["pdekit"] = dict(checkpoint["pdekit"])
    hparams = dict(huge["pdekit"]["hparams"])
    hparams["network_kwargs"] = dict(hparams["network_kwargs"], hidden_channels=100000)
    huge["pdekit"]["hparams"] = hparams
    torch.save(huge, tmp_path / "huge.ckpt")
    with pytest.raises(CheckpointError, match="stored, .* built"):
        load_task(tmp_path / "huge.ckpt")

    nan = dict(checkpoint, state_dict={k: v.clone() for k, v in checkpoint["state_dict"].items()})
    key = next(k for k, v in nan["state_dict"].items() if v.is_floating_point())
    nan["state_dict"][key].view(-1)[0] = float("nan")
    torch.save(nan, tmp_path / "nan.ckpt")
    with pytest.raises(CheckpointError, match="NaN or Inf"):
        load_task(tmp_path / "nan.ckpt")

    with zipfile.ZipFile(fno_checkpoint) as source, \
            zipfile.ZipFile(tmp_path / "deflated.ckpt", "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            target.writestr(item.filename, source.read(item.filename))
    with pytest.raises(CheckpointError, match="compressed"):
        load_task(tmp_path / "deflated.ckpt")


@pytest.mark.parametrize("tamper,message", [
    ("no-data", "records no training data"),
    ("nested", "nested more than 32 levels"),
    ("other-dimension", "weights do not fit"),
])
def test_tampered_records_are_one_line_refusals(tmp_path, fno_checkpoint, gp_checkpoint, capsys, tamper, message):
    import sys

    source = gp_checkpoint if tamper == "other-dimension" else fno_checkpoint
    checkpoint = torch.load(source, weights_only=True)
    if tamper == "no-data":
        checkpoint["pdekit"]["data"] = None
    elif tamper == "nested":
        value = 4
        for _ in range(2000):
            value = [value]
        checkpoint["pdekit"]["hparams"]["network_kwargs"] = {"n_modes": value}
    else:  # a 1-D GP's weights under a 2-D problem's name
        checkpoint["pdekit"]["hparams"]["problem"] = checkpoint["pdekit"]["data"]["problem"] = "poisson-2d-sin100"
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20000)  # pickling 2000 nested lists
    try:
        torch.save(checkpoint, tmp_path / "tampered.ckpt")
    finally:
        sys.setrecursionlimit(limit)
    data = [] if tamper == "other-dimension" else ["--data", str(tmp_path / "absent.h5")]
    assert pdekit.learning.cli.main(["evaluate", "--ckpt", str(tmp_path / "tampered.ckpt"), *data,
                            "--out", str(tmp_path / "ev")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and message in err, err[-1000:]
    assert not (tmp_path / "ev").exists()
