"""Differentiable batched QP layer (SPEC §3): ``solve_qp`` with three interchangeable backends,
and ``svm_duals``, the structured solver of MMCL's B reduced SVM duals.

    from constrained_pairs.qp import solve_qp, svm_duals
    z, info = solve_qp(Q, p, lower=0.0, upper=C, return_info=True)
    beta, info = svm_duals(K, rho=0.1, return_info=True)

Both report a :class:`QPInfo` with the statuses of :class:`constrained_pairs.status.Status` and
the residual of :func:`natural_residual`.
"""

from constrained_pairs.qp.api import BACKENDS, solve_qp
from constrained_pairs.qp.info import QPInfo
from constrained_pairs.qp.residual import natural_residual
from constrained_pairs.qp.svm import svm_duals
from constrained_pairs.qp.svm_structure import explicit_q

__all__ = ["BACKENDS", "QPInfo", "explicit_q", "natural_residual", "solve_qp", "svm_duals"]
