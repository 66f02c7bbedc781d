"""Certified upper bounds of ℓ2 Lipschitz constants (SPEC §2, "Deep backbones").

A network's bound is the product of exact per-layer bounds computed from the current weights:
σ_max of a linear layer (an SVD, never a power-iteration estimate that can fall short), a
convolution's operator norm bounded by its Fourier symbol or by its unfolded kernel, pooling
windows counted exactly, and the activations' own constants. Modules may define a
``lipschitz_bound()`` method, which is used as is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from constrained_pairs.errors import InvalidArgumentError, UnsupportedOptionError

#: max_x d/dx [x Φ(x)] = Φ(√2) + √2 φ(√2) (the exact GELU's largest slope, reached at x = √2).
GELU_LIPSCHITZ = 0.5 * (1 + math.erf(1.0)) + math.sqrt(2) * math.exp(-1.0) / math.sqrt(2 * math.pi)

_ONE_LIPSCHITZ = (
    nn.Identity,
    nn.Flatten,
    nn.Unflatten,
    nn.ReLU,
    nn.ReLU6,
    nn.Hardtanh,
    nn.Tanh,
    nn.Softsign,
    nn.Softplus,
    nn.CELU,
    nn.PixelShuffle,
    nn.PixelUnshuffle,
    nn.ZeroPad1d,
    nn.ZeroPad2d,
    nn.ConstantPad1d,
    nn.ConstantPad2d,
)


def _tuple(value: int | Sequence[int], n: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, Sequence) else (int(value),) * n


def _overlap(kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int]) -> int:
    """Most windows any one input position falls in: Π min(k, ⌈(d(k−1)+1)/s⌉)."""
    return math.prod(
        min(k, math.ceil((d * (k - 1) + 1) / s)) for k, s, d in zip(kernel, stride, dilation)
    )


def _padded_size(conv: nn.modules.conv._ConvNd, size: Sequence[int]) -> tuple[int, ...]:
    n = len(conv.kernel_size)
    if conv.padding == "valid":
        pad = (0,) * n
    elif conv.padding == "same":
        pad = tuple(d * (k - 1) for k, d in zip(conv.kernel_size, conv.dilation))
    else:
        pad = tuple(2 * p for p in _tuple(conv.padding, n))
    return tuple(s + p for s, p in zip(size, pad))


def sigma_max(matrices: torch.Tensor) -> torch.Tensor:
    """σ_max of each matrix of a batch (..., m, n): √λ_max of the smaller Gram matrix, by a
    Hermitian eigensolver (backward stable: the same accuracy as an SVD, several times faster).
    Not differentiable on purpose (see :func:`largest_singular_value`)."""
    with torch.no_grad():
        wide = matrices.shape[-2] <= matrices.shape[-1]
        gram = matrices @ matrices.mH if wide else matrices.mH @ matrices
        return torch.linalg.eigvalsh(gram)[..., -1].clamp_min(0).sqrt()


def conv_unfolded_bound(
    weight: torch.Tensor,
    stride: Sequence[int],
    dilation: Sequence[int],
    groups: int = 1,
) -> torch.Tensor:
    """√m · max_g σ_max(W_g reshaped to (C_out/g, C_in/g · Π k)), for any input size.

    The convolution is W_r U(x) with U the matrix of (zero-padded) patches; every input entry
    appears in at most m patches, so ‖U(x)‖_F ≤ √m ‖x‖ (m from :func:`_overlap`); groups act
    block-diagonally, hence the max over groups.
    """
    c_out = weight.shape[0]
    blocks = weight.reshape(groups, c_out // groups, -1)
    sigma = largest_singular_value(blocks)
    return sigma * math.sqrt(_overlap(weight.shape[2:], stride, dilation))


def conv_fourier_bound(
    weight: torch.Tensor,
    padded_size: Sequence[int],
    dilation: Sequence[int],
    groups: int = 1,
) -> torch.Tensor | None:
    """max over frequencies and groups of σ_max of the kernel's DFT on the padded grid.

    A zero-padded convolution is an isometric embedding of x into the padded grid, a circular
    correlation there (its singular values are those of the C_out × C_in symbols K̂(ω) on the
    grid's frequencies), then a selection of outputs (valid window, stride): its norm is at most
    max_ω σ_max(K̂(ω)). Real kernels have K̂(−ω) = conj K̂(ω), so half the spectrum suffices.
    Returns None when the (dilated) kernel is larger than the padded grid.
    """
    n = weight.dim() - 2
    kernel = weight
    if any(d > 1 for d in dilation):
        span = [d * (k - 1) + 1 for k, d in zip(weight.shape[2:], dilation)]
        kernel = weight.new_zeros(*weight.shape[:2], *span)
        kernel[(slice(None), slice(None), *(slice(None, None, d) for d in dilation))] = weight
    if any(k > s for k, s in zip(kernel.shape[2:], padded_size)):
        return None
    dims = tuple(range(2, 2 + n))
    symbol = torch.fft.rfftn(kernel, s=tuple(padded_size), dim=dims)
    c_out, c_in = kernel.shape[:2]
    symbol = symbol.reshape(groups, c_out // groups, c_in, -1).permute(0, 3, 1, 2)
    return largest_singular_value(symbol.flatten(0, 1))


def largest_singular_value(matrices: torch.Tensor) -> torch.Tensor:
    """max_b σ_max(matrices[b]), exact (:func:`sigma_max`), with a cheap exact gradient.

    The batch's eigensolves run without autograd; the gradient flows through σ = Re(uᴴ M v) of the
    maximising matrix with its top singular pair (u, v) held fixed, which is the derivative of
    σ_max wherever it is simple (Danskin / envelope theorem).
    """
    values = sigma_max(matrices)
    top = int(values.argmax())
    if not matrices.requires_grad:
        return values[top]
    matrix = matrices[top]
    with torch.no_grad():
        u, _, vh = torch.linalg.svd(matrix, full_matrices=False)
    value = torch.einsum("i,ij,j->", u[:, 0].conj(), matrix, vh[0].conj())
    return value.real if value.is_complex() else value


def conv_bound(
    conv: nn.modules.conv._ConvNd,
    input_size: Sequence[int] | None = None,
    *,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Certified ℓ2 bound of ``conv`` (bias excluded): the unfolded-kernel bound, and the
    tighter Fourier bound when the spatial ``input_size`` is known (the smaller of the two).
    ``weight`` replaces ``conv.weight`` (e.g. a float64 copy, or a kernel being normalised)."""
    if conv.padding_mode != "zeros":
        raise UnsupportedOptionError(
            f"lipschitz_bound supports zero padding only, got padding_mode={conv.padding_mode!r}"
        )
    weight = conv.weight if weight is None else weight
    fourier = None
    if input_size is not None:
        padded = _padded_size(conv, input_size)
        fourier = conv_fourier_bound(weight, padded, conv.dilation, conv.groups)
    if fourier is not None and all(s == 1 for s in conv.stride):
        return fourier  # at stride 1 the circular operator is W_r U(x) with m = Π k: ≤ unfolded
    bound = conv_unfolded_bound(weight, conv.stride, conv.dilation, conv.groups)
    return bound if fourier is None else torch.minimum(bound, fourier)


def _avg_pool_bound(pool: nn.Module, n: int) -> float:
    kernel, stride = _tuple(pool.kernel_size, n), _tuple(pool.stride or pool.kernel_size, n)
    padding = _tuple(pool.padding, n)
    m, size = _overlap(kernel, stride, (1,) * n), math.prod(kernel)
    # y_w = Σ_{p∈w} x_p / D_w with c_w ≤ K real entries, so y_w² ≤ c_w/D_w² Σ_{p∈w} x_p².
    override = getattr(pool, "divisor_override", None)
    if override:
        return math.sqrt(m * size) / override
    if pool.count_include_pad and not pool.ceil_mode:
        return math.sqrt(m / size)
    # Otherwise D_w ≥ c_w ≥ the fewest real entries of a window (1 for ceil-mode windows).
    fewest = 1 if pool.ceil_mode else math.prod(k - p for k, p in zip(kernel, padding))
    return math.sqrt(m / max(fewest, 1))


def _adaptive_windows(size: int, out: int) -> list[tuple[int, int]]:
    return [((i * size) // out, -((-(i + 1) * size) // out)) for i in range(out)]


def _adaptive_pool_bound(pool: nn.Module, shape: Sequence[int] | None, average: bool) -> float:
    if shape is None:
        raise UnsupportedOptionError(
            f"lipschitz_bound needs input_shape to bound {type(pool).__name__} (its windows "
            "depend on the input size)"
        )
    spatial = list(shape[1:])
    out = [
        o if o is not None else s for o, s in zip(_tuple(pool.output_size, len(spatial)), spatial)
    ]
    factor = 1.0
    for s, o in zip(spatial, out):
        weight = [0.0] * s  # Σ over the windows holding position p of 1/|w| (avg) or 1 (max)
        for start, end in _adaptive_windows(s, o):
            for p in range(start, end):
                weight[p] += 1.0 / (end - start) if average else 1.0
        factor *= max(weight)
    return math.sqrt(factor)


def _activation_bound(module: nn.Module) -> float | None:
    if isinstance(module, _ONE_LIPSCHITZ):
        return 1.0
    if isinstance(module, nn.LeakyReLU):
        return max(1.0, abs(module.negative_slope))
    if isinstance(module, nn.ELU):
        return max(1.0, module.alpha)
    if isinstance(module, nn.PReLU):
        return max(1.0, float(module.weight.detach().abs().max()))
    if isinstance(module, nn.Sigmoid):
        return 0.25
    if isinstance(module, nn.Hardsigmoid):
        return 1.0 / 6.0
    if isinstance(module, nn.GELU) and module.approximate == "none":
        return GELU_LIPSCHITZ
    if isinstance(module, nn.modules.dropout._DropoutNd):
        # Eval: the identity. Training: each draw is a 0/(1/(1-p)) diagonal mask.
        return 1.0 if not module.training else 1.0 / (1.0 - module.p) if module.p < 1 else 0.0
    return None


def _output_shape(module: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...]:
    reference = next(iter(module.parameters()), None)
    dtype = reference.dtype if reference is not None else torch.get_default_dtype()
    device = reference.device if reference is not None else None
    with torch.no_grad():
        return tuple(module(torch.zeros(1, *shape, dtype=dtype, device=device)).shape[1:])


def _bound(module: nn.Module, shape: tuple[int, ...] | None, name: str) -> float:
    hook = getattr(module, "lipschitz_bound", None)
    if callable(hook):
        return float(hook())
    if isinstance(module, nn.Sequential):
        total = 1.0
        for child_name, child in module.named_children():
            total *= _bound(child, shape, f"{name}.{child_name}" if name else child_name)
            if shape is not None:
                shape = _output_shape(child, shape)
        return total
    label = f"{name or 'module'} ({type(module).__name__})"
    with torch.no_grad():
        if isinstance(module, nn.Linear):
            return float(sigma_max(module.weight.double()))
        if isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d):
            size = shape[1:] if shape is not None else None
            return float(conv_bound(module, size, weight=module.weight.double()))
        if isinstance(module, nn.MaxPool1d | nn.MaxPool2d | nn.MaxPool3d):
            n = int(type(module).__name__[-2])
            kernel, dilation = _tuple(module.kernel_size, n), _tuple(module.dilation, n)
            stride = _tuple(module.stride or module.kernel_size, n)
            return math.sqrt(_overlap(kernel, stride, dilation))
        if isinstance(module, nn.AvgPool1d | nn.AvgPool2d | nn.AvgPool3d):
            return _avg_pool_bound(module, int(type(module).__name__[-2]))
        if isinstance(module, nn.AdaptiveAvgPool1d | nn.AdaptiveAvgPool2d | nn.AdaptiveAvgPool3d):
            return _adaptive_pool_bound(module, shape, average=True)
        if isinstance(module, nn.AdaptiveMaxPool1d | nn.AdaptiveMaxPool2d | nn.AdaptiveMaxPool3d):
            return _adaptive_pool_bound(module, shape, average=False)
    found = _activation_bound(module)
    if found is None:
        raise UnsupportedOptionError(
            f"lipschitz_bound cannot bound {label}: supported are nn.Sequential of Linear, "
            "Conv1d/2d/3d, (adaptive) average and max pooling, Flatten and Lipschitz "
            "activations; give the module a lipschitz_bound() method returning a certified "
            "bound to use it"
        )
    return found


def lipschitz_bound(module: nn.Module, input_shape: Sequence[int] | None = None) -> float:
    """A certified upper bound of the ℓ2 Lipschitz constant of ``module`` (SPEC §2).

    The product of exact per-layer bounds computed in float64 from the current weights: σ_max
    of Linear weights (bias excluded), convolutions bounded through their unfolded kernel (and,
    when the input size is known, their Fourier symbol, which is tight for circular
    convolutions), pooling windows counted exactly, activations' constants (ReLU, LeakyReLU,
    Tanh, GroupSort: 1; Sigmoid: 1/4; exact GELU: 1.129), Dropout 1 in eval mode. A module with
    a ``lipschitz_bound()`` method (e.g. :class:`LipschitzConvNet`) provides its own bound.

    Args:
        module: an ``nn.Sequential`` of supported layers (nested Sequentials allowed) or a module
            with a ``lipschitz_bound()`` method.
        input_shape: the shape of one input without the batch dimension, e.g. (1, 28, 14):
            tightens convolution bounds and enables adaptive pooling.

    Raises:
        UnsupportedOptionError: naming the first module it cannot bound (e.g. BatchNorm).
        InvalidArgumentError: for an empty or non-integer ``input_shape``.
    """
    if not isinstance(module, nn.Module):
        raise InvalidArgumentError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    shape = None
    if input_shape is not None:
        if (
            isinstance(input_shape, str | bytes)
            or not hasattr(input_shape, "__iter__")
            or not all(
                isinstance(s, int | torch.SymInt) and not isinstance(s, bool) for s in input_shape
            )
        ):
            raise InvalidArgumentError(
                f"input_shape must be a sequence of ints, got {input_shape!r}"
            )
        shape = tuple(int(s) for s in input_shape)
        if not shape or min(shape) < 1:
            raise InvalidArgumentError(f"input_shape must be positive sizes, got {input_shape!r}")
    for param_name, value in module.named_parameters():
        if not bool(torch.isfinite(value).all()):
            raise InvalidArgumentError(
                f"module parameter {param_name} has non-finite entries: no bound exists"
            )
    return _bound(module, shape, "")


__all__ = ["conv_bound", "conv_fourier_bound", "conv_unfolded_bound", "lipschitz_bound"]
