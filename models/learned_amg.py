"""Learned algebraic multigrid: smoothed aggregation with a strength threshold chosen on training
systems and a prolongation smoother corrected by a graph network, after Luz, Galun, Maron, Basri,
Yavneh, "Learning Algebraic Multigrid Using Graph Neural Networks" (ICML 2020, arXiv 2003.05744).

The hierarchy comes from the matrix, not a grid.  On every level pyamg's smoothed aggregation (SA,
its defaults but the learned threshold θ) makes the choices it is good at: symmetric strength of
connection (θ: :func:`choose_theta`), standard
aggregation, near-null-space candidates (four symmetric Gauss–Seidel sweeps on level 0) and the
tentative prolongator ``T``.  SA then smooths ``T`` with one damped-Jacobi step,
``P_SA = T − (ω/ρ) D⁻¹ A T``; here a message-passing network over the matrix's nonzeros scales
each entry of that step::

    P = T − D⁻¹ W T,   W_ij = (ω/ρ) a_ij (1 + δ_ij),   δ = tanh(network(features))

i.e. ``P = P_SA − s D⁻¹ (A ∘ δ) T`` with ``s`` a fixed scale (ω over the Gershgorin bound of
``D⁻¹A``).  The network's last layer starts at zero, so δ = 0 and the untrained preconditioner is
pyamg's SA exactly (tested).  Coarse operators are Galerkin (``PᵀAP``), the cycle is pyamg's
symmetric V-cycle (symmetric Gauss–Seidel before and after, pseudo-inverse on the coarsest
level), so the preconditioner stays a fixed SPD linear map: plain PCG and
``scipy.sparse.linalg.cg`` are valid.  Coarse levels are coarsened by SA again from the learned
coarse operator; one network serves every level (its features are scale-free).

Features (scale-free, so one network serves any size, coefficient contrast and level): per entry
``a_ij/√(a_ii a_jj)``, ``log(|a_ij|/a_ii)``, ``log(|a_ij|/a_jj)``, strong-connection, same-aggregate
and diagonal flags; per unknown the row sum over the diagonal (boundary rows), the near-null-space
candidate relative to its RMS, the log size of its aggregate and an unaggregated flag.

Training (no labels) is what PCG sees: from random right-hand sides, ``pcg_steps`` iterations of
PCG with the learned V-cycle (differentiable, dense torch matrices on small systems), and the loss
is the log A-norm error reduction per iteration.  A loss on one stationary cycle's error would
follow the worst mode, while PCG's iteration count follows the whole spectrum's clustering (the
neural multigrid's one-step loss improved 5× while PCG got worse).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from pdekit.errors import ConfigError
from pdekit.learning.task import Task, check_learning_rate
from pdekit.precond import numpy_seed_zero

OMEGA = 4.0 / 3.0  # pyamg's prolongation-smoothing weight
IMPROVE = ("block_gauss_seidel", {"sweep": "symmetric", "iterations": 4})  # pyamg's candidate smoothing (level 0)
SMOOTHER = ("block_gauss_seidel", {"sweep": "symmetric"})  # pyamg SA's pre- and post-smoother
MAX_LEVELS, MAX_COARSE = 10, 10  # pyamg's defaults
NODE_FEATURES, EDGE_FEATURES = 4, 6
MAX_TRAINING_UNKNOWNS = 5000  # training holds dense matrices of every system


@dataclass
class Coarsening:
    """SA's choices on one level (all made by pyamg); :func:`graph_features` turns them into what
    the network reads."""

    A: sp.csr_matrix
    B: np.ndarray  # near-null-space candidates of this level (improved on level 0)
    B_coarse: np.ndarray
    strength: sp.csr_matrix
    aggregate: np.ndarray  # aggregate of each unknown, -1 if unaggregated
    tentative: np.ndarray  # T's one value per row (0 if unaggregated)
    P_sa: sp.sparray  # pyamg's own (BSR) matrix: its products then round exactly as pyamg's
    scale: float  # ω / Gershgorin bound of ρ(D⁻¹A)
    rows: np.ndarray  # A's nonzeros as edges (row, column), CSR order
    cols: np.ndarray


def coarsen(A: sp.csr_matrix, B: np.ndarray, first: bool, theta: float = 0.0) -> Coarsening:
    """One level of pyamg's SA setup (same calls, same order as ``smoothed_aggregation_solver``)."""
    from pyamg.aggregation import fit_candidates, jacobi_prolongation_smoother, standard_aggregation
    from pyamg.relaxation.utils import relaxation_as_linear_operator
    from pyamg.strength import symmetric_strength_of_connection

    C = symmetric_strength_of_connection(A, theta=theta)
    aggregates, _ = standard_aggregation(C)
    if first:
        B = relaxation_as_linear_operator(IMPROVE, A, np.zeros((A.shape[0], 1), dtype=A.dtype)) @ B
    T, B_coarse = fit_candidates(aggregates, B)
    P_sa = jacobi_prolongation_smoother(A, T, C, B, omega=OMEGA)

    A = sp.csr_matrix(A)  # (pyamg's coarse operators may be BSR)
    n = A.shape[0]
    aggregates = sp.csr_matrix(aggregates)
    aggregate = np.full(n, -1, dtype=np.int64)
    has = np.diff(aggregates.indptr) > 0
    aggregate[has] = aggregates.indices[aggregates.indptr[:-1][has]]
    T = sp.csr_matrix(T)
    tentative = np.zeros(n)
    has_t = np.diff(T.indptr) > 0
    tentative[has_t] = T.data[T.indptr[:-1][has_t]]
    rows = np.repeat(np.arange(n), np.diff(A.indptr))
    scale = OMEGA / float(np.max(abs(A) @ np.ones(n) / A.diagonal()))
    return Coarsening(A, B, B_coarse, sp.csr_matrix(C), aggregate, tentative, P_sa, scale, rows,
                      A.indices.astype(np.int64))


def graph_features(level: Coarsening) -> tuple[np.ndarray, np.ndarray]:
    """Scale-free (node, edge) features of one level (see the module docstring)."""
    A, C, aggregate, rows, cols = level.A, level.strength, level.aggregate, level.rows, level.cols
    n, values, d = A.shape[0], A.data, A.diagonal()
    # strong connections: C's nonzeros, looked up by their (row, column) keys
    strong_keys = np.repeat(np.arange(n), np.diff(C.indptr)) * n + C.indices
    strong_keys.sort()
    keys = rows * n + cols
    where = np.minimum(np.searchsorted(strong_keys, keys), max(len(strong_keys) - 1, 0))
    strong = strong_keys[where] == keys if len(strong_keys) else np.zeros(len(keys), bool)
    magnitude = np.maximum(np.abs(values), 1e-300)
    edge_features = np.stack([values / np.sqrt(d[rows] * d[cols]),
                              np.clip(np.log(magnitude / d[rows]), -30, 5) / 10,
                              np.clip(np.log(magnitude / d[cols]), -30, 5) / 10,
                              strong.astype(float),
                              ((aggregate[rows] == aggregate[cols]) & (aggregate[rows] >= 0)).astype(float),
                              (rows == cols).astype(float)], axis=1)
    sizes = np.bincount(aggregate[aggregate >= 0], minlength=max(int(aggregate.max()) + 1, 1))
    b = level.B[:, 0]
    node_features = np.stack([(A @ np.ones(n)) / d,
                              b / max(float(np.sqrt(np.mean(b * b))), 1e-300),
                              np.where(aggregate >= 0, np.log(sizes[np.maximum(aggregate, 0)]), 0.0) / 3,
                              (aggregate < 0).astype(float)], axis=1)
    return node_features, edge_features


def _mlp(n_in: int, width: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, width), nn.GELU(), nn.Linear(width, n_out))


class EdgeMLP(nn.Module):
    """``MLP([e_ij, h_i, h_j])`` with the first layer split by input: the node terms are computed
    once per node and gathered, not once per edge (3x fewer first-layer products, no concatenation
    of edge-sized tensors: the setup cost on a large matrix is these edge-sized operations)."""

    def __init__(self, width: int, n_out: int):
        super().__init__()
        self.edge, self.source, self.target = nn.Linear(width, width), nn.Linear(width, width, bias=False), \
            nn.Linear(width, width, bias=False)
        self.out = nn.Linear(width, n_out)

    def forward(self, e, h, rows, cols):
        return self.out(nn.functional.gelu(self.edge(e) + self.source(h)[rows] + self.target(h)[cols]))


class AMGNet(nn.Module):
    """Encode–process–decode message passing over a sparse matrix's nonzeros (plain torch:
    gather by edge, ``index_add`` to nodes); returns δ per nonzero, in (−1, 1).  The decoder's
    last layer starts at zero: δ = 0, the SA prolongator."""

    def __init__(self, width: int = 16, rounds: int = 2):
        super().__init__()
        self.node_encoder = _mlp(NODE_FEATURES, width, width)
        self.edge_encoder = _mlp(EDGE_FEATURES, width, width)
        self.edge_updates = nn.ModuleList(EdgeMLP(width, width) for _ in range(rounds))
        self.node_updates = nn.ModuleList(_mlp(2 * width, width, width) for _ in range(rounds))
        self.decoder = EdgeMLP(width, 1)
        nn.init.zeros_(self.decoder.out.weight)
        nn.init.zeros_(self.decoder.out.bias)

    def forward(self, node_features, edge_features, rows, cols) -> torch.Tensor:
        h = self.node_encoder(node_features)
        e = self.edge_encoder(edge_features)
        degree = torch.zeros(h.shape[0], 1, dtype=h.dtype, device=h.device).index_add_(
            0, rows, torch.ones(len(rows), 1, dtype=h.dtype, device=h.device)).clamp_min(1)
        for edge_update, node_update in zip(self.edge_updates, self.node_updates):
            e = e + edge_update(e, h, rows, cols)
            incoming = torch.zeros_like(h).index_add_(0, rows, e) / degree
            h = h + node_update(torch.cat([h, incoming], dim=1))
        return torch.tanh(self.decoder(e, h, rows, cols)[:, 0])

    def delta(self, level: Coarsening) -> torch.Tensor:
        """δ per nonzero of ``level.A`` (float64, on the network's device)."""
        param = next(self.parameters())
        as_tensor = lambda x, dtype=param.dtype: torch.as_tensor(x, dtype=dtype, device=param.device)
        rows, cols = as_tensor(level.rows, torch.int64), as_tensor(level.cols, torch.int64)
        node_features, edge_features = graph_features(level)
        return self(as_tensor(node_features), as_tensor(edge_features), rows, cols).double()


def correction(level: Coarsening, delta: np.ndarray) -> sp.csr_matrix:
    """``s D⁻¹ (A ∘ δ) T``: what the network subtracts from SA's prolongator."""
    n, n_coarse = level.A.shape[0], level.B_coarse.shape[0]
    keep = level.aggregate[level.cols] >= 0
    values = level.scale * level.A.data * delta * level.tentative[level.cols] / level.A.diagonal()[level.rows]
    return sp.csr_matrix((values[keep], (level.rows[keep], level.aggregate[level.cols][keep])), shape=(n, n_coarse))


def prolongation(level: Coarsening, delta: np.ndarray | None) -> sp.sparray:
    """``P_SA − s D⁻¹ (A ∘ δ) T``; SA's own matrix when δ = 0 (its pattern, explicit zeros included:
    SA's strength with θ = 0 counts every stored entry of the next level's operator)."""
    return level.P_sa if delta is None or not np.any(delta) else sp.bsr_array(level.P_sa - correction(level, delta))


@numpy_seed_zero()
def build_hierarchy(A, net: AMGNet | None = None, theta: float = 0.0):
    """The multilevel solver (``pyamg.multilevel.MultilevelSolver``) of SA with ``net``'s
    prolongation correction on every level (``None``: plain SA, equal to
    ``pyamg.smoothed_aggregation_solver(A)``).  Its cycle runs in pyamg's compiled code."""
    from pyamg.multilevel import MultilevelSolver
    from pyamg.relaxation.smoothing import change_smoothers

    A = sp.csr_matrix(A)
    B = np.ones((A.shape[0], 1), dtype=A.dtype)
    levels = []
    while len(levels) < MAX_LEVELS - 1 and A.shape[0] > MAX_COARSE:
        level = coarsen(A, B, first=not levels, theta=theta)
        if net is not None:
            with torch.no_grad():
                delta = net.delta(level).cpu().numpy()
        P = prolongation(level, delta if net is not None else None)
        entry = MultilevelSolver.Level()
        entry.A, entry.B, entry.P, entry.R = A, level.B, P, P.T.conjugate()
        levels.append(entry)
        A, B = entry.R @ A @ P, level.B_coarse
    entry = MultilevelSolver.Level()
    entry.A, entry.B = A, B
    levels.append(entry)
    ml = MultilevelSolver(levels, coarse_solver="pinv")
    change_smoothers(ml, SMOOTHER, SMOOTHER)
    return ml


# -- the differentiable form (training): dense torch matrices of small systems ------------------------
@dataclass
class TorchLevel:
    A: torch.Tensor
    lower: torch.Tensor  # D + L (forward Gauss–Seidel)
    upper: torch.Tensor  # D + U (backward)
    P: torch.Tensor | None  # None on the coarsest level
    coarse_inverse: torch.Tensor | None = None


@numpy_seed_zero()
def torch_hierarchy(A: sp.csr_matrix, net: AMGNet, theta: float = 0.0) -> list[TorchLevel]:
    """:func:`build_hierarchy` with torch matrices that carry the network's gradient (dense:
    for training systems of up to a few thousand unknowns)."""
    param = next(net.parameters())
    dense = lambda M: torch.as_tensor(M.toarray(), dtype=torch.float64, device=param.device)
    A_t = dense(A)
    B = np.ones((A.shape[0], 1))
    levels = []
    while len(levels) < MAX_LEVELS - 1 and A.shape[0] > MAX_COARSE:
        level = coarsen(A, B, first=not levels, theta=theta)
        delta = net.delta(level)
        keep = torch.as_tensor(level.aggregate[level.cols] >= 0, device=param.device)
        rows = torch.as_tensor(level.rows, device=param.device)[keep]
        coarse_cols = torch.as_tensor(level.aggregate[level.cols], device=param.device)[keep]
        factor = torch.as_tensor(level.scale * level.A.data * level.tentative[level.cols]
                                 / level.A.diagonal()[level.rows], device=param.device)[keep]
        corr = torch.zeros(A.shape[0], level.B_coarse.shape[0], dtype=torch.float64, device=param.device)
        P = dense(level.P_sa) - corr.index_put((rows, coarse_cols), factor * delta[keep], accumulate=True)
        levels.append(TorchLevel(A_t, torch.tril(A_t), torch.triu(A_t), P))
        A_t = P.T @ A_t @ P
        # the next level is coarsened from the same sparse product build_hierarchy forms: a dense
        # product's round-off changes which entries are nonzero, and with it SA's aggregates
        P_np = prolongation(level, delta.detach().cpu().numpy())
        A, B = P_np.T.conjugate() @ A @ P_np, level.B_coarse
    levels.append(TorchLevel(A_t, torch.tril(A_t), torch.triu(A_t), None, torch.linalg.pinv(A_t, hermitian=True)))
    return levels


def _sweep(level: TorchLevel, x: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """One symmetric Gauss–Seidel sweep (forward, then backward) on columns ``x``."""
    x = x + torch.linalg.solve_triangular(level.lower, b - level.A @ x, upper=False)
    return x + torch.linalg.solve_triangular(level.upper, b - level.A @ x, upper=True)


def v_cycle(levels: list[TorchLevel], b: torch.Tensor, depth: int = 0) -> torch.Tensor:
    """pyamg's V-cycle from a zero guess on columns ``b`` (n, k)."""
    level = levels[depth]
    if level.P is None:
        return level.coarse_inverse @ b
    x = _sweep(level, torch.zeros_like(b), b)
    x = x + level.P @ v_cycle(levels, level.P.T @ (b - level.A @ x), depth + 1)
    return _sweep(level, x, b)


def pcg_error_loss(levels: list[TorchLevel], probes: torch.Tensor, steps: int) -> torch.Tensor:
    """Mean log A-norm error reduction per iteration of ``steps`` PCG iterations with the V-cycle,
    from a zero guess, for right-hand sides ``probes`` (k, n) (pdekit's differentiable ``pcg``)."""
    from pdekit.krylov import pcg

    A = levels[0].A
    exact = torch.linalg.solve(A, probes.T).T
    result = pcg(A, probes.requires_grad_(True), lambda r: v_cycle(levels, r.T).T, tol=0.0, maxiter=steps,
                 check_symmetry=False, on_breakdown="warn")
    error = result.x - exact
    ratio = (error * (error @ A)).sum(1) / (exact * (exact @ A)).sum(1)
    return 0.5 * torch.log(ratio.clamp_min(1e-300)).mean() / steps


class LearnedAMG(Task):
    """Trains a learned smoothed aggregation without labels on the matrices of pdekit Poisson files
    or saved pressure systems (``data.init_args.system: true``; only the operators are read).

    Two things are learned, both on the training systems:

    * the **strength threshold** θ of SA's symmetric strength of connection (pyamg's default is
      0: every coupling is strong, and aggregates straddle coefficient jumps).  At the start of
      training θ is chosen from ``THETA_CANDIDATES`` by the work PCG needs with plain SA at that θ
      (iterations to 1e-8 × operator complexity, geometric mean over the first ``search_batches``
      training batches); ``strength_theta`` fixes it instead;
    * the **prolongation correction** δ (:class:`AMGNet`), by gradient: each sample's matrix is
      coarsened, corrected and scored by :func:`pcg_error_loss` on ``probes`` random right-hand sides.

    Validation logs the PCG iterations of the learned hierarchy over those of pyamg's default SA
    (``val/iteration_ratio``, below 1: the training earns its place).  A fresh (untrained) model is
    θ = 0, δ = 0: pyamg's SA exactly.

    Args: ``width`` and ``rounds`` (message-passing steps) of the network; ``pcg_steps`` unrolled
    iterations of the loss; ``probes`` right-hand sides per system; ``lr`` (Adam).
    ``in_channels``, ``out_channels``, ``dim`` are filled in from the data module (the network
    works on any sparse SPD matrix, of any dimension)."""

    trained_on_residuals = True
    linear_preconditioner = True  # a fixed SPD linear map: plain PCG is valid
    algebraic_preconditioner = True  # built from a matrix alone: load() accepts scipy matrices
    data_pde = "poisson"
    data_system = True

    def __init__(self, width: int = 16, rounds: int = 2, pcg_steps: int = 6, probes: int = 4,
                 strength_theta: float | None = None, search_batches: int = 4, lr: float = 1e-3,
                 in_channels: int = 1, out_channels: int = 1, dim: int = 2, optimizer: dict | None = None,
                 lr_scheduler: dict | str | None = None):
        super().__init__(optimizer, lr_scheduler)
        check_learning_rate(lr)
        for name, value, low, high in (("width", width, 1, 1024), ("rounds", rounds, 0, 20),
                                       ("pcg_steps", pcg_steps, 1, 100), ("probes", probes, 1, 256),
                                       ("search_batches", search_batches, 1, 1000)):
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ConfigError(f"model.init_args.{name} must be an integer in {low}..{high}, got {value!r}")
        if strength_theta is not None and (isinstance(strength_theta, bool) or not isinstance(strength_theta, (int, float))
                                           or not 0 <= strength_theta < 1):
            raise ConfigError(f"model.init_args.strength_theta must be a number in [0, 1) or null (chosen on the "
                              f"training systems), got {strength_theta!r}")
        self.save_hyperparameters()
        self.net = AMGNet(width, rounds)
        # the checkpoint carries θ and whether it was chosen (a resumed run does not search again)
        self.register_buffer("theta", torch.tensor(float(strength_theta or 0.0), dtype=torch.float64))
        self.register_buffer("theta_chosen", torch.tensor(strength_theta is not None))

    def hierarchy(self, A, correction: bool = True):
        """The learned multilevel solver of matrix ``A`` (CPU; pyamg's cycle); ``correction=False``:
        SA with the learned strength threshold alone (no network in the setup)."""
        return build_hierarchy(A, self.net if correction else None, float(self.theta))

    def _matrices(self, batch) -> list[sp.csr_matrix]:
        op = self.batch_operator(batch)
        matrices = [op.to_sparse(i) for i in range(op.batch_size)]
        big = max(m.shape[0] for m in matrices)
        if big > MAX_TRAINING_UNKNOWNS:
            raise ConfigError(f"LearnedAMG trains on dense copies of each system: {big} unknowns is above "
                              f"{MAX_TRAINING_UNKNOWNS}; train on smaller grids (it is used unchanged at any size)")
        return matrices

    def on_fit_start(self):
        if bool(self.theta_chosen):
            return
        matrices = []
        for k, batch in enumerate(self.trainer.datamodule.train_dataloader()):
            if k >= self.hparams.search_batches:
                break
            matrices += self._matrices(batch)
        theta, table = choose_theta(matrices)
        self.theta.fill_(theta)
        self.theta_chosen.fill_(True)
        self.print(f"LearnedAMG: strength threshold theta = {theta:g}, chosen on {len(matrices)} training systems "
                   "(PCG work per theta: " + ", ".join(f"{t:g}: {w:.1f}" for t, w in table.items()) + ")")

    def training_loss(self, batch):
        losses = []
        for A in self._matrices(batch):
            levels = torch_hierarchy(A, self.net, float(self.theta))
            probes = torch.randn(self.hparams.probes, A.shape[0], dtype=torch.float64, device=self.device)
            losses.append(pcg_error_loss(levels, probes, self.hparams.pcg_steps))
        return torch.stack(losses).mean()

    def default_lr_scheduler(self, optimizer):
        # δ's gradient is noisy (random systems and right-hand sides): a decaying rate makes the
        # final network, not a lucky intermediate one, the good one
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.run_length("step"))
        return {"scheduler": scheduler, "interval": "step"}

    def evaluate(self, batch, prefix: str) -> None:
        super().evaluate(batch, prefix)
        ratios = [pcg_iterations(self.hierarchy(A), A) / pcg_iterations(build_hierarchy(A), A)
                  for A in self._matrices(batch)]
        self.log(f"{prefix}/iteration_ratio", float(np.mean(ratios)), batch_size=len(ratios), prog_bar=True)


THETA_CANDIDATES = (0.0, 0.01, 0.02, 0.03, 0.05, 0.08, 0.12)


def choose_theta(matrices, candidates=THETA_CANDIDATES) -> tuple[float, dict]:
    """The strength threshold of least PCG work with plain SA (iterations to 1e-8 × operator
    complexity, geometric mean over ``matrices``), and the work of every candidate."""
    work = {}
    for theta in candidates:
        logs = []
        for A in matrices:
            ml = build_hierarchy(A, None, theta)
            logs.append(math.log(pcg_iterations(ml, A) * ml.operator_complexity()))
        work[theta] = math.exp(float(np.mean(logs)))
    return min(work, key=work.get), work


def pcg_iterations(ml, A, tol: float = 1e-8, seed: int = 0) -> int:
    """PCG iterations to relative residual ``tol`` with ``ml``'s V-cycle, for a random right-hand side."""
    import scipy.sparse.linalg as spla

    b = np.random.default_rng(seed).standard_normal(A.shape[0])
    steps = []
    spla.cg(A, b, rtol=tol, atol=0.0, maxiter=1000, M=ml.aspreconditioner(), callback=steps.append)
    return max(len(steps), 1)
