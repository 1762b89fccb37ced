"""DCDM: the network, its loss, Ritz-vector data, and a trained model as a preconditioner in
pdekit's solvers and scipy — checked against known answers and against CG."""
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import scipy.sparse.linalg as spla
import torch

from datagen.poisson import sample_problem
from datagen.ritz import lanczos, ritz_vectors
from models.dcdm import DCDM, DCDMNet, scaled_residual_loss
from pdekit import DiffusionOperator, Grid
from pdekit.files.dataset import load_system
from pdekit.learning.datamodules import FieldDataModule
from pdekit.krylov import cg, conjugate_directions, fcg
from pdekit.learning.solvers import load

DATAGEN = str(Path(sys.executable).parent / "datagen")


def test_network_matches_the_reference_size_and_runs_at_any_size():
    net3 = DCDMNet(dim=3, channels=16, fine=4, coarse=6, post=4)
    assert 95_000 < sum(p.numel() for p in net3.parameters()) < 100_000  # reference: ~97k at 64^3
    net2 = DCDMNet(dim=2)
    for shape in ((16, 16), (33, 21)):
        assert net2(torch.randn(2, 1, *shape)).shape == (2, 1, *shape)
    assert net3(torch.randn(1, 1, 9, 8, 7)).shape == (1, 1, 9, 8, 7)
    r = torch.randn(3, 1, 20, 20)
    torch.testing.assert_close(net2(2.5 * r), 2.5 * net2(r), rtol=1e-5, atol=1e-6)  # no bias: homogeneous


def test_loss_is_zero_for_the_exact_inverse_and_blind_to_scale():
    grid, a, mask, bc, f = sample_problem("medium", 16, 2, 3)
    op = DiffusionOperator(grid, a, mask, bc)
    b = op.rhs(f)[None]
    b = b / b.norm()
    exact = cg(op, b[0], tol=1e-13, maxiter=5000).x[None]
    assert float(scaled_residual_loss(op, b, exact)) < 1e-20
    q = torch.randn_like(b) * torch.as_tensor(op.mask)
    torch.testing.assert_close(scaled_residual_loss(op, b, q), scaled_residual_loss(op, b, -7.0 * q))
    # the same number from the assembled matrix
    A, layout = op.to_sparse(), op.layout()
    bv, qv = layout.to_vectors(b).numpy()[0], layout.to_vectors(q).numpy()[0]
    step = (qv @ bv) / (qv @ (A @ qv))
    assert float(scaled_residual_loss(op, b, q)) == pytest.approx(np.sum((bv - step * (A @ qv)) ** 2), rel=1e-12)


def test_lanczos_with_full_steps_gives_the_exact_spectrum():
    nx, ny = 12, 7  # a rectangle: all eigenvalues distinct, so one Krylov space holds them all
    op = DiffusionOperator(Grid.box((nx, ny), lengths=(nx + 1, ny + 1)))  # unit spacing: the 5-point matrix
    values, vectors = lanczos(op.to_sparse(), steps=nx * ny, seed=0)
    one_d = [4 * np.sin(np.arange(1, n + 1) * np.pi / (2 * (n + 1))) ** 2 for n in (nx, ny)]
    exact = np.sort((one_d[0][:, None] + one_d[1][None, :]).ravel())
    np.testing.assert_allclose(values, exact, rtol=1e-9, atol=1e-9)
    A = op.to_sparse()
    assert np.abs(A @ vectors[:, 0] - values[0] * vectors[:, 0]).max() < 1e-8
    B = ritz_vectors(values, vectors, 400, seed=1)
    np.testing.assert_allclose(np.linalg.norm(B, axis=1), 1.0)
    coefficients = np.abs(B @ vectors)  # vectors are orthonormal: the c_j up to normalization
    cut = int(round(0.55 * len(values)))
    assert 8 < coefficients[:, :cut].mean() / coefficients[:, cut:].mean() < 10  # lowest 55% weighted x9


@pytest.fixture(scope="module")
def trained(tmp_path_factory, ritz_file):
    folder = tmp_path_factory.mktemp("dcdm")
    (folder / "ritz.h5").symlink_to(ritz_file)
    torch.manual_seed(0)
    dm = FieldDataModule([str(folder / "ritz.h5")], system=True, batch_size=16, split=[0.9, 0.1, 0.0])
    task = DCDM(channels=16, fine=2, coarse=2, post=2, lr=2e-3)
    trainer = L.Trainer(max_epochs=12, default_root_dir=folder, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, use_distributed_sampler=False)
    trainer.fit(task, dm, weights_only=True)
    trainer.save_checkpoint(folder / "dcdm.ckpt")
    return folder


def test_ritz_file_is_a_valid_poisson_dataset(trained):
    for i in (0, 7):
        op, b, u = load_system(trained / "ritz.h5", i)
        assert float(op.relative_residual(u, b)) <= 1e-10 and abs(float(b.norm()) - 1) < 1e-12


@pytest.mark.parametrize("resolution", [16, 32])
def test_trained_dcdm_beats_cg_also_on_a_larger_grid(trained, resolution):
    grid, a, mask, bc, f = sample_problem("easy", resolution, 2, 12345)  # held-out right-hand side
    op = DiffusionOperator(grid, a, mask, bc)
    b = op.rhs(f)
    M = load(trained / "dcdm.ckpt", op)
    assert not M.linear
    plain = cg(op, b, tol=1e-6, maxiter=5000)
    dcdm = conjugate_directions(op, b, M, k=2, tol=1e-6, maxiter=5000)
    flexible = fcg(op, b, M, tol=1e-6, maxiter=5000)
    assert bool(dcdm.converged) and bool(flexible.converged)
    assert float(op.relative_residual(dcdm.x, b)) <= 1e-6
    assert int(dcdm.iterations) < 0.5 * int(plain.iterations), (int(dcdm.iterations), int(plain.iterations))
    assert int(flexible.iterations) < 0.5 * int(plain.iterations)


def test_loaded_model_works_in_scipy_flexible_solver(trained):
    grid, a, mask, bc, f = sample_problem("easy", 16, 2, 7)
    op = DiffusionOperator(grid, a, mask, bc)
    A, layout = op.to_sparse(), op.layout()
    b = layout.to_vectors(op.rhs(f)).numpy()
    M = load(trained / "dcdm.ckpt", op).as_linear_operator()
    x, info = spla.gcrotmk(A, b, M=M, rtol=1e-8, maxiter=200)
    assert info == 0 and np.linalg.norm(b - A @ x) <= 1e-8 * np.linalg.norm(b)


def test_learned_pressure_preconditioner_gives_the_amg_flow(trained, tmp_path):
    """`datagen navier-stokes --family obstacles --pressure-precond model.ckpt`: the network inside
    flexible CG gives the same flow as AMG-PCG, within the pressure tolerance."""
    import h5py

    (tmp_path / "tiny.yaml").write_text("base: easy-medium\nt_end: 0.2\ninterval: 0.1\nwarmup: 0.0\nresolution: 16\n")
    files = {}
    for name, precond in (("amg", "amg"), ("net", str(trained / "dcdm.ckpt"))):
        out = subprocess.run([DATAGEN, "navier-stokes", "--family", "obstacles", "--spec", "tiny.yaml", "--n", "1",
                              "--pressure-precond", precond, "--pressure-tol", "1e-9", "--out", f"{name}.h5",
                              "--quiet"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        files[name] = h5py.File(tmp_path / f"{name}.h5")
    amg, net = files["amg"], files["net"]
    scale = np.abs(amg["velocity"][()]).max()
    assert np.abs(net["velocity"][()] - amg["velocity"][()]).max() <= 1e-6 * scale
    assert np.abs(net["pressure"][()] - amg["pressure"][()]).max() <= 1e-6 * np.abs(amg["pressure"][()]).max()
    assert (net["max_relative_divergence"][()] <= 1e-9 * (1 + 1e-6)).all()
    assert json_config(net)["pressure_precond"].endswith("dcdm.ckpt")
    for f in files.values():
        f.close()


def json_config(h5):
    import json

    return json.loads(h5.attrs["config"])
