"""Experiment (not a test): the LSM paper's Darcy comparison at a CPU-sized budget.

Darcy (`datagen poisson --level darcy`: a in {3, 12} from a thresholded Gaussian random field,
f = 1, u = 0 on the box, 64²), the same training recipe for four operators at a matched parameter
budget (~1 M), each from its config in experiments/configs:

  lsm   lsm_darcy.yaml    Latent Spectral Model, width 16, patch 4   (1.2 M parameters)
  unet  unet_darcy.yaml   U-Net, width 16                            (1.1 M)
  fno   fno_darcy.yaml    FNO, 16 modes, width 42                    (1.0 M)
  tfno  tfno_darcy.yaml   TFNO (Tucker rank 0.5), 16 modes, width 58 (1.0 M)

Final relative L2 on held-out samples (new seeds; no selection on test data), next to the
paper's numbers (85², 1000 training samples, 500 epochs, ~19 M-parameter LSM).

    python -m experiments.studies.lsm_study [--train 500] [--test 100] [--epochs 20] [--models lsm,unet,fno,tfno]
"""
from __future__ import annotations

import argparse
from pathlib import Path

from experiments.common import CONFIGS, enter_base, fit, last_checkpoint, make_data, parse_list, print_table, write_json

PAPER = {"lsm": 0.0065, "unet": 0.0080, "fno": 0.0108, "tfno": float("nan")}  # LSM paper, Darcy, relative L2


def main():
    from pdekit.learning.checkpoints import load_task
    from pdekit.learning.evaluation.fields import evaluate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=500)
    parser.add_argument("--test", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--models", default="lsm,unet,fno,tfno")
    parser.add_argument("--base", default=".", help="the configs' runs/ folder is made here (data, checkpoints, logs)")
    parser.add_argument("--out", default="experiments/results/lsm_study")
    args = parser.parse_args()
    out, data = enter_base(args, "runs/darcy")
    for name, n, seed in (("train", args.train, 0), ("test", args.test, 100000)):
        make_data(data / f"{name}.h5", ["poisson", "--level", "darcy", "--resolution", args.resolution, "--n", n,
                                        "--seed", seed])
    rows = []
    for model in parse_list(args.models, "--models", choices=list(PAPER)):
        name = f"{model}_darcy"
        run = Path("runs") / name
        seconds = fit(CONFIGS / f"{name}.yaml", "--trainer.max_epochs", args.epochs,
                      "--trainer.enable_progress_bar", "false")
        ckpt = last_checkpoint(run)
        metrics = evaluate(ckpt, [data / "test.h5"], out / model)
        task, _ = load_task(ckpt)
        rows.append({"model": model, "parameters": sum(p.numel() for p in task.net.parameters()),
                     "test rel L2": metrics["overall"]["rel_l2_mean"], "paper (85², 500 epochs)": PAPER[model],
                     "train s": seconds})
        print(f"{model}: rel L2 {rows[-1]['test rel L2']:.4f} in {seconds:.0f} s", flush=True)
    print_table(f"Darcy {args.resolution}^2, {args.train} training / {args.test} test samples, {args.epochs} epochs "
                "(AdamW lr 5e-4, weight decay 1e-4, cosine schedule, batch 20, relative L2 loss)", rows)
    write_json(out / "results.json", rows)


if __name__ == "__main__":
    from experiments.common import run_script

    run_script(main)
