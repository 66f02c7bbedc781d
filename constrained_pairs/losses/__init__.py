"""Loss catalogue of the notes (SPEC §4)."""

from constrained_pairs.losses.nce import info_nce

__all__ = ["info_nce"]
