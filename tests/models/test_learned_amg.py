"""Learned algebraic multigrid: the untrained form is pyamg's smoothed aggregation (same hierarchy,
same cycle, same PCG history), the training path (torch) is the inference path (pyamg), the
preconditioner is SPD and linear in 2-D, 3-D and on a cut-cell pressure system, scipy's cg agrees
with pdekit's pcg, a short training helps held-out systems, ``load`` takes a plain scipy matrix,
and bad matrices are refused in one line."""
import functools

import numpy as np
import pyamg
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch
import yaml

from datagen.poisson import sample_problem
from models.learned_amg import AMGNet, LearnedAMG, build_hierarchy, pcg_error_loss, torch_hierarchy, v_cycle
from pdekit import DiffusionOperator
from pdekit.errors import PdekitError
from pdekit.krylov import pcg
from pdekit.learning.solvers import load
from pdekit.precond import AMG


def _system(level, n, dim=2, seed=0):
    grid, a, mask, bc, f = sample_problem(level, n, dim, seed)
    op = DiffusionOperator(grid, a, mask, bc)
    return op, op.rhs(f)


def _perturbed(seed=1) -> AMGNet:
    """A network whose output layer is not zero (a 'trained-like' correction)."""
    torch.manual_seed(seed)
    net = AMGNet(16, 2)
    with torch.no_grad():
        net.decoder.out.weight.normal_(0, 0.5)
    return net


def _materialise(ml) -> np.ndarray:
    M = ml.aspreconditioner()
    return np.stack([M @ e for e in np.eye(ml.levels[0].A.shape[0])], axis=1)


def test_untrained_form_is_pyamg_smoothed_aggregation():
    op, b = _system("hard", 24)
    A = op.to_sparse()
    np.random.seed(0)
    reference = pyamg.smoothed_aggregation_solver(A)
    ours = AMG(A, setup=build_hierarchy).hierarchy
    assert len(ours.levels) == len(reference.levels) >= 3
    for mine, theirs in zip(ours.levels, reference.levels):
        assert abs(sp.csr_matrix(mine.A) - sp.csr_matrix(theirs.A)).max() == 0
        if hasattr(theirs, "P"):
            assert abs(sp.csr_matrix(mine.P) - sp.csr_matrix(theirs.P)).max() == 0
    r = np.random.default_rng(0).standard_normal(A.shape[0])
    assert np.array_equal(ours.aspreconditioner() @ r, reference.aspreconditioner() @ r)
    # the same PCG run: same iterations, same residual history (to round-off)
    vectors = b[torch.as_tensor(op.mask[0])]
    plain, learned = (pcg(A, vectors, M, tol=1e-10, maxiter=200) for M in (AMG(A), AMG(A, setup=build_hierarchy)))
    assert int(plain.iterations) == int(learned.iterations)
    assert torch.allclose(plain.history, learned.history, rtol=1e-9, atol=0)


def test_torch_training_cycle_is_the_pyamg_cycle_it_trains():
    op, _ = _system("extreme", 24, seed=3)
    A, net = op.to_sparse(), _perturbed()
    ml = build_hierarchy(A, net, theta=0.03)
    levels = torch_hierarchy(A, net, theta=0.03)
    assert [level.A.shape[0] for level in levels] == [level.A.shape[0] for level in ml.levels]
    r = np.random.default_rng(1).standard_normal(A.shape[0])
    expected = ml.aspreconditioner() @ r
    with torch.no_grad():
        got = v_cycle(levels, torch.as_tensor(r)[:, None])[:, 0].numpy()
    assert np.abs(got - expected).max() <= 1e-10 * np.abs(expected).max()
    # and the correction is not nothing: the learned cycle differs from plain SA
    plain = build_hierarchy(A, None, theta=0.03).aspreconditioner() @ r
    assert np.abs(plain - expected).max() > 1e-3 * np.abs(expected).max()


def test_the_loss_gradient_reaches_the_zero_initialised_output_layer():
    op, _ = _system("hard", 16, seed=2)
    net = AMGNet(16, 2)
    loss = pcg_error_loss(torch_hierarchy(op.to_sparse(), net), torch.randn(2, op.to_sparse().shape[0],
                                                                              dtype=torch.float64), 4)
    loss.backward()
    assert torch.isfinite(loss) and float(net.decoder.out.weight.grad.abs().sum()) > 0


def _cut_cell_pressure_matrix():
    from datagen.navier_stokes import OBSTACLE_LEVELS, draw_obstacles
    from datagen.ns_channel import ChannelFlow

    flow = ChannelFlow(draw_obstacles(OBSTACLE_LEVELS["easy-medium"], 5), nx=32, ny=8, height=1.0, nu=1e-2,
                       u_max=1.0, walls="cut-cell", viscosity="implicit")
    return flow.op.to_sparse()


@pytest.mark.parametrize("case", ["2d-extreme", "3d-hard", "cut-cell-pressure"])
def test_learned_preconditioner_is_symmetric_positive_definite_and_linear(case):
    A = {"2d-extreme": lambda: _system("extreme", 16, seed=5)[0].to_sparse(),
         "3d-hard": lambda: _system("hard", 6, dim=3, seed=5)[0].to_sparse(),
         "cut-cell-pressure": _cut_cell_pressure_matrix}[case]()
    M = AMG(A, setup=functools.partial(build_hierarchy, net=_perturbed(), theta=0.03))
    dense = _materialise(M.hierarchy)
    scale = np.abs(dense).max()
    assert np.abs(dense - dense.T).max() <= 1e-10 * scale
    assert np.linalg.eigvalsh(0.5 * (dense + dense.T)).min() > 0
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((2, A.shape[0]))
    apply = M.as_linear_operator()
    combined = apply @ (2.0 * x - 3.0 * y)
    assert np.abs(combined - (2.0 * (apply @ x) - 3.0 * (apply @ y))).max() <= 1e-10 * np.abs(combined).max()


def test_scipy_cg_takes_the_iterations_of_pdekit_pcg():
    op, b = _system("hard", 32, seed=7)
    A = op.to_sparse()
    rhs = b[torch.as_tensor(op.mask[0])].numpy()
    M = AMG(A, setup=functools.partial(build_hierarchy, net=_perturbed(), theta=0.03))
    result = pcg(A, torch.as_tensor(rhs), M, tol=1e-8, maxiter=300)
    counts = []
    for operator in (M.as_linear_operator(), M.aspreconditioner()):
        count = []
        x, info = spla.cg(A, rhs, M=operator, rtol=1e-8, maxiter=300, callback=lambda _: count.append(1))
        assert info == 0 and np.linalg.norm(A @ x - rhs) <= 1e-7 * np.linalg.norm(rhs)
        counts.append(len(count))
    assert bool(result.converged) and all(abs(c - int(result.iterations)) <= 1 for c in counts)


# -- training: `pdekit fit` from a config on 16² hard/extreme systems --------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from datagen import runner
    from datagen.generators import config_for
    from pdekit.learning.cli import main

    folder = tmp_path_factory.mktemp("lamg")
    files = []
    for level in ("hard", "extreme"):
        files.append(folder / f"{level}16.h5")
        runner.run(config_for("poisson", level, 16, 16, dim=2), files[-1], progress=False)
    config = {"seed_everything": 0,
              "trainer": {"max_steps": 8, "logger": False, "enable_progress_bar": False, "enable_model_summary": False,
                          "default_root_dir": str(folder), "limit_val_batches": 1},
              "model": {"class_path": "models.learned_amg.LearnedAMG",
                        "init_args": {"width": 16, "rounds": 2, "pcg_steps": 4, "probes": 2, "search_batches": 4}},
              "data": {"class_path": "pdekit.learning.datamodules.FieldDataModule",
                       "init_args": {"files": [str(f) for f in files], "system": True, "batch_size": 4,
                                     "split": [0.875, 0.125, 0.0]}}}
    path = folder / "lamg.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["fit", "--config", str(path)]) in (0, None)
    return folder / "checkpoints" / "last.ckpt"


def test_short_training_beats_the_untrained_form_on_held_out_hard_systems(trained):
    # held-out seeds at twice the training resolution.  Measured: ratio 0.67 (9/11, 9/14, 9/16) with
    # seed_everything 0, 1, 2 and with 1 and 4 threads (theta = 0.05 chosen each time); threshold 0.8
    ratios = []
    for seed in (10_000, 10_001, 10_002):
        op, b = _system("hard", 32, seed=seed)
        trained_run = pcg(op, b, load(trained, op), tol=1e-8, maxiter=300)
        untrained_run = pcg(op, b, AMG(op), tol=1e-8, maxiter=300)
        assert bool(trained_run.converged)
        ratios.append(int(trained_run.iterations) / int(untrained_run.iterations))
    assert np.mean(ratios) <= 0.8, ratios


def test_load_takes_a_plain_scipy_matrix_and_round_trips_through_the_allow_list(trained):
    from pdekit.learning.checkpoints import load_task
    from pdekit.learning.registry import LOADABLE

    assert "models.learned_amg.LearnedAMG" in LOADABLE
    task, info = load_task(trained)
    assert isinstance(task, LearnedAMG) and bool(task.theta_chosen)
    A = pyamg.gallery.poisson((40, 40), format="csr")  # a user's own matrix: no pdekit operator
    b = np.random.default_rng(0).standard_normal(A.shape[0])
    M = load(trained, A)
    assert M.linear
    assert np.array_equal(M.aspreconditioner() @ b, task.hierarchy(A).aspreconditioner() @ b)
    threshold_only = load(trained, A, correction=False)  # the learned threshold without the network
    assert np.array_equal(threshold_only.aspreconditioner() @ b,
                          build_hierarchy(A, None, float(task.theta)).aspreconditioner() @ b)
    result = pcg(A, b, M, tol=1e-8, maxiter=100)
    x, status = spla.cg(A, b, M=M.as_linear_operator(), rtol=1e-8, maxiter=100)
    assert bool(result.converged) and status == 0


def test_load_of_a_network_checkpoint_on_a_matrix_is_one_line(dcdm_checkpoint):
    with pytest.raises(PdekitError) as error:
        load(dcdm_checkpoint, pyamg.gallery.poisson((8, 8), format="csr"))
    assert "\n" not in str(error.value) and "matrix" in str(error.value)


@pytest.mark.parametrize("matrix,words", [
    (sp.random(4, 5, density=0.5, format="csr", random_state=0), "square"),
    (sp.csr_matrix(np.array([[2.0, 1.0], [0.0, 2.0]])), "not symmetric"),
    (sp.csr_matrix(np.array([[2, -1], [-1, 2]])), "floating-point"),
    (sp.csr_matrix(np.array([[2, -1], [-1, 2]], dtype=complex)), "floating-point"),
    (sp.csr_matrix((0, 0)), "empty"),
    (sp.csr_matrix(np.array([[np.nan, 0.0], [0.0, 1.0]])), "NaN"),
    (sp.csr_matrix(np.array([[-1.0, 0.0], [0.0, 1.0]])), "diagonal"),
])
def test_bad_matrices_are_refused_in_one_line_before_the_checkpoint_is_read(tmp_path, matrix, words):
    with pytest.raises((ValueError, PdekitError)) as error:
        load(tmp_path / "never-read.ckpt", matrix)
    assert words in str(error.value) and "\n" not in str(error.value)
    with pytest.raises((ValueError, PdekitError)):
        AMG(matrix)


def test_the_channel_flow_pressure_solve_takes_the_checkpoint(trained):
    from datagen.ns_channel import make_preconditioner

    op, b = _system("medium", 24)
    M, flexible = make_preconditioner(str(trained), op)
    assert not flexible and isinstance(M, AMG)
    assert bool(pcg(op, b, M, tol=1e-8, maxiter=100).converged)


def test_a_learned_amg_checkpoint_is_read_once_while_unchanged(trained, tmp_path):
    import os
    import shutil

    from pdekit.learning.solvers import _load_task

    copy = tmp_path / "copy.ckpt"
    shutil.copy(trained, copy)
    first = _load_task(copy)[0]
    assert _load_task(copy)[0] is first  # a setup per system does not re-read the file
    os.utime(copy, ns=(os.stat(copy).st_atime_ns, os.stat(copy).st_mtime_ns + 10**9))
    assert _load_task(copy)[0] is not first  # a changed file is read again
