"""Registers the first-order methods of SPEC §2 with :func:`~constrained_pairs.methods.solve`.

Every method runs in the shared loop of :mod:`~constrained_pairs.methods.training`; see each
method's class for its own options.
"""

from __future__ import annotations

from typing import Any

from constrained_pairs.join.problem import PairProblem
from constrained_pairs.join.result import Result
from constrained_pairs.methods import register
from constrained_pairs.methods.base import FirstOrderMethod
from constrained_pairs.methods.lagrangian import AugmentedLagrangianMethod, LagrangianMethod
from constrained_pairs.methods.options import split_options
from constrained_pairs.methods.parametrization import ParametrizationMethod
from constrained_pairs.methods.penalty import PenaltyMethod
from constrained_pairs.methods.projection import ProjectionMethod
from constrained_pairs.methods.training import train

METHODS: dict[str, type[FirstOrderMethod]] = {
    "penalty": PenaltyMethod,
    "projection": ProjectionMethod,
    "parametrization": ParametrizationMethod,
    "lagrangian": LagrangianMethod,
    "augmented_lagrangian": AugmentedLagrangianMethod,
}


def _solver(method_cls: type[FirstOrderMethod]):
    def solve_method(problem: PairProblem, regime: str, **options: Any) -> Result:
        return train(method_cls, problem, regime, **options)

    def check_options(options: dict[str, Any]) -> None:
        split_options(method_cls, options)

    solve_method.check_options = check_options  # solve() checks every option before any work
    solve_method.__name__ = f"solve_{method_cls.name}"
    solve_method.__doc__ = method_cls.__doc__
    return solve_method


for _name, _cls in METHODS.items():
    register(_name)(_solver(_cls))
