"""The MMCL loss (SPEC §3): one kernel SVM per anchor separates its positive from the negatives."""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from constrained_pairs._validation import as_tensor, check_choice, check_positive_int
from constrained_pairs.errors import InvalidArgumentError, InvalidTypeError
from constrained_pairs.mmcl.dual import explicit_q, implicit_beta, negatives_index, solve_dual
from constrained_pairs.mmcl.kernels import KERNELS, kernel_matrix
from constrained_pairs.qp.info import MAX_ITER, SOLVED, QPInfo

GRADIENTS = ("detach", "implicit")
BACKENDS = ("native", "qpth", "cvxpylayers")


def _positive(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidTypeError(f"{name} must be a real number, got {value!r}")
    if not value > 0 or value == float("inf"):
        raise InvalidArgumentError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


class MMCLLoss(nn.Module):
    """Max-margin contrastive loss of Shah et al. (AAAI 2022), SPEC §3.

    For each anchor t the view-1 embeddings give a kernel SVM dual over the negatives j ≠ t,
    ``β_t = argmin_{0 ≤ β ≤ C} ½ βᵀQ_tβ - 2·1ᵀβ`` with
    ``Q_t[i, j] = K_tt + ρδ_ij + K(x_i, x_j) - K(x_t, x_i) - K(x_t, x_j)``; the loss is

        L = 1/B Σ_t [ Σ_{j≠t} β_tj K(x_j, z_t) - (Σ_j β_tj) K(x_t, z_t) ]

    with z_t the view-2 embedding of sample t. Embeddings are L2-normalised inside.

    Args:
        kernel: ``"rbf"`` exp(-‖x - y‖²/sigma), ``"linear"`` xᵀy or ``"poly"`` (xᵀy + coef0)^degree.
        sigma: RBF bandwidth σ > 0.
        C: upper bound of the box, or None for β ≥ 0 only (the reference default).
        rho: ridge ρ > 0 added to the diagonal of every Q_t.
        grad: ``"detach"`` (β is a constant, as in the reference code) or ``"implicit"`` (β is
            differentiated through the KKT conditions of the duals). Caution: the implicit
            gradient also lets the encoder lower L by inflating β (negatives pulled towards
            their anchor shrink Q_t), and pretraining with it collapses the embeddings on
            digits and MNIST-5k (``benchmarks/results/mmcl.md``); it is exact, not a better
            training signal.
        backend: ``"native"`` (this package's structured exact solver: all B duals share K, so a
            step over all anchors costs about one B×B matmul), or ``"qpth"`` / ``"cvxpylayers"``
            through :func:`constrained_pairs.qp.solve_qp` on the written-out (B, B-1, B-1) Q_t.
        degree: degree p of the polynomial kernel.
        coef0: offset c ≥ 0 of the polynomial kernel.

    Attributes:
        last_info: :class:`constrained_pairs.qp.QPInfo` of the last forward (per anchor:
            ``converged``, ``iterations``, ``kkt_residual``, ``status``); None before the first.
        last_beta: (B, B) dual variables of the last forward (row t is β_t; detached).
        tol: KKT tolerance of the solves (None: 1e-8 in float64, 1e-5 in float32).
        max_iter: active-set iteration cap of the native solver.

    Example:
        >>> loss_fn = MMCLLoss()                     # RBF, σ = 5, C = ∞, ρ = 0.1
        >>> loss = loss_fn(encoder(view1), encoder(view2))
        >>> loss.backward(); loss_fn.last_info.kkt_residual.max()
    """

    def __init__(
        self,
        kernel: str = "rbf",
        sigma: float = 5.0,
        C: float | None = None,
        rho: float = 0.1,
        grad: str = "detach",
        backend: str = "native",
        degree: int = 3,
        coef0: float = 0.5,
    ) -> None:
        super().__init__()
        self.kernel = check_choice("kernel", kernel, KERNELS)
        self.sigma = _positive("sigma", sigma)
        self.C = None if C is None else _positive("C", C)
        self.rho = _positive("rho", rho)
        self.grad = check_choice("grad", grad, GRADIENTS)
        self.backend = check_choice("backend", backend, BACKENDS)
        self.degree = check_positive_int("degree", degree)
        if isinstance(coef0, bool) or not isinstance(coef0, int | float) or not coef0 >= 0:
            raise InvalidArgumentError(f"coef0 must be a number >= 0, got {coef0!r}")
        self.coef0 = float(coef0)
        self.tol: float | None = None
        self.max_iter = 100
        self.last_info: QPInfo | None = None
        self.last_beta: torch.Tensor | None = None

    def extra_repr(self) -> str:
        return (f"kernel={self.kernel!r}, sigma={self.sigma}, C={self.C}, rho={self.rho}, "
                f"grad={self.grad!r}, backend={self.backend!r}")

    def gram(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Kernel matrix of this loss between two sets of (already normalised) embeddings."""
        return kernel_matrix(x, y, self.kernel, sigma=self.sigma, degree=self.degree,
                             coef0=self.coef0)

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """The scalar MMCL loss of the two views' embeddings z1, z2 of shape (B, d), B ≥ 2."""
        z1 = as_tensor("z1", z1, ndim=2)
        z2 = as_tensor("z2", z2, ndim=2)
        if z1.shape != z2.shape:
            raise InvalidArgumentError(
                f"z1 and z2 must have the same shape (B, d), got {tuple(z1.shape)} and "
                f"{tuple(z2.shape)}"
            )
        if z1.shape[0] < 2:
            raise InvalidArgumentError(f"MMCLLoss needs a batch of at least 2, got {z1.shape[0]}")
        if not z1.is_floating_point():
            raise InvalidTypeError(f"z1 must be a floating tensor, got {z1.dtype}")
        x = F.normalize(z1, dim=1)
        z = F.normalize(z2.to(z1.dtype), dim=1)
        gram_x = self.gram(x, x)
        beta = self._solve(gram_x)
        self.last_beta = beta.detach()
        # cross[j, t] = K(x_j, z_t); β_x,t K(x_t, z_t) uses the diagonal.
        cross = self.gram(x, z)
        batch = x.shape[0]
        return ((beta * cross.T).sum() - (beta.sum(1) * cross.diagonal()).sum()) / batch

    def _solve(self, gram_x: torch.Tensor) -> torch.Tensor:
        implicit = self.grad == "implicit"
        if self.backend == "native":
            solution = solve_dual(gram_x, self.rho, self.C, tol=self.tol, max_iter=self.max_iter)
            tol = self.tol or (1e-8 if gram_x.dtype == torch.float64 else 1e-5)
            self.last_info = _native_info(solution, tol)
            return implicit_beta(gram_x, solution) if implicit else solution.beta
        from constrained_pairs.qp import solve_qp

        batch = gram_x.shape[0]
        source = gram_x if implicit else gram_x.detach()
        q = explicit_q(source, self.rho)
        p = torch.full((batch, batch - 1), -2.0, dtype=q.dtype, device=q.device)
        with torch.set_grad_enabled(implicit and torch.is_grad_enabled()):
            z, self.last_info = solve_qp(q, p, lower=0.0, upper=self.C, backend=self.backend,
                                         tol=self.tol, return_info=True)
        index = negatives_index(batch, gram_x.device)
        return torch.zeros_like(gram_x).scatter(1, index, z)


def _native_info(solution, tol: float) -> QPInfo:
    """QPInfo of the structured solve; warns when some anchor's dual did not converge."""
    converged = solution.converged
    status = tuple(SOLVED if ok else MAX_ITER for ok in converged.tolist())
    iterations = torch.full_like(converged, solution.iterations, dtype=torch.long)
    if MAX_ITER in status:
        warnings.warn(
            f"MMCLLoss: {status.count(MAX_ITER)} of {len(status)} anchor duals did not converge "
            f"(largest KKT residual {float(solution.kkt_residual.max()):.3g} > tol {tol:.3g}); "
            "see MMCLLoss.last_info",
            RuntimeWarning,
            stacklevel=4,
        )
    return QPInfo(converged, iterations, solution.kkt_residual, status, "native", tol)
