"""``pdekit predict``: the model's predictions on the data module's test split, written as one
HDF5 file in the layout of the data it was given.

The file holds, per predicted sample (leading axis), the target fields under their own names
(Poisson: ``u``; time series: each field, ``(sample, step, [component,] *grid)`` for the rollout
from the first ``history`` snapshots), ``mask``, ``source_file`` (index into the root attribute
``source_files``) and ``source_index`` (the sample's index in that file); root attributes
``pde``, ``dim``, ``task`` and ``kind = "predictions"``.  Written atomically.
"""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from pdekit.files.atomic import atomic_path


class PredictionWriter(BasePredictionWriter):
    def __init__(self, path):
        super().__init__(write_interval="epoch")
        self.path = Path(path)

    def write_on_epoch_end(self, trainer, module, predictions, batch_indices):
        datamodule = trainer.datamodule
        signature = datamodule.signature()
        dataset = datamodule._sets.get("test")
        if dataset is None or not predictions:
            raise ValueError("the test split is empty: nothing to predict (set data.init_args.split)")
        batches = predictions[0] if predictions and isinstance(predictions[0], list) else predictions
        values = torch.cat([p.detach().cpu() for p in batches]).numpy()
        items = [dataset[i] for i in range(len(dataset))]
        file_ids = np.array([int(item["file"]) for item in items])
        sample_ids = np.array([int(item["index"]) for item in items])
        if signature["timeseries"]:  # windows of one trajectory: keep the first window of each
            _, first = np.unique(np.stack([file_ids, sample_ids], 1), axis=0, return_index=True)
            first = np.sort(first)
        else:
            first = np.arange(len(items))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        chosen = values[first]
        with atomic_path(self.path) as tmp, h5py.File(tmp, "w") as h5:
            for name, (start, stop, vector) in _channels(datamodule.files[0], signature).items():
                data = chosen[:, :, start:stop] if signature["timeseries"] else chosen[:, start:stop]
                if not vector:
                    data = data[:, :, 0] if signature["timeseries"] else data[:, 0]
                h5.create_dataset(name, data=data.astype(np.float32))
            h5.create_dataset("mask", data=np.stack([np.asarray(items[i]["mask"]) for i in first]))
            h5.create_dataset("source_file", data=file_ids[first])
            h5.create_dataset("source_index", data=sample_ids[first])
            h5.attrs.update({"kind": "predictions", "pde": signature["pde"], "dim": signature["dim"],
                             "task": f"{type(module).__module__}.{type(module).__qualname__}",
                             "source_files": [str(f) for f in datamodule.files],
                             "signature": json.dumps(signature)})
        print(f"wrote {self.path} ({len(first)} predictions)")


def _channels(path, signature) -> dict:
    """field -> (first channel, last channel + 1, is a vector) of the model's output."""
    from pdekit.files.dataset import open_dataset

    out, start = {}, 0
    with open_dataset(path) as h5:
        for name in signature["target"]:
            vector = signature["timeseries"] and h5[name].ndim == 3 + int(signature["dim"])
            width = h5[name].shape[2] if vector else 1
            out[name] = (start, start + width, vector)
            start += width
    return out
