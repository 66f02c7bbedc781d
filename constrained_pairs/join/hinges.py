"""The hinge term of SPEC §2, for each of its three forms.

With logits z, label y and threshold t = α_P κ_P:

* ``"margin"`` (default): max(max_k(z_y − z_k) − t, 0), the exact multi-class dual of a label-flip
  transport cost κ_P (ℓ(z, k) − ℓ(z, y) = z_y − z_k for cross-entropy);
* ``"seed"``: max(z_y − t, 0), as the notes write it. It is not invariant under a common shift of
  the logits while cross-entropy is, and the bias is free: the optimum shifts b until the hinge
  vanishes, and κ_P stops mattering (see ``Diagnostics.hinge_active``);
* ``"reference"``: max(s − t, 0) with the binary score s = z_1 − z_0 and no label factor, the
  reference code's form (C = 2 only).

``"margin"`` and ``"reference"`` depend on the logits only through their differences
(:data:`SHIFT_INVARIANT`), which the exact solver exploits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

HINGES = ("margin", "seed", "reference")
#: Hinges that, like cross-entropy, are unchanged by a common shift of the logits.
SHIFT_INVARIANT = ("margin", "reference")


def binary_score(z: torch.Tensor) -> torch.Tensor:
    """s = z_1 − z_0 for logits of shape (..., 2)."""
    return z[..., 1] - z[..., 0]


def hinge_matrix(z: torch.Tensor, threshold: torch.Tensor, kind: str) -> torch.Tensor:
    """The hinge for every candidate label c: (n, C) from logits z of shape (n, C)."""
    if kind == "seed":
        return F.relu(z - threshold)
    if kind == "reference":
        return F.relu(binary_score(z) - threshold)[:, None].expand_as(z)
    return F.relu(z - z.min(dim=1, keepdim=True).values - threshold)


def hinge_at(
    z: torch.Tensor, label: torch.Tensor, threshold: torch.Tensor, kind: str
) -> torch.Tensor:
    """The hinge at each row's own label: shape (n,)."""
    if kind == "reference":
        return F.relu(binary_score(z) - threshold)
    z_true = z.gather(1, label[:, None]).squeeze(1)
    if kind == "seed":
        return F.relu(z_true - threshold)
    return F.relu(z_true - z.min(dim=1).values - threshold)


def pair_relu_sum(
    a: torch.Tensor, columns: torch.Tensor, column_of: torch.Tensor, threshold: torch.Tensor
) -> torch.Tensor:
    """Σ_{i,j} max(a_j + columns[i, column_of[j]] − t, 0) without forming the (n_A, n_P) grid.

    Each column of ``columns`` (n_A, K) is sorted once; for every j the entries above the cut
    t − a_j are counted by binary search and summed through suffix sums:
    O((n_A + n_P)·K·log n_A). Differentiable in ``a``, ``columns`` and ``threshold``.
    """
    n_a, num_columns = columns.shape
    column_sorted = columns.T.sort(dim=1).values  # (K, n_A), ascending
    suffix = F.pad(column_sorted.flip(1).cumsum(1).flip(1), (0, 1))  # Σ_{q>=p}, 0 at p = n_A
    cut = (threshold - a).unsqueeze(0).expand(num_columns, -1).contiguous()
    below = torch.searchsorted(column_sorted.detach().contiguous(), cut.detach(), right=True)
    below = below.gather(0, column_of[None]).squeeze(0)  # #{i : columns[i, c_j] <= t − a_j}
    above_sum = suffix[column_of, below]
    return ((n_a - below).to(columns.dtype) * (a - threshold) + above_sum).sum()


def all_pairs_hinge_sum(
    u: torch.Tensor, v: torch.Tensor, y: torch.Tensor, threshold: torch.Tensor, kind: str
) -> torch.Tensor | None:
    """Σ_{i,j} hinge(u_j + v_i, y_j) for the seed and reference hinges (sort-based, see
    :func:`pair_relu_sum`); None for the margin hinge, whose max over classes does not split."""
    if kind == "seed":
        return pair_relu_sum(u.gather(1, y[:, None]).squeeze(1), v, y, threshold)
    if kind == "reference":
        zeros = torch.zeros_like(y)
        return pair_relu_sum(binary_score(u), binary_score(v)[:, None], zeros, threshold)
    return None
