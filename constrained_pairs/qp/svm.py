"""The structured solver of MMCL's B reduced SVM duals (SPEC §3): :func:`svm_duals`.

For a kernel matrix K (B, B), anchor t's dual over its negatives j ≠ t is
``β_t = argmin_{0 ≤ β ≤ C} ½ βᵀQ_tβ − 2·1ᵀβ`` with ``Q_t = K_tt + ρI + K_FF − K_t· − K_·t``
(:mod:`constrained_pairs.qp.svm_structure`). All B problems share K, so one B×B matmul gives
every ``Q_t β_t``: the solver runs accelerated projected gradient with restarts to guess the
support vectors, then block principal pivoting (an exact active-set method with Murty's
finite-termination backup) whose linear systems are the free-set solves of
:class:`~constrained_pairs.qp.svm_free_set.FreeSetSolver`; the implicit backward reuses the last
factorisations. It reports like :func:`~constrained_pairs.qp.solve_qp`: the same
:class:`~constrained_pairs.qp.QPInfo`, tolerances, residual (:func:`box_residual` with
``scale = max(‖p‖∞, ‖Q_tβ_t‖∞)``) and statuses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from constrained_pairs._validation import check_choice, check_flag, check_real
from constrained_pairs.errors import InvalidArgumentError, InvalidTypeError
from constrained_pairs.qp.convexity import nonconvex_problems
from constrained_pairs.qp.info import QPInfo, build_info, default_tol
from constrained_pairs.qp.problem import check_options
from constrained_pairs.qp.residual import box_residual
from constrained_pairs.qp.svm_free_set import FreeSetSolver
from constrained_pairs.qp.svm_structure import anchor_mask, batched_q_times, lipschitz_bound, q_on

GRADIENTS = ("detach", "implicit")
_LOWER, _FREE, _UPPER = 0, 1, 2
_DEFAULT_MAX_ITER = 100  # block principal pivoting iterations
_WARM_ITERATIONS = 60  # accelerated projected-gradient steps that guess the active sets


@dataclass
class DualSolution:
    """Solution of the B reduced duals and what the implicit backward needs.

    Attributes:
        beta: (B, B) dual variables, row t is β_t with β_tt = 0.
        kkt_residual: (B,) relative KKT residual per anchor (:func:`kkt_residual`, evaluated
            in float64).
        converged: (B,) whether ``kkt_residual <= tol``.
        iterations: accelerated-gradient plus active-set iterations used.
        free_solve: the :class:`FreeSetSolver` of the final free sets (solves (Q_t)_FF x = r_F).
        nonconvex: (B,) anchors whose Q_t is not PSD (K is not a PSD kernel matrix).
    """

    beta: torch.Tensor
    kkt_residual: torch.Tensor
    converged: torch.Tensor
    iterations: int
    free_solve: FreeSetSolver
    nonconvex: torch.Tensor


def _project(beta: torch.Tensor, upper: float | None) -> torch.Tensor:
    return beta.clamp(min=0) if upper is None else beta.clamp(0, upper)


def _accelerated_gradient(kernel, rho, upper, diag, iterations, anchors):
    """FISTA with gradient restarts from β = 0; returns the last iterate, its gradient and step."""
    bound = lipschitz_bound(kernel, rho)
    step = 1 / (bound if anchors is None else bound[anchors])[:, None]
    x = torch.zeros(diag.shape, dtype=kernel.dtype, device=kernel.device)
    y, momentum_t = x, torch.ones_like(step)
    for _ in range(iterations):
        x_new = _project(y - step * (batched_q_times(kernel, y, rho, anchors) - 2), upper)
        x_new = x_new.masked_fill(diag, 0)
        restart = ((y - x_new) * (x_new - x)).sum(1, keepdim=True) > 0
        t_new = (1 + torch.sqrt(1 + 4 * momentum_t**2)) / 2
        coef = torch.where(restart, 0.0, (momentum_t - 1) / t_new)
        momentum_t = torch.where(restart, 1.0, t_new)
        y, x = x_new + coef * (x_new - x), x_new
    return x, batched_q_times(kernel, x, rho, anchors) - 2, step


def _state_guess(x, grad, step, upper, diag):
    """Lower / free / upper classification of every variable from one projected step."""
    guess = x - step * grad
    state = torch.where(guess > 0, _FREE, _LOWER)
    if upper is not None:
        state = torch.where(guess >= upper, _UPPER, state)
    return state.masked_fill(diag, _LOWER)


def kkt_residual(kernel, beta, rho, upper, anchors=None) -> torch.Tensor:
    """Relative KKT residual per anchor, the definition of
    :func:`~constrained_pairs.qp.natural_residual` on the explicit problems.

    With ``g = Q_tβ_t − 2`` (one B×B matmul for all anchors) it is
    ``‖β − clamp(β − g, 0, C)‖∞ / (1 + max(2, ‖Q_tβ_t‖∞))`` over the negatives j ≠ t, plus the
    bound violation.
    """
    diag = anchor_mask(kernel.shape[0], anchors, kernel.device)
    q_beta = batched_q_times(kernel, beta, rho, anchors).masked_fill(diag, 0)
    grad = (q_beta - 2).masked_fill(diag, 0)
    scale = q_beta.abs().amax(1).clamp_min(2.0)
    return box_residual(
        beta.masked_fill(diag, 0), grad, 0.0, float("inf") if upper is None else upper, scale
    )


def _rounding_residual(kernel, beta, rho, upper, anchors) -> torch.Tensor:
    """The float32 iterations' exit: the KKT gap relative to the size of the terms whose rounding
    limits it, ``1 + (ρ + 4 max|K|)·‖β‖₁`` (entries of Q_t are ≤ ρ + 4 max|K|); the result is
    then re-checked with :func:`kkt_residual` in float64."""
    diag = anchor_mask(kernel.shape[0], anchors, kernel.device)
    grad = batched_q_times(kernel, beta, rho, anchors) - 2
    gap = (beta - _project(beta - grad, upper)).masked_fill(diag, 0)
    return gap.abs().amax(1) / (1 + (rho + 4 * kernel.abs().amax()) * beta.abs().sum(1))


def solve_dual(
    kernel: torch.Tensor,
    rho: float,
    upper: float | None = None,
    *,
    tol: float | None = None,
    max_iter: int = _DEFAULT_MAX_ITER,
    warm_iterations: int = _WARM_ITERATIONS,
    anchors: torch.Tensor | None = None,
) -> DualSolution:
    """Solve the B reduced duals of SPEC §3 for the kernel matrix ``kernel`` (B, B), exactly.

    The checked entry point is :func:`svm_duals`; this is the solver (no validation).

    Args:
        kernel: symmetric kernel matrix of the view-1 embeddings (no gradient is taken).
        rho: ridge ρ > 0 on the diagonal of every Q_t.
        upper: the box bound C, or None for β ≥ 0 only.
        tol: KKT tolerance (default 1e-8 in float64, 1e-5 in float32).
        max_iter: cap on active-set (block principal pivoting) iterations.
        warm_iterations: accelerated projected-gradient steps that guess the active sets.
        anchors: (T,) the anchors to solve (row r of β is anchor ``anchors[r]``); None: all.
    """
    kernel = kernel.detach()
    size, dtype, device = kernel.shape[0], kernel.dtype, kernel.device
    tol = default_tol(dtype) if tol is None else tol
    diag = anchor_mask(size, anchors, device)
    count_rows = diag.shape[0]
    x, grad, step = _accelerated_gradient(kernel, rho, upper, diag, warm_iterations, anchors)
    state = _state_guess(x, grad, step, upper, diag)

    # Block principal pivoting (Júdice & Pires; Kim & Park's backup rule) on every anchor at once.
    eps = 32 * torch.finfo(dtype).eps
    positions = torch.arange(size, device=device)
    best = torch.full((count_rows,), size + 1, device=device)
    backup = torch.full((count_rows,), 3, device=device)
    cache: dict = {}
    failed = torch.zeros(count_rows, dtype=torch.bool, device=device)
    # float32: iterations in float32 until rounding is all that is left, then a float64 re-check
    # and, if it fails, polishing iterations with float64 gradients (SPEC §7)
    wide = kernel if dtype == torch.float64 else kernel.double()
    strict, polish_only = wide is kernel, False
    for iteration in range(1, max_iter + 1):
        used = iteration
        free = state == _FREE
        if not polish_only:  # (else: the same active set, its factors and β are kept)
            free_solve = FreeSetSolver(kernel, rho, free, cache, anchors=anchors)
            failed |= free_solve.failed
            at_upper = torch.zeros(diag.shape, dtype=dtype, device=device)
            if upper is not None:
                at_upper = (state == _UPPER).to(dtype) * upper
            beta = at_upper + free_solve(2 - batched_q_times(kernel, at_upper, rho, anchors))
        polish_only = False
        if strict and wide is not kernel:  # float32 polish: refine against a float64 residual
            beta = beta.double()
            r = (2 - batched_q_times(wide, beta, rho, anchors)).masked_fill(~free, 0)
            beta = beta + free_solve(r.to(dtype)).double()
        grad = batched_q_times(wide if strict else kernel, beta, rho, anchors) - 2
        scale = eps * (1 + beta.abs().amax(1, keepdim=True))
        if strict:  # never tolerate a misclassification that leaves the residual above tol
            scale = scale.clamp(max=0.3 * tol)
        infeasible = (free & (beta < -scale)) | ((state == _LOWER) & (grad < -scale) & ~diag)
        if upper is not None:
            infeasible |= (free & (beta > upper + scale)) | ((state == _UPPER) & (grad > scale))
        count = infeasible.sum(1)
        # Stop when no variable is misclassified, or when rounding alone flags some but the
        # projected point already meets the tolerance.
        projected = _project(beta, upper).masked_fill(diag, 0)
        if strict:
            done = not bool(count.any()) or bool(
                (kkt_residual(wide, projected, rho, upper, anchors) <= tol).all()
            )
        elif not bool(count.any()) or bool(
            (_rounding_residual(kernel, projected, rho, upper, anchors) <= tol).all()
        ):
            # the float32 iterations are over: re-check in float64, polish if it fails
            done = bool((kkt_residual(wide, projected.double(), rho, upper, anchors) <= tol).all())
            strict = polish_only = True
            if not done:
                continue
        else:
            done = False
        if done:
            break
        improved = count < best
        best = torch.where(improved, count, best)
        backup = torch.where(improved, 3, backup - 1)
        # Murty's backup: flip only the infeasible variable of largest index.
        last = (infeasible * positions).argmax(1, keepdim=True)
        single = torch.zeros_like(infeasible).scatter(1, last, True) & infeasible
        flip = torch.where((backup >= 0)[:, None], infeasible, single)
        to_bound = torch.where(beta < 0, _LOWER, _UPPER)
        state = torch.where(flip, torch.where(free, to_bound, _FREE), state)

    beta = _project(beta, upper).masked_fill(diag, 0).to(dtype)
    residual = kkt_residual(wide, beta.to(wide.dtype), rho, upper, anchors).to(dtype)
    nonconvex = torch.zeros_like(failed)
    # Q_t = D_tᵀ K D_t + ρI with ‖D_t‖² = B, so λ_min(Q_t) ≥ ρ + B·min(λ_min(K), 0): one
    # Cholesky of K + (ρ/B)·I certifies every Q_t positive definite. Without it (K not PSD, or a
    # failed free-block factorisation) the anchors are checked one by one.
    shifted = wide + (rho / size) * torch.eye(size, dtype=wide.dtype, device=device)
    if bool(torch.linalg.cholesky_ex(shifted).info):
        failed = torch.ones_like(failed)
    if bool(failed.any()):  # is Q_t indefinite (K not PSD)?
        rows = failed.nonzero().flatten()
        others = torch.argsort(diag[rows].to(torch.int8), dim=1, stable=True)[:, : size - 1]
        q = q_on(kernel, rows if anchors is None else anchors[rows], others, rho)
        nonconvex[rows] = nonconvex_problems(q, dtype)[0]
    return DualSolution(
        beta=beta,
        kkt_residual=residual,
        converged=(residual <= tol) & ~nonconvex,
        iterations=warm_iterations + used,
        free_solve=free_solve,
        nonconvex=nonconvex,
    )


def implicit_beta(
    kernel: torch.Tensor, solution: DualSolution, anchors: torch.Tensor | None = None
) -> torch.Tensor:
    """``solution.beta`` as a differentiable function of ``kernel`` (implicit KKT backward)."""
    return _ImplicitDual.apply(kernel, solution.beta, solution.free_solve, anchors)


class _ImplicitDual(torch.autograd.Function):
    """β(K) of every anchor, differentiated through the KKT conditions on the free sets.

    With u_t = (Q_t)_FF⁻¹ (∂L/∂β_t)_F (zero off the free set F), ∂L/∂Q_t = -u_t β_tᵀ, which the
    rank-two structure of Q_t maps back onto K with one B×B matmul.
    """

    @staticmethod
    def forward(ctx, kernel, beta, free_solve, anchors):
        ctx.save_for_backward(beta)
        ctx.free_solve, ctx.anchors = free_solve, anchors
        return beta.clone()

    @staticmethod
    def backward(ctx, grad_beta):
        (beta,) = ctx.saved_tensors
        u = ctx.free_solve(grad_beta)
        s_beta, s_u = beta.sum(1), u.sum(1)
        # Q_t[i,j] = K_tt + ρδ_ij + K_ij - K_ti - K_tj and ∂L/∂Q_t = -u_t β_tᵀ: K_ij collects
        # -Σ_t u_ti β_tj, row t (K_ti, K_tj) collects u_t Σβ_t + β_t Σu_t, K_tt -Σu_t Σβ_t.
        anchors = ctx.anchors
        rows = u * s_beta[:, None] + beta * s_u[:, None]
        if anchors is None:
            grad_k = rows - u.T @ beta - torch.diag_embed(s_u * s_beta)
        else:
            grad_k = (-u.T @ beta).index_add_(0, anchors, rows)
            grad_k.view(-1).index_add_(0, anchors * (grad_k.shape[0] + 1), -(s_u * s_beta))
        return grad_k, None, None, None


def check_kernel(kernel) -> torch.Tensor:
    """A (B, B) float32/float64 finite kernel matrix with B ≥ 2, else a package error."""
    if not isinstance(kernel, torch.Tensor):
        raise InvalidTypeError(f"kernel must be a torch.Tensor, got {type(kernel).__name__}")
    if kernel.dtype not in (torch.float32, torch.float64):
        raise InvalidTypeError(f"kernel must be float32 or float64, got dtype {kernel.dtype}")
    if kernel.dim() != 2 or kernel.shape[0] != kernel.shape[1]:
        raise InvalidArgumentError(
            f"kernel must be a square (B, B) matrix, got {tuple(kernel.shape)}"
        )
    if kernel.shape[0] < 2:
        raise InvalidArgumentError(
            f"kernel must have B >= 2 rows (one anchor, one negative), got {kernel.shape[0]}"
        )
    if not bool(torch.isfinite(kernel).all()):
        raise InvalidArgumentError("kernel contains non-finite values (NaN or inf)")
    return kernel


def _check_anchors(anchors, kernel: torch.Tensor) -> torch.Tensor | None:
    if anchors is None:
        return None
    if not isinstance(anchors, torch.Tensor) or anchors.dtype != torch.long or anchors.dim() != 1:
        raise InvalidTypeError("anchors must be a 1-D int64 tensor of anchor indices")
    size = kernel.shape[0]
    if anchors.numel() == 0 or int(anchors.min()) < 0 or int(anchors.max()) >= size:
        raise InvalidArgumentError(f"anchors must be non-empty indices in 0..{size - 1}")
    if anchors.unique().numel() != anchors.numel():
        raise InvalidArgumentError("anchors must be distinct")
    return anchors.to(kernel.device)


def svm_duals(
    kernel: torch.Tensor,
    *,
    rho: float,
    C: float | None = None,
    tol: float | None = None,
    max_iter: int | None = None,
    grad: str = "detach",
    return_info: bool = False,
    anchors: torch.Tensor | None = None,
) -> torch.Tensor | tuple[torch.Tensor, QPInfo]:
    """Solve MMCL's B reduced SVM duals (SPEC §3) of one kernel matrix, exactly and together.

    Anchor t's problem is ``min_{0 ≤ β ≤ C} ½ βᵀQ_tβ − 2·1ᵀβ`` over its negatives j ≠ t, with
    ``Q_t[i, j] = K_tt + ρδ_ij + K_ij − K_ti − K_tj``: the same problems as
    ``solve_qp(explicit_q(K, ρ), −2, lower=0, upper=C)``, at about the cost of a few B×B
    matmuls per iteration instead of B factorisations of size B − 1.

    Args:
        kernel: ``(B, B)`` symmetric PSD kernel matrix (float32/float64), B ≥ 2; only its
            symmetric part is used.
        rho: ridge ρ > 0 on the diagonal of every Q_t.
        C: upper bound of the box, or None for β ≥ 0 only.
        tol: KKT tolerance (default 1e-8 in float64, 1e-5 in float32), judged on
            :func:`~constrained_pairs.qp.natural_residual`'s definition.
        max_iter: active-set iteration cap (default 100).
        grad: ``"detach"`` (β is returned without gradient) or ``"implicit"`` (β is
            differentiable in ``kernel`` through the KKT conditions of the free sets).
        return_info: also return a :class:`~constrained_pairs.qp.QPInfo` (backend
            ``"structured"``; one entry per anchor).
        anchors: ``(T,)`` distinct anchor indices to solve (e.g. a rank's share of a gathered
            batch); None: all B.

    Returns:
        ``β`` of shape ``(B, B)`` (``(T, B)`` with ``anchors``): row r is β of anchor r (or
        ``anchors[r]``), zero at the anchor itself; with ``return_info=True`` the pair
        ``(β, info)``. Anchors that do not reach ``tol`` are reported in ``info.status`` and by a
        ``RuntimeWarning``.

    Example:
        >>> beta, info = svm_duals(kernel_matrix(x, x), rho=0.1, return_info=True)
    """
    kernel = check_kernel(kernel)
    rho = check_real("rho", rho, minimum=0.0, open_minimum=True)
    C = None if C is None else check_real("C", C, minimum=0.0, open_minimum=True)
    grad = check_choice("grad", grad, GRADIENTS)
    return_info = check_flag("return_info", return_info)
    tol, max_iter = check_options(tol, max_iter, kernel.dtype)
    max_iter = _DEFAULT_MAX_ITER if max_iter is None else max_iter
    anchors = _check_anchors(anchors, kernel)
    if not torch.equal(kernel, kernel.mT):
        kernel = 0.5 * (kernel + kernel.mT)
    solution = solve_dual(kernel, rho, C, tol=tol, max_iter=max_iter, anchors=anchors)
    beta = implicit_beta(kernel, solution, anchors) if grad == "implicit" else solution.beta
    if not return_info:
        structured_info(solution, tol, stacklevel=3)
        return beta
    return beta, structured_info(solution, tol, stacklevel=3)


def structured_info(
    solution: DualSolution, tol: float, *, caller: str = "svm_duals", stacklevel: int = 3
) -> QPInfo:
    """The :class:`QPInfo` of a structured solve (warns about anchors that are not optimal)."""
    converged = solution.converged
    iterations = torch.full_like(converged, solution.iterations, dtype=torch.long)
    return build_info(
        solution.kkt_residual,
        iterations,
        tol,
        "structured",
        ~converged,
        nonconvex=solution.nonconvex,
        caller=caller,
        stacklevel=stacklevel + 1,
    )
