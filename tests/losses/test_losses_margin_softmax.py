"""Margin softmax heads: psi, every kind's logits against formulas written here, gradients at
the psi breakpoints and at theta = 0 and pi, binary decision boundaries (seed 001, Table 1)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from constrained_pairs.losses import KINDS, LambdaSchedule, MarginSoftmax, psi


def _psi_formula(theta: torch.Tensor, m: int) -> torch.Tensor:
    k = torch.clamp(torch.floor(theta * m / math.pi), max=m - 1)
    return (-1) ** k * torch.cos(m * theta) - 2 * k


@pytest.mark.parametrize("m", [1, 2, 3, 4, 5])
def test_psi_against_formula_continuous_and_decreasing(m):
    theta = torch.linspace(0, math.pi, 2001, dtype=torch.float64)
    values = psi(torch.cos(theta), m)
    torch.testing.assert_close(values, _psi_formula(theta, m))
    assert bool((values.diff() < 0).all())  # monotonically decreasing in theta
    breakpoints = torch.arange(m + 1, dtype=torch.float64) * math.pi / m
    torch.testing.assert_close(
        psi(torch.cos(breakpoints), m), 1 - 2 * torch.arange(m + 1.0).double()
    )


def test_psi_gradients_at_breakpoints_and_ends():
    for m in (2, 3, 4):
        theta = torch.arange(m + 1, dtype=torch.float64) * math.pi / m  # 0, pi/m, ..., pi
        c = torch.cos(theta).requires_grad_(True)
        # psi is C^1 but not C^2 at the breakpoints: central differences need a small step
        assert torch.autograd.gradcheck(lambda t, m=m: psi(t, m), c, eps=1e-8)
        # d psi / d cos(theta) vanishes at the interior breakpoints
        grad = torch.autograd.grad(psi(c, m).sum(), c)[0]
        torch.testing.assert_close(grad[1:-1], torch.zeros(m - 1, dtype=torch.float64))


def _head(kind, d=4, c=5, **kwargs):
    torch.manual_seed(1)
    return MarginSoftmax(d, c, kind, **kwargs).double()


def _expected_logits(head, x, y):
    """Each kind's logits written from the maths, with acos (float64)."""
    w = head.weight.detach()
    cos = F.normalize(x, dim=1) @ F.normalize(w, dim=1).T
    theta_y = torch.acos(cos[torch.arange(len(y)), y])
    xn, wn = x.norm(dim=1), w.norm(dim=1)
    s, m = head.s, head.m
    if head.kind == "softmax":
        return x @ w.T + head.bias.detach(), None
    if head.kind == "normface":
        return s * cos, None
    if head.kind == "lsoftmax":
        plain = wn * xn[:, None] * cos
        return plain, wn[y] * xn * _psi_formula(theta_y, m)
    if head.kind == "sphereface":
        return xn[:, None] * cos, xn * _psi_formula(theta_y, m)
    if head.kind in ("cosface", "amsoftmax"):
        return s * cos, s * (torch.cos(theta_y) - m)
    target = torch.where(
        theta_y < math.pi - m,
        s * torch.cos(theta_y + m),
        s * (torch.cos(theta_y) - m * math.sin(m)),
    )
    return s * cos, target


@pytest.mark.parametrize("kind", KINDS)
def test_logits_and_loss_against_formula(kind):
    head = _head(kind)
    x = torch.randn(64, 4, dtype=torch.float64)
    y = torch.randint(0, 5, (64,))
    plain, target = _expected_logits(head, x, y)
    expected = plain.clone()
    if target is not None:
        expected[torch.arange(64), y] = target
    torch.testing.assert_close(head.logits(x), plain)
    torch.testing.assert_close(head.logits(x, y), expected)
    torch.testing.assert_close(head(x, y), F.cross_entropy(expected, y))
    assert torch.equal(head.predict(x), plain.argmax(1))


def test_defaults_and_parameters():
    defaults = {
        "softmax": (None, None),
        "normface": (16.0, None),
        "lsoftmax": (None, 4),
        "sphereface": (None, 4),
        "cosface": (64.0, 0.35),
        "amsoftmax": (30.0, 0.35),
        "arcface": (64.0, 0.5),
    }
    for kind, (s, m) in defaults.items():
        head = MarginSoftmax(3, 7, kind)
        assert (head.s, head.m) == (s, m)
        assert head.weight.shape == (7, 3)
        assert (head.bias is not None) == (kind == "softmax")
        names = {name for name, _ in head.named_parameters()}
        assert names == ({"weight", "bias"} if kind == "softmax" else {"weight"})
    assert MarginSoftmax(3, 7, "cosface", s=10.0, m=0.2).s == 10.0


def _at_angle(theta: float, radius: float = 1.7) -> torch.Tensor:
    """A 2-D feature at angle theta from W_0 = (1, 0), in the upper half plane."""
    return torch.tensor([[radius * math.cos(theta), radius * math.sin(theta)]], dtype=torch.float64)


def _two_d_head(kind, **kwargs):
    head = MarginSoftmax(2, 3, kind, **kwargs).double()
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [-0.5, 0.8], [0.3, -1.1]], dtype=torch.float64))
    return head


@pytest.mark.parametrize("kind", ["lsoftmax", "sphereface"])
def test_gradcheck_at_breakpoints_and_ends(kind):
    head = _two_d_head(kind)
    m = head.m
    y = torch.tensor([0])
    for k in range(m + 1):  # theta = k pi / m, including 0 and pi
        x = _at_angle(k * math.pi / m).requires_grad_(True)
        weight = head.weight.detach().clone().requires_grad_(True)
        # psi is C^1 but not C^2 at the breakpoints: central differences need a small step
        assert torch.autograd.gradcheck(lambda x_: head(x_, y), x, eps=1e-8), (kind, k)
        assert torch.autograd.gradcheck(
            lambda w_, x=x: _functional(head, x.detach(), w_, y), weight, eps=1e-8
        )


def _functional(head, x, weight, y):
    return torch.func.functional_call(head, {"weight": weight}, (x, y))


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_finite_at_zero_and_pi(kind):
    head = _two_d_head(kind)
    for theta in (0.0, math.pi):
        x = _at_angle(theta).requires_grad_(True)
        head.zero_grad()
        head(x, torch.tensor([0])).backward()
        assert torch.isfinite(x.grad).all(), (kind, theta)
        assert torch.isfinite(head.weight.grad).all(), (kind, theta)
    x32 = torch.tensor([[2.0, 0.0], [-3.0, 0.0]], requires_grad=True)
    head32 = _two_d_head(kind).float()
    head32(x32, torch.tensor([0, 0])).backward()
    assert torch.isfinite(x32.grad).all()


@pytest.mark.parametrize("kind", KINDS)
def test_gradcheck_generic_points(kind):
    head = _head(kind, d=3, c=4)
    x = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 4, (6,))
    weight = head.weight.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x_: head(x_, y), x)
    assert torch.autograd.gradcheck(lambda w_: _functional(head, x.detach(), w_, y), weight)


def test_lambda_annealing_blend_and_checkpoint():
    schedule = LambdaSchedule(base=10.0, gamma=1.0, power=1.0, minimum=2.0)
    head = _head("sphereface", lambda_schedule=schedule)
    x = torch.randn(8, 4, dtype=torch.float64)
    y = torch.randint(0, 5, (8,))
    plain, target = _expected_logits(head, x, y)
    lam = 10.0  # step 0
    blended = (lam * plain[torch.arange(8), y] + target) / (1 + lam)
    torch.testing.assert_close(head.logits(x, y)[torch.arange(8), y], blended)
    for _ in range(3):
        head(x, y)
    assert head.step == 3 and head.lam == pytest.approx(max(2.0, 10.0 / 4))
    restored = _head("sphereface", lambda_schedule=schedule)
    restored.load_state_dict(head.state_dict())
    assert restored.step == 3
    head.eval()
    assert head.lam == 0.0
    torch.testing.assert_close(head.logits(x, y)[torch.arange(8), y], target)
    assert _head("sphereface").lam == 0.0  # off by default


def _rotation_heads(kind, angle, **kwargs):
    head = MarginSoftmax(2, 2, kind, **kwargs).double()
    with torch.no_grad():
        head.weight.copy_(
            torch.tensor([[1.0, 0.0], [math.cos(angle), math.sin(angle)]], dtype=torch.float64)
        )
    return head


@pytest.mark.parametrize(
    ("kind", "kwargs", "closed_form"),
    [
        ("normface", {}, lambda k: (k / 2, k / 2)),
        ("sphereface", {"m": 4}, lambda k: (k / 5, 4 * k / 5)),
        ("sphereface", {"m": 2}, lambda k: (k / 3, 2 * k / 3)),
        (
            "cosface",
            {"m": 0.35},
            lambda k: (
                k / 2 - math.asin(0.35 / (2 * math.sin(k / 2))),
                k / 2 + math.asin(0.35 / (2 * math.sin(k / 2))),
            ),
        ),
        ("arcface", {"m": 0.5}, lambda k: ((k - 0.5) / 2, (k + 0.5) / 2)),
    ],
)
def test_decision_boundary_angles(kind, kwargs, closed_form):
    angle = 2.0
    boundary = _rotation_heads(kind, angle, **kwargs).decision_boundary()
    assert boundary.weight_angle == pytest.approx(angle)
    expected = closed_form(angle)
    assert boundary.boundary_angles == pytest.approx(expected, abs=1e-9)
    assert boundary.angular_margin == pytest.approx(expected[1] - expected[0], abs=1e-9)
    # the score function's zeros are the boundaries: x(theta) on the arc between the weights
    for theta, column in zip(expected, (0, 1), strict=True):
        x = _at_angle(theta, radius=3.0)
        assert boundary.score(x)[0, column].item() == pytest.approx(0.0, abs=1e-7)
    # the note's example: m = 2 splits the angle K into three parts (seed 001)
    if kwargs.get("m") == 2:
        assert boundary.angular_margin == pytest.approx(angle / 3)


@pytest.mark.parametrize("kind", KINDS)
def test_decision_regions_match_logits(kind):
    head = _head(kind, d=3, c=4)
    boundary = head.decision_boundary((2, 1))
    assert boundary.classes == (2, 1) and len(boundary.equations) == 2
    x = 3 * torch.randn(500, 3, dtype=torch.float64)
    region = boundary.region(x)
    plain = head.logits(x)
    if kind == "softmax":
        expected = torch.where(plain[:, 2] > plain[:, 1], 0, 1)
        assert boundary.angular_margin == 0.0 and boundary.boundary_angles is None
    else:
        win_2 = head.logits(x, torch.full((500,), 2))[:, 2] > plain[:, 1]
        win_1 = head.logits(x, torch.full((500,), 1))[:, 1] > plain[:, 2]
        expected = torch.where(win_2, 0, torch.where(win_1, 1, -1))
        assert not bool((win_1 & win_2).any())
    assert torch.equal(region, expected)
    margin_kinds = ("lsoftmax", "sphereface", "cosface", "amsoftmax", "arcface")
    assert bool((region == -1).any()) == (kind in margin_kinds)


def test_decision_boundary_margin_larger_than_arc_is_clipped():
    boundary = _rotation_heads("cosface", 0.2, m=0.35).decision_boundary()
    assert boundary.angular_margin == pytest.approx(0.2)


def test_end_to_end_digits_arcface():
    from constrained_pairs.data import load_digits

    torch.manual_seed(0)
    x, y = load_digits()
    order = torch.randperm(len(y))
    train, test = order[:1300], order[1300:]
    body = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 16))
    head = MarginSoftmax(16, 10, "arcface", s=16.0, m=0.3)
    optimizer = torch.optim.Adam([*body.parameters(), *head.parameters()], lr=1e-2)
    for _ in range(60):
        optimizer.zero_grad()
        head(body(x[train]), y[train]).backward()
        optimizer.step()
    accuracy = (head.predict(body(x[test])) == y[test]).float().mean().item()
    assert accuracy > 0.9


def test_bad_inputs():
    with pytest.raises(ValueError, match="kind"):
        MarginSoftmax(2, 3, "circleloss")
    with pytest.raises(ValueError, match="no scale s"):
        MarginSoftmax(2, 3, "sphereface", s=10.0)
    with pytest.raises(ValueError, match="no margin m"):
        MarginSoftmax(2, 3, "normface", m=0.1)
    with pytest.raises(ValueError, match="m"):
        MarginSoftmax(2, 3, "cosface", m=-0.1)
    with pytest.raises(TypeError, match="m"):
        MarginSoftmax(2, 3, "sphereface", m=1.5)
    with pytest.raises(ValueError, match="lambda_schedule"):
        MarginSoftmax(2, 3, "arcface", lambda_schedule=LambdaSchedule())
    head = MarginSoftmax(2, 3, "arcface")
    with pytest.raises(ValueError, match="y must lie"):
        head(torch.randn(4, 2), torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="x must have shape"):
        head(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]))
    with pytest.raises(ValueError, match="y must have shape"):
        head(torch.randn(4, 2), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="classes"):
        head.decision_boundary((0, 5))
