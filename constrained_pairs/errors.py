"""Exceptions raised by constrained_pairs.

Every error subclasses both :class:`ConstrainedPairsError` (catch-all for this package) and the
built-in type a PyTorch user would expect (``ValueError``, ``TypeError``, ``NotImplementedError``).
"""

from __future__ import annotations


class ConstrainedPairsError(Exception):
    """Base class of every error raised on purpose by this package."""


class InvalidArgumentError(ConstrainedPairsError, ValueError):
    """An argument has the wrong value, shape or content; the message names it."""


class InvalidTypeError(ConstrainedPairsError, TypeError):
    """An argument has the wrong type; the message names it."""


class UnsupportedOptionError(ConstrainedPairsError, NotImplementedError):
    """A method or backend cannot honour an option (e.g. a norm it has no projection for)."""


class UnboundedProblemError(ConstrainedPairsError, ValueError):
    """The data-join objective is unbounded below for the given radii (SPEC §2, pathology 1)."""


class CheckpointError(ConstrainedPairsError, ValueError):
    """A checkpoint file is corrupted, foreign, or belongs to another run; the message names the
    file and, for a mismatch, what differs."""
