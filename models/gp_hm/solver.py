"""GP-HM: a Gaussian-process PDE solver on a collocation grid (Fang et al., "Solving High
Frequency and Multi-Scale PDEs with Gaussian Processes", ICLR 2024).

Unknowns: the solution U on a tensor grid (every grid point is a collocation point).  Prior:
vec U ~ N(0, K₁ ⊗ … ⊗ K_d), one spectral-mixture kernel per axis (:mod:`.kernels`).
Derivatives by the GP conditional mean, per axis: U_xx = K₁″ K₁⁻¹ U.  Objective (negative log
joint, minimised with Adam in float64; reference: λ_b = 200, τ and v learned from 1):

    ½ log|K| + ½ vec(U)ᵀ K⁻¹ vec(U)
      − λ_b [½ N_b log τ − ½ τ ‖U_b − g‖²]      (boundary points: the grid's faces)
      − [½ N_c log v − ½ v ‖R(U)‖²]            (R: the problem's residual at every grid point)

with the Kronecker algebra of :mod:`.kronecker` (never the full N×N matrix).  Prediction at any
point is the conditional mean k(x, X) K⁻¹ vec U.

The additive second process (``second_kernel``; the reference's ``model_GP_solver_1d_extra.py``,
which it uses on its two hardest problems): u = U + U₂ with an independent prior U₂ ~ N(0, ⊗K₂,d)
of its own kernel (the reference: one Matérn-5/2 component) for the low-frequency / polynomial part
the mixture fits slowly.  As in the reference it is trained in two stages: the first
``second_start`` of the steps fit U alone; then U and its kernels are frozen and U₂, its kernels and
its own τ₂ (starting from τ) and v₂ (from 1) are fitted to the same likelihood with u = U + U₂.

Defaults from the grid and the data, never from the problem's name: ``jitter`` 10^(−6/d)
(κ(⊗K_d) = Π κ(K_d), so the Kronecker product of d factors each jittered by this stays as well
conditioned as the reference's 1-D 1e-6; measured: 1e-6 leaves a 200² grid at relative L2 0.98,
1e-3 trains), and ``max_frequency`` per axis from the source's spectrum on the grid, capped at the
grid's Nyquist frequency (:func:`default_max_frequency`).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from models.gp_hm.kernels import SpectralMixtureKernel
from models.gp_hm.kronecker import KroneckerFactors, mode_product
from pdekit.problems import Problem


MAX_POINTS_PER_AXIS = 8192
MAX_GRID_POINTS = 2**26
SECOND_KINDS = ("matern", "se", "stm", "gm")


def default_jitter(dim: int) -> float:
    """The nugget on each axis's kernel matrix: 10^(−6/d) (1e-6 in 1-D as the reference, 1e-3 in 2-D)."""
    return 10.0 ** (-6.0 / dim)


SOURCE_POWER = 0.99  # the share of the source's power the initial frequencies cover


def default_max_frequency(bounds, sizes, source: torch.Tensor | None = None) -> list[float]:
    """Per axis, the top of the initial frequency range μ ∈ [0, this]: 1.25 × the frequency below
    which 99% of the source's power lies along the axis (Hann-windowed FFT of f on the grid, its
    mean removed: for −Δu = f the solution's frequencies are the source's), at least one cycle over
    the axis and at most the grid's Nyquist frequency (half the points per unit length).  Without
    a source, half that cap (≥ 4 points per period)."""
    result = []
    for axis, ((lo, hi), n) in enumerate(zip(bounds, sizes)):
        cap, floor = (n - 1) / (hi - lo) / 2, 1.0 / (hi - lo)
        if source is None:
            result.append(cap / 2)
            continue
        lines = source.movedim(axis, -1).reshape(-1, n)
        lines = lines - lines.mean(-1, keepdim=True)
        window = torch.hann_window(n, periodic=False, dtype=lines.dtype, device=lines.device)
        power = torch.fft.rfft(lines * window).abs().pow(2).sum(0)
        if not float(power.sum()) > 0:
            result.append(min(cap, floor))
            continue
        share = power.cumsum(0) / power.sum()
        frequency = torch.fft.rfftfreq(n, d=(hi - lo) / (n - 1))[int((share >= SOURCE_POWER).nonzero()[0])]
        result.append(min(cap, max(floor, 1.25 * float(frequency))))
    return result


def _check_number(name: str, value, positive: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or (value <= 0 if positive else value < 0):
        raise ValueError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}")


def _frequencies(max_frequency, count: int) -> list[float]:
    """One max_frequency per axis from a number, a list, or None (filled in by the caller)."""
    values = list(max_frequency) if isinstance(max_frequency, (list, tuple)) else [max_frequency] * count
    if len(values) != count:
        raise ValueError(f"max_frequency: need one value or {count}, got {max_frequency}")
    for value in values:
        _check_number("max_frequency", value, positive=True)
    return [float(v) for v in values]


class GridGP(nn.Module):
    """GP-HM on a tensor grid of collocation points (the module's docstring has the objective).

    Args:
        problem: a :class:`pdekit.problems.Problem` (a box domain).
        points: collocation points per axis (an int for all axes, or one per axis).
        kernel: ``stm`` | ``gm`` (GP-HM) or ``se`` | ``matern`` (plain GP baselines).
        components: Q per axis (reference 30).
        max_frequency: μ initialised on linspace(0, 1, Q) times this; a number, one per axis, or
            None for :func:`default_max_frequency`.
        boundary_weight: λ_b (reference 200).
        jitter: added to each K_d's diagonal; None for :func:`default_jitter` (1e-6 in 1-D as
            the reference, 1e-3 in 2-D).
        second_kernel: the additive second process's kernel; None (off), ``matern`` (the
            reference's), ``se``, ``stm`` or ``gm``.
        second_components: the second process's Q (for the mixtures).
        second_max_frequency: the second process's μ range (for the mixtures).
        second_start: the fraction of the steps after which the second process takes over
            (reference 0.01).
    """

    def __init__(self, problem: Problem, points, kernel: str = "stm", components: int = 30,
                 max_frequency=None, boundary_weight: float = 200.0, jitter: float | None = None,
                 second_kernel: str | None = None, second_components: int = 1, second_max_frequency: float = 1.0,
                 second_start: float = 0.01):
        super().__init__()
        if not problem.is_box:
            raise ValueError(f"problem {problem.name}: GP-HM needs a box domain (its unknowns are a tensor grid), "
                             f"not {problem.domain}")
        sizes = [int(points)] * problem.dim if isinstance(points, (int, float)) else [int(p) for p in points]
        if len(sizes) != problem.dim or min(sizes) < 3:
            raise ValueError(f"points: need {problem.dim} sizes >= 3, got {points}")
        # each axis holds dense n x n kernel matrices and the grid holds prod(n) values: bounded so a
        # typo (points: 1e8) is refused instead of allocating tens of GB
        if max(sizes) > MAX_POINTS_PER_AXIS or math.prod(sizes) > MAX_GRID_POINTS:
            raise ValueError(f"points: at most {MAX_POINTS_PER_AXIS} per axis and {MAX_GRID_POINTS} in all, "
                             f"got {sizes}")
        jitter = default_jitter(problem.dim) if jitter is None else jitter
        _check_number("jitter", jitter, positive=False)
        _check_number("boundary_weight", boundary_weight, positive=False)
        for name, value in (("components", components), ("second_components", second_components)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if second_kernel is not None and second_kernel not in SECOND_KINDS:
            raise ValueError(f"second_kernel must be one of {', '.join(SECOND_KINDS)} or null, got {second_kernel!r}")
        _check_number("second_max_frequency", second_max_frequency, positive=True)
        _check_number("second_start", second_start, positive=False)
        if second_start >= 1:
            raise ValueError(f"second_start is a fraction of the steps in [0, 1), got {second_start!r}")
        self.problem, self.sizes = problem, sizes
        self.boundary_weight, self.jitter = float(boundary_weight), float(jitter)
        for axis, ((lo, hi), n) in enumerate(zip(problem.bounds, sizes)):
            self.register_buffer(f"axis{axis}", torch.linspace(lo, hi, n, dtype=torch.float64))
        points_ = self.grid_points()
        source = problem.source(points_).reshape(sizes)
        frequencies = _frequencies(default_max_frequency(problem.bounds, sizes, source) if max_frequency is None
                                   else max_frequency, problem.dim)
        self.kernels = nn.ModuleList(SpectralMixtureKernel(kernel, components, mu) for mu in frequencies)
        self.u = nn.Parameter(torch.zeros(sizes, dtype=torch.float64))
        self.log_tau = nn.Parameter(torch.zeros((), dtype=torch.float64))
        self.log_v = nn.Parameter(torch.zeros((), dtype=torch.float64))
        self.second_start = float(second_start)
        self.second = None if second_kernel is None else SecondProcess(second_kernel, second_components,
                                                                         second_max_frequency, sizes)
        boundary = torch.zeros(sizes, dtype=torch.bool)
        for axis, n in enumerate(sizes):
            index = [slice(None)] * len(sizes)
            for end in (0, n - 1):
                index[axis] = end
                boundary[tuple(index)] = True
        self.register_buffer("boundary", boundary)
        self.register_buffer("f", source)
        self.register_buffer("g", problem.boundary(points_[boundary.flatten()]))

    def axes(self) -> list[torch.Tensor]:
        return [getattr(self, f"axis{i}") for i in range(len(self.sizes))]

    def grid_points(self) -> torch.Tensor:
        return torch.stack(torch.meshgrid(*self.axes(), indexing="ij"), -1).reshape(-1, len(self.sizes))

    def _factors(self, kernels=None):
        # the collocation axes are equally spaced: Toeplitz kernel matrices (kernels.on_uniform_grid)
        pairs = [kernel.on_uniform_grid(x) for kernel, x in zip(kernels or self.kernels, self.axes())]
        return KroneckerFactors([K for K, _ in pairs], self.jitter), [K2 for _, K2 in pairs]

    @staticmethod
    def _laplacian(u, factors, second) -> torch.Tensor:
        return sum(mode_product(factors.inverse_applied(axis, K2), u, axis) for axis, K2 in enumerate(second))

    def laplacian(self, factors=None, second=None) -> torch.Tensor:
        """ΔU on the grid by the conditional mean, axis by axis (the first process)."""
        if factors is None:
            factors, second = self._factors()
        return self._laplacian(self.u, factors, second)

    @property
    def second_active(self) -> bool:
        return self.second is not None and bool(self.second.started)

    def start_second(self) -> None:
        """Freeze the first process and hand the fit to the second (τ₂ starts from τ, v₂ from 1)."""
        if self.second is None or self.second_active:
            return
        with torch.no_grad():
            self.second.log_tau.copy_(self.log_tau)
            self.second.log_v.zero_()
            self.second.started.fill_(True)

    def loss(self) -> dict:
        """The negative log joint.  With the second process started, the first one is a constant
        (no gradient reaches it) and the likelihood uses the second's τ₂, v₂ on u = U + U₂."""
        if self.second_active:
            u, u_xx = self._frozen_first()
            factors, second = self._factors(self.second.kernels)
            u = u + self.second.u
            u_xx = u_xx + self._laplacian(self.second.u, factors, second)
            prior_u, log_tau, log_v = self.second.u, self.second.log_tau, self.second.log_v
        else:
            factors, second = self._factors()
            u, prior_u, log_tau, log_v = self.u, self.u, self.log_tau, self.log_v
            u_xx = self._laplacian(u, factors, second)
        prior = 0.5 * factors.logdet() + 0.5 * factors.quadratic(prior_u)
        tau, v = log_tau.exp(), log_v.exp()
        boundary_error = (u[self.boundary] - self.g).pow(2).sum()
        n_b = int(self.boundary.sum())
        boundary = -self.boundary_weight * (0.5 * n_b * log_tau - 0.5 * tau * boundary_error)
        residual = self.problem.residual(u, u_xx, self.f)
        pde = -(0.5 * residual.numel() * log_v - 0.5 * v * residual.pow(2).sum())
        return {"loss": prior + boundary + pde, "prior": prior.detach(), "boundary_mse": (boundary_error / n_b).detach(),
                "residual_mse": residual.pow(2).mean().detach()}

    def _frozen_first(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(U, ΔU) of the frozen first process, recomputed only when its parameters change (a load,
        a move): otherwise every second-stage step would factor its kernels again for the same values."""
        parameters = (self.u, *self.kernels.parameters())
        key = tuple((p.data_ptr(), p._version, p.device, p.dtype) for p in parameters)
        if getattr(self, "_frozen_key", None) != key:
            with torch.no_grad():
                self._frozen = (self.u.detach().clone(), self.laplacian())
            self._frozen_key = key
        return self._frozen

    def _processes(self):
        """(kernels, U) of each process whose mean is part of the solution."""
        yield self.kernels, self.u
        if self.second_active:
            yield self.second.kernels, self.second.u

    @torch.no_grad()
    def predict(self, x: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
        """The conditional mean at points ``x`` (n, dim), in chunks of points (the per-point cross
        kernels hold chunk × N × Q numbers)."""
        total = 0
        for kernels, u in self._processes():
            factors, _ = self._factors(kernels)
            alpha = factors.solve(u)  # (⊗K)⁻¹ vec U as a grid
            x = x.to(alpha)
            parts = []
            for block in x.split(chunk):
                out = None
                for axis, (kernel, grid_axis) in enumerate(zip(kernels, self.axes())):
                    cross = kernel(block[:, axis], grid_axis)  # (n, N_axis)
                    out = (cross @ alpha.reshape(alpha.shape[0], -1)).reshape(len(block), *alpha.shape[1:]) \
                        if out is None else torch.einsum("ij...,ij->i...", out, cross)
                parts.append(out)
            total = total + torch.cat(parts)
        return total

    @torch.no_grad()
    def predict_grid(self, axes: list[torch.Tensor]) -> torch.Tensor:
        """The conditional mean on the tensor grid ``axes`` (one 1-D tensor per axis):
        K₁(x*, X) ⋯ applied along each axis to (⊗K)⁻¹ vec U — never a point-by-grid matrix."""
        total = 0
        for kernels, u in self._processes():
            factors, _ = self._factors(kernels)
            out = factors.solve(u)
            for axis, (kernel, grid_axis, test_axis) in enumerate(zip(kernels, self.axes(), axes)):
                out = mode_product(kernel(test_axis.to(out), grid_axis), out, axis)
            total = total + out
        return total

    @torch.no_grad()
    def relative_error(self, points: int = 300, chunk: int = 2**20) -> float:
        """Relative L2 error against the exact solution on a uniform test grid (``points`` per axis),
        in slabs along the first axis of at most ``chunk`` points (memory bounded in any dimension)."""
        axes = [torch.linspace(lo, hi, points, dtype=torch.float64, device=self.u.device) for lo, hi in self.problem.bounds]
        rows = max(1, chunk // max(1, points ** (len(axes) - 1)))
        error = norm = 0.0
        for slab in axes[0].split(rows):
            slab_axes = [slab, *axes[1:]]
            x = torch.stack(torch.meshgrid(*slab_axes, indexing="ij"), -1).reshape(-1, len(axes))
            exact = self.problem.solution(x)
            error += float((self.predict_grid(slab_axes).reshape(-1) - exact).pow(2).sum())
            norm += float(exact.pow(2).sum())
        return math.sqrt(error / norm)

    def frequencies(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(μ_q, w_q) per axis, to see which frequencies the kernel kept."""
        return [(k.frequency.detach().clone(), k.weights().detach().clone()) for k in self.kernels]


class SecondProcess(nn.Module):
    """The additive second process's parameters: its kernels (one per axis), U₂ (zeros), τ₂, v₂ and
    whether it has started (a buffer, so a checkpoint resumes in the right stage)."""

    def __init__(self, kind: str, components: int, max_frequency: float, sizes):
        super().__init__()
        self.kernels = nn.ModuleList(SpectralMixtureKernel(kind, components, max_frequency) for _ in sizes)
        self.u = nn.Parameter(torch.zeros(sizes, dtype=torch.float64))
        self.log_tau = nn.Parameter(torch.zeros((), dtype=torch.float64))
        self.log_v = nn.Parameter(torch.zeros((), dtype=torch.float64))
        self.register_buffer("started", torch.tensor(False))


def second_start_step(gp: GridGP, steps: int) -> int | None:
    """The step at which the second process takes over in a run of ``steps`` (None: it has none)."""
    return None if gp.second is None else int(round(gp.second_start * steps))


def fit(gp: GridGP, steps: int, lr: float = 0.01, progress=None, decay: float = 1.0) -> list[float]:
    """Adam on the negative log joint; returns the loss history.  ``decay``: the learning rate's
    factor at the last step, reached exponentially (1: constant, the reference); the second process
    (if any) starts at :func:`second_start_step`."""
    optimiser = torch.optim.Adam(gp.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimiser, decay ** (1 / max(steps - 1, 1)))
    switch = second_start_step(gp, steps)
    history = []
    for step in range(steps):
        if step == switch:
            gp.start_second()
        optimiser.zero_grad()
        loss = gp.loss()["loss"]
        loss.backward()
        optimiser.step()
        scheduler.step()
        history.append(float(loss.detach()))
        if progress is not None:
            progress()
    if not math.isfinite(history[-1]):
        raise FloatingPointError("the GP objective became non-finite; lower lr or raise jitter")
    return history
