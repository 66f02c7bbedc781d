"""The MMCL loss (SPEC §3): one kernel SVM per anchor separates its positive from the negatives."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from constrained_pairs._validation import (
    as_tensor,
    check_choice,
    check_flag,
    check_float_dtype,
    check_positive_int,
    check_real,
)
from constrained_pairs.errors import InvalidArgumentError, InvalidTypeError
from constrained_pairs.losses.nce import all_gather_views, global_sum
from constrained_pairs.mmcl.kernels import KERNELS, kernel_matrix
from constrained_pairs.qp import QPInfo, solve_qp, svm_duals
from constrained_pairs.qp.problem import check_options
from constrained_pairs.qp.svm import GRADIENTS
from constrained_pairs.qp.svm_structure import negatives_index, q_on

#: ``"structured"``: :func:`constrained_pairs.qp.svm_duals`; the others: ``solve_qp`` backends on
#: the explicit Q_t.
BACKENDS = ("structured", "native", "qpth", "cvxpylayers")


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
        backend: ``"structured"`` (default: :func:`constrained_pairs.qp.svm_duals`, the exact
            solver that exploits the shared kernel matrix: a step over all anchors costs about
            one B×B matmul), or ``"native"`` / ``"qpth"`` / ``"cvxpylayers"``: the
            :func:`constrained_pairs.qp.solve_qp` backends on the written-out (B, B-1, B-1) Q_t.
        degree: degree p ≥ 1 of the polynomial kernel.
        coef0: finite offset c ≥ 0 of the polynomial kernel.
        tol: KKT tolerance of the solves (None: 1e-8 in float64, 1e-5 in float32).
        max_iter: iteration cap of the solver (None: its default, 100 for ``"structured"``).
        gather: data parallelism (SPEC §6). None: all-gather the embeddings whenever a
            ``torch.distributed`` process group is initialised; True / False force it. When
            gathering, both views are all-gathered with gradients, this rank solves the duals
            of its own anchors (its slice of the global batch) against every negative of the
            global batch, and the value returned is the global loss. The gradients reaching
            this rank's embeddings are those of the global loss (the single-process gradients
            of the concatenated batch): ``DistributedDataParallel``, which averages parameter
            gradients over ranks, then gives ``1/world_size`` of them (scale the loss or the
            learning rate by the world size to match a single process).

    Attributes:
        last_info: :class:`constrained_pairs.qp.QPInfo` of the last forward (per anchor:
            ``converged``, ``iterations``, ``kkt_residual``, ``status``); None before the first.
        last_beta: (B, B) dual variables of the last forward (row t is β_t; detached); with
            gathering (B_local, B_global), the rows of this rank's anchors.

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
        backend: str = "structured",
        degree: int = 3,
        coef0: float = 0.5,
        *,
        tol: float | None = None,
        max_iter: int | None = None,
        gather: bool | None = None,
    ) -> None:
        super().__init__()
        self.kernel = check_choice("kernel", kernel, KERNELS)
        self.sigma = check_real("sigma", sigma, minimum=0.0, open_minimum=True)
        self.C = None if C is None else check_real("C", C, minimum=0.0, open_minimum=True)
        self.rho = check_real("rho", rho, minimum=0.0, open_minimum=True)
        self.grad = check_choice("grad", grad, GRADIENTS)
        self.backend = check_choice("backend", backend, BACKENDS)
        self.degree = check_positive_int("degree", degree)
        self.coef0 = check_real("coef0", coef0, minimum=0.0)
        self.gather = None if gather is None else check_flag("gather", gather)
        self.tol = tol
        self.max_iter = max_iter
        self.last_info: QPInfo | None = None
        self.last_beta: torch.Tensor | None = None

    @property
    def tol(self) -> float | None:
        """KKT tolerance of the solves (None: 1e-8 in float64, 1e-5 in float32)."""
        return self._tol

    @tol.setter
    def tol(self, value: float | None) -> None:
        self._tol = None if value is None else check_options(value, None, torch.float64)[0]

    @property
    def max_iter(self) -> int | None:
        """Iteration cap of the solver (None: the solver's default)."""
        return self._max_iter

    @max_iter.setter
    def max_iter(self, value: int | None) -> None:
        self._max_iter = check_options(1.0, value, torch.float64)[1]

    def extra_repr(self) -> str:
        return (
            f"kernel={self.kernel!r}, sigma={self.sigma}, C={self.C}, rho={self.rho}, "
            f"grad={self.grad!r}, backend={self.backend!r}"
        )

    def gram(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Kernel matrix of this loss between two sets of (already normalised) embeddings."""
        return kernel_matrix(
            x, y, self.kernel, sigma=self.sigma, degree=self.degree, coef0=self.coef0
        )

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """The scalar MMCL loss of the two views' embeddings z1, z2 of shape (B, d), B ≥ 2.

        Like PyTorch's losses, z1 and z2 must be floating tensors (float32 or float64) of one
        dtype: lists, arrays and mixed dtypes raise :class:`InvalidTypeError`.
        """
        for name, t in (("z1", z1), ("z2", z2)):
            if not isinstance(t, torch.Tensor):
                raise InvalidTypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        z1 = as_tensor("z1", z1, ndim=2)
        z2 = as_tensor("z2", z2, ndim=2)
        if z1.shape != z2.shape:
            raise InvalidArgumentError(
                f"z1 and z2 must have the same shape (B, d), got {tuple(z1.shape)} and "
                f"{tuple(z2.shape)}"
            )
        for name, t in (("z1", z1), ("z2", z2)):
            if not t.is_floating_point():
                raise InvalidTypeError(f"{name} must be a floating tensor, got {t.dtype}")
            check_float_dtype(f"{name}.dtype", t.dtype)
        if z1.dtype != z2.dtype:
            raise InvalidTypeError(
                f"z1 and z2 must have the same dtype, got z1 {z1.dtype} and z2 {z2.dtype}"
            )
        x_all, z_all, offset, world = all_gather_views(z1, z2, self.gather)
        if x_all.shape[0] < 2:
            raise InvalidArgumentError(
                f"MMCLLoss needs a batch of at least 2 rows in z1 and z2, got {z1.shape[0]}"
            )
        x, z = _unit_rows(x_all), _unit_rows(z_all)
        if self.kernel == "poly" and self.degree * math.log1p(self.coef0) > math.log(
            torch.finfo(x.dtype).max
        ):
            raise InvalidArgumentError(
                f"the polynomial kernel reaches (1 + coef0)^degree = (1 + {self.coef0})^"
                f"{self.degree}, beyond {x.dtype}'s range: lower degree or coef0"
            )
        batch, own = x.shape[0], z1.shape[0]
        anchors = None if world == 1 else torch.arange(offset, offset + own, device=x.device)
        beta = self._solve(self.gram(x, x), anchors)  # (own, batch)
        self.last_beta = beta.detach()
        # cross[j, r] = K(x_j, z_t) for this rank's anchors t = offset + r
        cross = self.gram(x, z if anchors is None else z[anchors])
        positive = cross.diagonal() if anchors is None else cross[anchors, torch.arange(own)]
        partial = ((beta * cross.T).sum() - (beta.sum(1) * positive).sum()) / batch
        return partial if world == 1 else global_sum(partial)

    def _solve(self, gram_x: torch.Tensor, anchors: torch.Tensor | None) -> torch.Tensor:
        implicit = self.grad == "implicit"
        if self.backend == "structured":
            beta, self.last_info = svm_duals(
                gram_x if implicit else gram_x.detach(),
                rho=self.rho,
                C=self.C,
                tol=self.tol,
                max_iter=self.max_iter,
                grad=self.grad,
                return_info=True,
                anchors=anchors,
            )
            return beta
        batch = gram_x.shape[0]
        rows = torch.arange(batch, device=gram_x.device) if anchors is None else anchors
        index = negatives_index(batch, gram_x.device)[rows]
        q = q_on(gram_x if implicit else gram_x.detach(), rows, index, self.rho)
        p = torch.full(index.shape, -2.0, dtype=q.dtype, device=q.device)
        with torch.set_grad_enabled(implicit and torch.is_grad_enabled()):
            z, self.last_info = solve_qp(
                q,
                p,
                lower=0.0,
                upper=self.C,
                backend=self.backend,
                tol=self.tol,
                max_iter=self.max_iter,
                return_info=True,
            )
        return torch.zeros(index.shape[0], batch, dtype=z.dtype, device=z.device).scatter(
            1, index, z
        )


def _unit_rows(x: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit norm at any scale: divided by their largest entry first, so that the
    norm neither overflows (rows ~1e160) nor falls below ``F.normalize``'s eps (rows ~1e-20).
    The scale is detached: the result does not depend on it, nor does its gradient."""
    size = x.detach().abs().amax(1, keepdim=True)
    return F.normalize(x / torch.where(size > 0, size, 1.0), dim=1)
