"""constrained_pairs: training PyTorch models under explicit constraints.

One-line entry points::

    import constrained_pairs as cp
    problem = cp.PairProblem(x_a, x_p, y_p, aux_a, r_a=1.0, r_p=1.0)
    result = cp.solve(problem, method="projection")

Sub-packages (imported on first use): ``join`` (the data-join objective), ``methods`` (the
solvers behind :func:`solve`), ``qp`` (differentiable QP layer), ``mmcl`` (max-margin
contrastive learning), ``losses``, ``activations``, ``ncd`` (novel class discovery),
``metrics``, ``data``, ``backbones`` (certified Lipschitz networks), ``engine`` (the one
training loop) and ``distributed`` (data parallelism on ``torch.distributed``).
"""

from __future__ import annotations

import importlib
from typing import Any

from constrained_pairs.errors import (
    CheckpointError,
    ConstrainedPairsError,
    InvalidArgumentError,
    InvalidTypeError,
    UnboundedProblemError,
    UnsupportedOptionError,
)

__version__ = "0.1.0"

_SUBMODULES = {
    "activations",
    "backbones",
    "distributed",
    "engine",
    "data",
    "join",
    "losses",
    "methods",
    "metrics",
    "mmcl",
    "ncd",
    "qp",
}
_LAZY_ATTRIBUTES = {
    "PairProblem": "constrained_pairs.join.problem",
    "objective": "constrained_pairs.join.objective",
    "Result": "constrained_pairs.join.result",
    "Diagnostics": "constrained_pairs.join.diagnostics",
    "wasserstein_radius": "constrained_pairs.join.diagnostics",
    "solve": "constrained_pairs.methods",
    "Status": "constrained_pairs.status",
}

__all__ = [
    "CheckpointError",
    "ConstrainedPairsError",
    "Diagnostics",
    "InvalidArgumentError",
    "InvalidTypeError",
    "PairProblem",
    "Result",
    "Status",
    "UnboundedProblemError",
    "UnsupportedOptionError",
    "objective",
    "solve",
    "wasserstein_radius",
    *sorted(_SUBMODULES),
]


def __getattr__(name: str) -> Any:
    # Lazy imports keep `import constrained_pairs` fast (cvxpy, cooper and geotorch load on use).
    if name in _SUBMODULES:
        return importlib.import_module(f"constrained_pairs.{name}")
    if name in _LAZY_ATTRIBUTES:
        return getattr(importlib.import_module(_LAZY_ATTRIBUTES[name]), name)
    raise AttributeError(f"module 'constrained_pairs' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
