"""Latent Spectral Model and U-Net operators (models.lsm, models.unet), the Darcy level, and both
networks as DCDM-trained preconditioners."""
import math

import numpy as np
import pytest
import torch

from models.lsm import LSM, NeuralSpectralBlock, spectral_basis
from models.unet import UNet


@pytest.mark.parametrize("shape", [(32, 32), (20, 27), (7, 40)])
@pytest.mark.parametrize("cls", [UNet, LSM])
def test_any_resolution_2d(cls, shape):
    torch.manual_seed(0)
    net = cls(in_channels=3, out_channels=2, width=8, patch=2).eval()
    assert net(torch.randn(2, 3, *shape)).shape == (2, 2, *shape)


@pytest.mark.parametrize("cls", [UNet, LSM])
def test_3d(cls):
    torch.manual_seed(0)
    net = cls(in_channels=1, out_channels=1, width=8, dim=3, patch=1).eval()
    assert net(torch.randn(1, 1, 9, 16, 5)).shape == (1, 1, 9, 16, 5)


def test_spectral_basis_is_the_documented_one():
    z = torch.linspace(-2, 3, 11, dtype=torch.float64)
    basis = spectral_basis(z, 12)
    assert basis.shape == (11, 24)
    for k in range(12):
        assert torch.allclose(basis[:, k], torch.sin(k * math.pi * z / 12))
        assert torch.allclose(basis[:, 12 + k], torch.cos(k * math.pi * z / 12))


@pytest.mark.parametrize("dim,shape", [(2, (12, 8)), (3, (4, 8, 6))])
def test_spectral_block_with_silent_attention_adds_the_basis_constant(dim, shape):
    """Zero keys/values/queries and latents: every token is Σ_k W[c, B + k] (cos(0) = 1, sin(0) = 0)
    and every pixel reads it back, so the block is x + that constant per channel — exact only if
    patchify and de-patchify are inverse bijections."""
    torch.manual_seed(0)
    block = NeuralSpectralBlock(16, dim, num_basis=12, tokens=4, patch=2).double()
    with torch.no_grad():
        for conv in (block.encoder_kv, block.decoder_q):
            conv.weight.zero_()
            conv.bias.zero_()
        block.latent.zero_()
    x = torch.randn(2, 16, *shape, dtype=torch.float64)
    constant = block.weights[:, 12:].sum(1).view(1, 16, *[1] * dim)
    torch.testing.assert_close(block(x), x + constant)


def test_spectral_block_patches_are_independent():
    torch.manual_seed(0)
    block = NeuralSpectralBlock(8, 2, patch=4).double()
    x = torch.randn(1, 8, 8, 12, dtype=torch.float64)
    y = x.clone()
    y[:, :, 4:, 8:] += torch.randn(1, 8, 4, 4, dtype=torch.float64)  # one patch changed
    changed = (block(x) - block(y)).abs().amax(1)[0] > 0
    expected = torch.zeros(8, 12, dtype=torch.bool)
    expected[4:, 8:] = True
    assert torch.equal(changed, expected)


def test_width_must_split_into_heads():
    from pdekit.errors import ConfigError
    from pdekit.learning.tasks import OperatorLearning

    with pytest.raises(ConfigError, match="multiple"):
        OperatorLearning(network="models.lsm.LSM", network_kwargs={"width": 12}, in_channels=1)


def test_darcy_level_is_the_benchmark():
    from datagen.poisson import solve_sample

    sample = solve_sample("darcy", 32, 2, seed=3)
    assert set(np.unique(sample["a"])) == {3.0, 12.0}
    assert 0.2 < (sample["a"] == 12).mean() < 0.8
    assert np.all(sample["f"] == 1) and np.all(sample["mask"])
    u = sample["u"]
    assert u.min() >= 0 and 0.005 < u.max() < 0.05  # f = 1, u = 0 on the box, a >= 3: u <= 1/(8·3)
    assert sample["solver_residual"] < 1e-10


@pytest.fixture(scope="module")
def darcy_file(tmp_path_factory):
    from datagen import runner
    from datagen.generators import config_for

    path = tmp_path_factory.mktemp("darcy") / "darcy16.h5"
    runner.run(config_for("poisson", "darcy", 96, 16, dim=2), path, progress=False)
    return path


def test_short_training_on_darcy_beats_the_mean_predictor(darcy_file, tmp_path):
    """~25 s: an LSM trained for a few epochs on 86 Darcy samples at 16² has well below the
    relative error of predicting the training mean, on held-out samples."""
    import h5py
    import lightning as L

    from pdekit.learning.checkpoints import load_task
    from pdekit.learning.datamodules import FieldDataModule
    from pdekit.learning.tasks import OperatorLearning

    torch.manual_seed(0)
    dm = FieldDataModule([str(darcy_file)], inputs=["a"], target=["u"], log_inputs=[], split=[0.9, 0.0, 0.1],
                         batch_size=8)
    task = OperatorLearning(network="models.lsm.LSM", network_kwargs={"width": 8, "patch": 1}, in_channels=1, lr=3e-3)
    trainer = L.Trainer(max_epochs=12, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False, default_root_dir=tmp_path, limit_val_batches=0)
    trainer.fit(task, dm)
    test = dm.test_dataloader()
    with h5py.File(darcy_file) as h5:
        mean = torch.as_tensor(h5["u"][: int(0.9 * 96)].mean(0), dtype=torch.float32)
    model_err, mean_err = [], []
    task.eval()
    with torch.no_grad():
        for batch in test:
            u = batch["y"][:, 0]
            pred = task(batch["x"], batch["mask"])[:, 0]
            norm = u.flatten(1).norm(dim=1)
            model_err += ((pred - u).flatten(1).norm(dim=1) / norm).tolist()
            mean_err += ((mean - u).flatten(1).norm(dim=1) / norm).tolist()
    assert np.mean(model_err) < 0.5 * np.mean(mean_err), (np.mean(model_err), np.mean(mean_err))
    # and the checkpoint round trip is weights-only and allow-listed
    path = tmp_path / "lsm.ckpt"
    trainer.save_checkpoint(path)
    loaded, info = load_task(path)
    assert info["hparams"]["network"] == "models.lsm.LSM"
    batch = next(iter(test))
    with torch.no_grad():
        torch.testing.assert_close(loaded(batch["x"], batch["mask"]), task(batch["x"], batch["mask"]))


def _train_dcdm(data, network, kwargs, folder, **trainer_args):
    import lightning as L

    from models.dcdm import DCDM
    from pdekit.learning.datamodules import FieldDataModule

    torch.manual_seed(0)
    dm = FieldDataModule([str(data)], system=True, batch_size=16, split=[0.9, 0.1, 0.0])
    task = DCDM(network=network, network_kwargs=kwargs, lr=3e-3)
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, default_root_dir=folder,
                        use_distributed_sampler=False, **trainer_args)
    trainer.fit(task, dm, weights_only=True)
    trainer.save_checkpoint(folder / "net.ckpt")
    return folder / "net.ckpt"


def _held_out_system(resolution):
    from datagen.poisson import sample_problem
    from pdekit.operators import DiffusionOperator

    grid, a, mask, bc, f = sample_problem("easy", resolution, 2, 12345)
    op = DiffusionOperator(grid, a, mask, bc)
    return op, op.rhs(f)


def test_unet_as_a_preconditioner_is_odd_scale_blind_and_masked(ritz_file, tmp_path):
    """The direction of a network with biases and BatchNorm is made odd, f(−r) = −f(r), and blind
    to the residual's scale (normalised inside), so FCG sees a preconditioner-like map."""
    from pdekit.learning.solvers import load

    path = _train_dcdm(ritz_file, "models.unet.UNet", {"width": 8}, tmp_path, max_steps=3, limit_val_batches=0)
    op, b = _held_out_system(16)
    M = load(path, op)
    r = b.float()
    direction = M(r)
    assert float((M(1e3 * r) - 1e3 * direction).norm() / (1e3 * direction.norm())) < 1e-3  # float32 rounding of f(r) - f(-r)
    torch.testing.assert_close(M(-r), -direction)
    assert float(direction.norm()) > 0


def test_lsm_trained_with_the_dcdm_loss_beats_cg(ritz_file, tmp_path):
    """~40 s: an LSM (width 8) trained for 8 epochs on 600 Ritz vectors at 16² with the DCDM loss,
    loaded by pdekit.learning.solvers.load: FCG needs fewer iterations than CG on a held-out system."""
    from pdekit.krylov import cg, fcg
    from pdekit.learning.solvers import load

    path = _train_dcdm(ritz_file, "models.lsm.LSM", {"width": 8, "patch": 1}, tmp_path, max_epochs=8)
    op, b = _held_out_system(16)
    plain = cg(op, b, tol=1e-6, maxiter=5000)
    flexible = fcg(op, b, load(path, op), tol=1e-6, maxiter=1000)
    assert bool(flexible.converged) and float(op.relative_residual(flexible.x, b)) <= 1e-6
    assert int(flexible.iterations) < 0.75 * int(plain.iterations), (int(flexible.iterations), int(plain.iterations))


@pytest.mark.parametrize("network", ["models.unet.UNet", "models.lsm.LSM"])
def test_jacobian_penalties_work_through_batchnorm(network):
    """JAWS's forward-mode JVP runs through BatchNorm (running statistics are updated on copies
    inside the transform): the loss is finite, the gradient reaches the weights, and the running
    statistics advance once per step (the data term's forward), not twice."""
    from pdekit.learning.tasks import Autoregressive

    torch.manual_seed(0)
    task = Autoregressive(network=network, network_kwargs={"width": 8, "patch": 1} if "lsm" in network else {"width": 8},
                          in_channels=1, out_channels=1, dim=2, regularizer="jaws", jacobian_weight=0.1)
    x, y = torch.randn(4, 1, 16, 16), torch.randn(4, 1, 16, 16)
    loss, _ = task._one_step_loss(x, torch.ones(4, 16, 16, dtype=torch.bool), y)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in task.net.parameters() if p.requires_grad)
    counts = {int(b) for name, b in task.net.named_buffers() if name.endswith("num_batches_tracked")}
    assert counts == {1}
