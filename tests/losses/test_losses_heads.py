"""The head classes: one per kind on the MarginHead hooks, agreement with
pytorch-metric-learning's losses of the same kind, the factory, empty batches, checks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from constrained_pairs.errors import InvalidArgumentError, InvalidTypeError
from constrained_pairs.losses import (
    HEADS,
    KINDS,
    AMSoftmax,
    ArcFace,
    CosFace,
    LambdaSchedule,
    LSoftmax,
    MarginHead,
    MarginSoftmax,
    NormFace,
    SoftmaxHead,
    SphereFace,
)

CLASSES = {
    "softmax": SoftmaxHead,
    "normface": NormFace,
    "lsoftmax": LSoftmax,
    "sphereface": SphereFace,
    "cosface": CosFace,
    "amsoftmax": AMSoftmax,
    "arcface": ArcFace,
}


@pytest.fixture
def pml_losses():
    pytest.importorskip("pytorch_metric_learning")
    from pytorch_metric_learning import losses

    return losses


def pml_peer(pml_losses, head: MarginHead):
    """pytorch-metric-learning's loss of the same kind and hyper-parameters, sharing W."""
    c, d = head.num_classes, head.in_features
    peer = {
        "normface": lambda: pml_losses.NormalizedSoftmaxLoss(c, d, temperature=1 / head.s),
        "lsoftmax": lambda: pml_losses.LargeMarginSoftmaxLoss(c, d, margin=head.m),
        "sphereface": lambda: pml_losses.SphereFaceLoss(c, d, margin=head.m),
        "cosface": lambda: pml_losses.CosFaceLoss(c, d, margin=head.m, scale=head.s),
        "amsoftmax": lambda: pml_losses.CosFaceLoss(c, d, margin=head.m, scale=head.s),
        # pml takes ArcFace's margin in degrees
        "arcface": lambda: pml_losses.ArcFaceLoss(c, d, margin=math.degrees(head.m), scale=head.s),
    }[head.kind]()
    peer.W.data = head.weight.detach().T.clone()
    return peer.to(head.weight.dtype)


def test_factory_builds_the_class_of_each_kind():
    assert tuple(CLASSES) == KINDS and HEADS == CLASSES
    for kind, cls in CLASSES.items():
        head = MarginSoftmax(3, 4, kind)
        assert type(head) is cls and isinstance(head, MarginHead) and head.kind == kind
        direct = cls(3, 4)
        assert (direct.s, direct.m) == (head.s, head.m)
    assert isinstance(MarginSoftmax(3, 4, "amsoftmax"), CosFace)  # AM-Softmax is CosFace's loss
    assert isinstance(MarginSoftmax(3, 4, "sphereface"), LSoftmax)
    head = MarginSoftmax(3, 4, "arcface", s=8.0, m=0.2, reduction="sum", dtype=torch.float64)
    assert (head.s, head.m, head.reduction, head.weight.dtype) == (8.0, 0.2, "sum", torch.float64)
    assert "kind='arcface'" in repr(head) and "s=8.0" in repr(head)


# pml's L-Softmax builds binomials with scipy from a tensor: a NumPy 2 deprecation, not ours
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("kind", ["normface", "lsoftmax", "sphereface", "cosface", "arcface"])
def test_heads_match_pytorch_metric_learning(kind, pml_losses):
    generator = torch.Generator().manual_seed(3)
    head = CLASSES[kind](5, 7, dtype=torch.float64)
    x = 2 * torch.randn(40, 5, dtype=torch.float64, generator=generator)
    y = torch.randint(0, 7, (40,), generator=generator)
    peer = pml_peer(pml_losses, head)
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ours, theirs = head(x1, y), peer(x2, y)
    torch.testing.assert_close(ours, theirs)
    ours.backward()
    theirs.backward()
    torch.testing.assert_close(x1.grad, x2.grad)
    torch.testing.assert_close(head.weight.grad, peer.W.grad.T)


def test_arcface_fallback_matches_pytorch_metric_learning(pml_losses):
    # features beyond pi - m from their class weight take the fallback s (cos theta - m sin m)
    head = ArcFace(2, 2, s=4.0, m=0.8, dtype=torch.float64)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64))
    angles = torch.linspace(0.05, math.pi - 0.05, 31, dtype=torch.float64)
    x = torch.stack([torch.cos(angles), torch.sin(angles)], 1)
    y = torch.zeros(31, dtype=torch.long)
    assert bool((angles > math.pi - 0.8).any())
    torch.testing.assert_close(head(x, y), pml_peer(pml_losses, head)(x, y))
    target = head.logits(x, y)[:, 0]
    expected = torch.where(
        angles < math.pi - 0.8,
        4 * torch.cos(angles + 0.8),
        4 * (torch.cos(angles) - 0.8 * math.sin(0.8)),
    )
    torch.testing.assert_close(target, expected)
    assert bool((target.diff() < 0).all())  # decreasing in theta across the switch


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_reductions_and_empty_batch(kind, reduction):
    head = CLASSES[kind](3, 4, reduction=reduction, dtype=torch.float64)
    x = torch.randn(9, 3, dtype=torch.float64)
    y = torch.randint(0, 4, (9,))
    per_sample = F.cross_entropy(head.logits(x, y), y, reduction="none")
    expected = {"mean": per_sample.mean(), "sum": per_sample.sum(), "none": per_sample}
    torch.testing.assert_close(head(x, y), expected[reduction])
    empty = torch.empty(0, 3, dtype=torch.float64, requires_grad=True)
    loss = head(empty, torch.empty(0, dtype=torch.long))
    if reduction == "none":
        assert loss.shape == (0,)
    else:  # the package's convention: the mean of nothing is 0, never NaN
        assert loss.item() == 0.0
        loss.backward()
        assert torch.equal(head.weight.grad, torch.zeros_like(head.weight))


def test_step_counts_training_forwards_and_lambda_anneals():
    schedule = LambdaSchedule(base=8.0, gamma=1.0, power=1.0, minimum=1.0)
    head = LSoftmax(3, 4, m=2, lambda_schedule=schedule, dtype=torch.float64)
    x, y = torch.randn(5, 3, dtype=torch.float64), torch.randint(0, 4, (5,))
    assert head.lam == 8.0
    head(x, y)
    assert head.step == 1 and head.lam == pytest.approx(4.0)
    head.eval()
    head(x, y)
    assert head.step == 1 and head.lam == 0.0
    plain = NormFace(3, 4)
    plain(torch.randn(2, 3), torch.tensor([0, 1]))
    assert plain.step == 1 and plain.state_dict()["_extra_state"] == {"step": 1}


def test_state_dict_layout_is_unchanged():
    # checkpoints of the single-class MarginSoftmax keep loading: weight, bias (softmax only)
    # and the step counter as extra state
    for kind, cls in CLASSES.items():
        keys = set(cls(3, 4).state_dict())
        assert keys == {"weight", "_extra_state"} | ({"bias"} if kind == "softmax" else set())
        restored = cls(3, 4)
        restored.load_state_dict({**cls(3, 4).state_dict(), "_extra_state": {"step": 7}})
        assert restored.step == 7


def test_a_new_head_from_two_hooks_gets_logits_loss_and_boundaries():
    class ShiftedCosine(NormFace):
        """Target cosine lowered by 0.5: CosFace with m = 0.5 written from the hook only."""

        kind = "shifted"

        def margin_cosine(self, cos_y):
            return cos_y - 0.5

    torch.manual_seed(4)
    mine, cosface = ShiftedCosine(2, 3, s=5.0).double(), CosFace(2, 3, s=5.0, m=0.5).double()
    cosface.load_state_dict(mine.state_dict())
    x, y = torch.randn(20, 2, dtype=torch.float64), torch.randint(0, 3, (20,))
    torch.testing.assert_close(mine(x, y), cosface(x, y))
    ours, reference = mine.decision_boundary((0, 2)), cosface.decision_boundary((0, 2))
    assert ours.boundary_angles == pytest.approx(reference.boundary_angles)
    assert ours.kind == "shifted"


def test_checks_name_the_argument():
    head = ArcFace(3, 4)
    with pytest.raises(InvalidTypeError, match="x must be a torch.Tensor"):
        head([[0.0, 1.0, 2.0]], torch.tensor([0]))
    with pytest.raises(InvalidTypeError, match="x must be a floating-point"):
        head(torch.ones(2, 3, dtype=torch.long), torch.tensor([0, 1]))
    with pytest.raises(InvalidArgumentError, match="x .* must match the head's weights"):
        head(torch.ones(2, 3, dtype=torch.float64), torch.tensor([0, 1]))
    with pytest.raises(InvalidTypeError, match="y must be a torch.Tensor"):
        head(torch.ones(2, 3), [0, 1])
    with pytest.raises(InvalidArgumentError, match="s must be"):
        ArcFace(3, 4, s=float("nan"))
    with pytest.raises(InvalidArgumentError, match="s must be"):
        NormFace(3, 4, s=0.0)
    with pytest.raises(InvalidArgumentError, match="m must be"):
        ArcFace(3, 4, m=math.pi)
    with pytest.raises(InvalidArgumentError, match="m must be"):
        CosFace(3, 4, m=float("inf"))
    with pytest.raises(InvalidArgumentError, match="m must be"):
        SphereFace(3, 4, m=0)
    with pytest.raises(InvalidTypeError, match="lambda_schedule"):
        LSoftmax(3, 4, lambda_schedule=5.0)
    with pytest.raises(InvalidArgumentError, match="gamma"):
        LambdaSchedule(gamma=-1.0)
    with pytest.raises(InvalidTypeError, match="dtype"):
        SoftmaxHead(3, 4, dtype=torch.int32)
    with pytest.raises(InvalidArgumentError, match="num_classes"):
        CosFace(3, 1)
    with pytest.raises(InvalidArgumentError, match="reduction"):
        CosFace(3, 4, reduction="avg")
    with pytest.raises(InvalidTypeError, match="classes"):
        head.decision_boundary((0,))
    with pytest.raises(InvalidTypeError, match="classes"):
        head.decision_boundary((0, 1.5))
    with pytest.raises(InvalidArgumentError, match="different"):
        head.decision_boundary((2, 2))
    with pytest.raises(InvalidTypeError, match="plain_logits"):
        MarginHead(3, 4)
