"""FK-PINN: a physics-informed network with Monte Carlo Feynman–Kac supervision (Tepakbong, Hu,
Liu, Zhou, arXiv 2606.00643).

Loss per step (collocation and boundary points resampled every step from a seeded stream):

    mean_c R(u_θ)(x_c)²  +  β · mean_b (u_θ(x_b) − g(x_b))²  +  λ · mean_i w_i (u_θ(x_i) − ŷ_i)²

with R the problem's residual (:mod:`pdekit.problems`, derivatives by autograd), (x_i, ŷ_i ± s_i)
the Feynman–Kac labels of ``datagen feynman-kac`` and w_i = 1, or with ``inverse_variance``
w_i = s̄²/s_i² (mean 1, so λ keeps its scale).  λ = 0 is the plain PINN, in the same code.
The paper's argument: the pointwise data term lifts the small end of the spectrum of the loss's
Gauss–Newton matrix (the smooth modes a residual loss barely sees), so κ drops.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from pdekit.problems.autodiff import gradient_and_laplacian
from pdekit.errors import ConfigError
from pdekit.learning.evaluation.problems import TEST_SEED
from pdekit.problems import Problem, get
from pdekit.learning.task import Task, check_learning_rate


class TanhMLP(nn.Module):
    """x (n, dim) → u (n,): ``depth`` hidden tanh layers of ``width``, float64; inputs mapped from
    the problem's bounding box to [−1, 1]."""

    def __init__(self, dim: int, width: int = 64, depth: int = 4, bounds=None):
        super().__init__()
        if not (isinstance(width, int) and width >= 1 and isinstance(depth, int) and depth >= 1):
            raise ValueError(f"width and depth must be integers >= 1, got {width} and {depth}")
        layers, size = [], dim
        for _ in range(depth):
            layers += [nn.Linear(size, width), nn.Tanh()]
            size = width
        self.net = nn.Sequential(*layers, nn.Linear(size, 1)).double()
        bounds = bounds or ((-1.0, 1.0),) * dim
        self.register_buffer("lo", torch.tensor([b[0] for b in bounds], dtype=torch.float64))
        self.register_buffer("hi", torch.tensor([b[1] for b in bounds], dtype=torch.float64))

    def forward(self, x):
        return self.net(2 * (x - self.lo) / (self.hi - self.lo) - 1)[:, 0]


def pinn_terms(network, problem: Problem, interior, boundary, labels=None, weights=None):
    """(mean squared residual, mean squared boundary error, weighted mean squared label error)."""
    x = interior.detach().requires_grad_(True)
    u = network(x)
    grad, laplacian = gradient_and_laplacian(u, x)
    residual = problem.residual(u, laplacian, problem.source(interior), grad, x)
    boundary_error = _boundary_errors(network, problem, boundary).mean()
    if labels is None:
        return residual.pow(2).mean(), boundary_error, torch.zeros((), dtype=u.dtype, device=u.device)
    points, values = labels
    data = (network(points) - values).pow(2)
    return residual.pow(2).mean(), boundary_error, (data if weights is None else weights * data).mean()


def _boundary_errors(network, problem: Problem, boundary):
    """(u − g)² at Dirichlet boundary points; (∂u/∂n)² on reflecting box faces (committors)."""
    domain = problem.domain
    if not domain.box_faces_reflect:
        return (network(boundary) - problem.boundary(boundary)).pow(2)
    on_face = domain.on_box_face(boundary)
    x = boundary.detach().requires_grad_(True)
    u = network(x)
    (grad,) = torch.autograd.grad(u.sum(), x, create_graph=True)
    normal_derivative = (grad * domain.box.normal(boundary)).sum(-1)
    return torch.where(on_face, normal_derivative.pow(2), (u - problem.boundary(boundary)).pow(2))


class FKPINN(Task):
    """The FK-PINN task: a tanh MLP trained on the PDE residual, the boundary and (optionally)
    Feynman–Kac labels of an analytic problem.

    Args:
        problem: filled in from the data module (``ProblemDataModule``); its ``labels`` file gives
            the Feynman–Kac labels.
        width, depth: the tanh MLP.
        collocation, boundary_points: points per step (resampled every step).
        boundary_weight: β.  label_weight: λ (0: the plain PINN).  inverse_variance: weight each
            label by its inverse Monte Carlo variance (normalised to mean 1).
        lr: Adam.  seed: the collocation stream.  test_points: held-out interior points for the
            relative L2 logged at each epoch's end (the current model; never a best over epochs).
        in_channels, out_channels, dim: linked by ``pdekit fit``.
    """

    data_source = "problem"

    def __init__(self, problem: str | None = None, width: int = 64, depth: int = 4, collocation: int = 1000,
                 boundary_points: int = 200, boundary_weight: float = 10.0, label_weight: float = 0.0,
                 inverse_variance: bool = False, lr: float = 1e-3, seed: int = 0, test_points: int = 2000,
                 in_channels: int = 2, out_channels: int = 1, dim: int = 2, optimizer: dict | None = None,
                 lr_scheduler: dict | str | None = None):
        super().__init__(optimizer, lr_scheduler)
        check_learning_rate(lr)
        for name, value in (("collocation", collocation), ("boundary_points", boundary_points),
                            ("test_points", test_points)):
            if not (isinstance(value, int) and value >= 1):
                raise ConfigError(f"model.init_args.{name} must be an integer >= 1, got {value}")
        for name, value in (("boundary_weight", boundary_weight), ("label_weight", label_weight)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"model.init_args.{name} must be a finite number >= 0, got {value}")
        self.save_hyperparameters()
        self.problem = get(problem) if problem is not None else None
        try:
            self.network = TanhMLP(dim, width, depth, self.problem.bounds if self.problem else None)
        except ValueError as err:
            raise ConfigError(f"model.init_args: {err}") from None
        self.labels = None  # (points, values), from the data module
        self.label_weights = None

    def take_data(self, datamodule):
        problem = datamodule.problem
        if problem.dim != self.hparams.dim:
            raise ConfigError(f"model.init_args.dim {self.hparams.dim} does not match problem {problem.name} "
                              f"(dimension {problem.dim})")
        self.problem = problem
        self.hparams.problem = problem.name  # saved with the checkpoint
        with torch.no_grad():  # the input map follows the problem's box
            self.network.lo.copy_(torch.tensor([b[0] for b in problem.bounds], dtype=torch.float64))
            self.network.hi.copy_(torch.tensor([b[1] for b in problem.bounds], dtype=torch.float64))
        labels = getattr(datamodule, "label_arrays", None)
        if self.hparams.label_weight > 0 and labels is None:
            raise ConfigError("model.init_args.label_weight > 0 needs Feynman–Kac labels: set data.init_args.labels "
                              "to a file written by `datagen feynman-kac`")
        if labels is not None:
            points, values, stderr = (torch.as_tensor(a, dtype=torch.float64, device=self.device) for a in labels)
            self.labels = (points, values)
            if self.hparams.inverse_variance:
                variance = stderr.pow(2).clamp_min(1e-30)
                self.label_weights = variance.mean() / variance

    def _points(self, step: int):
        generator = torch.Generator().manual_seed(int(self.hparams.seed) * 2**32 + step)
        domain = self.problem.domain
        interior = domain.sample_interior(self.hparams.collocation, generator)
        boundary = domain.sample_boundary(self.hparams.boundary_points, generator)
        return interior.to(self.device), boundary.to(self.device)

    def training_loss(self, batch):
        interior, boundary = self._points(self.global_step)
        labels = None
        if self.labels is not None and self.hparams.label_weight > 0:
            labels = (self.labels[0].to(self.device), self.labels[1].to(self.device))
        residual, boundary_error, data = pinn_terms(self.network, self.problem, interior, boundary, labels,
                                                    None if self.label_weights is None else self.label_weights.to(self.device))
        h = self.hparams
        loss = residual + h.boundary_weight * boundary_error + h.label_weight * data
        return {"loss": loss, "residual": residual, "boundary": boundary_error, "data": data}

    @torch.no_grad()
    def relative_error(self, points: int | None = None) -> float:
        """Relative L2 against the exact solution at held-out uniform interior points."""
        generator = torch.Generator().manual_seed(TEST_SEED)
        x = self.problem.domain.sample_interior(points or self.hparams.test_points, generator).to(self.device)
        exact = self.problem.solution(x)
        return float((self.network(x) - exact).norm() / exact.norm())

    def on_train_epoch_end(self):
        if self.problem.exact is not None:
            self.log("train/rel_l2", self.relative_error(), prog_bar=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """u at points ``x`` (n, dim)."""
        return self.network(x.to(torch.float64))
