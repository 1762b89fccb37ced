"""Derivatives of a function of the points by automatic differentiation, for PINN-type residuals
and for deriving sources from exact solutions: ∇u and Δu = Σ_i ∂²u/∂x_i² (d extra backward
passes, exact up to rounding)."""
from __future__ import annotations

import torch


def gradient_and_laplacian(u: torch.Tensor, x: torch.Tensor, create_graph: bool = True):
    """(∇u (n, d), Δu (n,)) of ``u`` (n,) computed from ``x`` (n, d, ``requires_grad``).  With
    ``create_graph`` the result can be differentiated again (training a network on a residual)."""
    (grad,) = torch.autograd.grad(u.sum(), x, create_graph=True)
    if not grad.requires_grad:  # u is (at most) linear in x: no second derivatives
        return grad if create_graph else grad.detach(), torch.zeros_like(u)
    laplacian = torch.zeros_like(u)
    for i in range(x.shape[1]):
        (second,) = torch.autograd.grad(grad[:, i].sum(), x, create_graph=create_graph, retain_graph=True,
                                        allow_unused=True)
        if second is not None:
            laplacian = laplacian + second[:, i]
    return (grad, laplacian) if create_graph else (grad.detach(), laplacian.detach())
