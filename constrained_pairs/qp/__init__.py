"""Differentiable batched QP layer (SPEC §3): ``solve_qp`` with three interchangeable backends.

    from constrained_pairs.qp import solve_qp
    z, info = solve_qp(Q, p, lower=0.0, upper=C, return_info=True)
"""

from constrained_pairs.qp.api import BACKENDS, solve_qp
from constrained_pairs.qp.info import QPInfo

__all__ = ["BACKENDS", "QPInfo", "solve_qp"]
