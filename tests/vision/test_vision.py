"""The shared vision helpers: the random affine augmentation against SciPy's resampling, the
backbones' shapes and parameters, batched inference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import affine_transform
from torch import nn

from constrained_pairs.mmcl import DigitAugment as MMCLDigitAugment
from constrained_pairs.mmcl import embed as mmcl_embed
from constrained_pairs.mmcl import small_cnn as mmcl_small_cnn
from constrained_pairs.ncd.vision import ConvNet as NCDConvNet
from constrained_pairs.ncd.vision import RandomAffine as NCDRandomAffine
from constrained_pairs.vision import (
    ConvNet,
    DigitAugment,
    RandomAffine,
    apply_batched,
    embed,
    mlp_backbone,
    small_cnn,
)

F64 = torch.float64


def _scipy_affine(image: np.ndarray, linear: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Bilinear resampling of a square image under the sampling map p_in = L p_out + t, where
    p is (x = column, y = row) relative to the image centre in units of half the side (the
    convention of ``affine_grid(align_corners=False)``); zeros outside the image."""
    side = image.shape[0]
    centre, half = (side - 1) / 2, side / 2
    swap = np.array([[0.0, 1.0], [1.0, 0.0]])  # (x, y) <-> (row, column)
    matrix = swap @ linear @ swap
    offset = centre - matrix @ np.array([centre, centre]) + swap @ shift * half
    return affine_transform(image, matrix, offset=offset, order=1, mode="grid-constant")


def _draws(seed: int, n: int, count: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.rand(n, generator=gen, dtype=F64) for _ in range(count)]


def test_digit_augment_is_the_documented_affine_map():
    images = torch.rand(6, 1, 8, 8, dtype=F64)
    augment = DigitAugment(max_shift=0.2, max_rotation=25.0, min_crop=0.6, noise=0.0)
    out = augment(images, torch.Generator().manual_seed(4))
    u_angle, u_crop, u_x, u_y = _draws(4, 6, 4)  # the documented order of the draws
    for i in range(6):
        angle = math.radians(25.0) * (2 * u_angle[i].item() - 1)
        crop = 0.6 + 0.4 * u_crop[i].item()
        rotation = np.array(
            [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]
        )
        shift = 0.4 * (2 * np.array([u_x[i].item(), u_y[i].item()]) - 1)
        expected = _scipy_affine(images[i, 0].numpy(), crop * rotation, shift).clip(0, 1)
        np.testing.assert_allclose(out[i, 0].numpy(), expected, atol=1e-12)


def test_random_affine_zoom_and_skew_are_the_documented_affine_map():
    images = torch.rand(4, 1, 10, 10, dtype=F64)
    augment = RandomAffine(shift=0.1, degrees=15.0, scale=0.2, shear=0.4, aspect=0.3)
    out = augment(images, torch.Generator().manual_seed(9))
    u_angle, u_zoom, u_x, u_y, u_aspect, u_shear = _draws(9, 4, 6)
    for i in range(4):
        angle = math.radians(15.0) * (2 * u_angle[i].item() - 1)
        zoom = 1 + 0.2 * (2 * u_zoom[i].item() - 1)
        stretch = math.exp(0.3 * (2 * u_aspect[i].item() - 1))
        shear = 0.4 * (2 * u_shear[i].item() - 1)
        rotation = (
            np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
            / zoom
        )
        skew = np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag([stretch, 1 / stretch])
        shift = 0.2 * (2 * np.array([u_x[i].item(), u_y[i].item()]) - 1)
        expected = _scipy_affine(images[i, 0].numpy(), rotation @ skew, shift)
        np.testing.assert_allclose(out[i, 0].numpy(), expected, atol=1e-12)


def test_augmentations_accept_flat_images_and_check_their_options():
    flat = torch.rand(3, 64)
    gen_a, gen_b = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    torch.testing.assert_close(
        DigitAugment()(flat, gen_a), DigitAugment()(flat.reshape(3, 1, 8, 8), gen_b).flatten(1)
    )
    assert RandomAffine()(flat).shape == flat.shape
    with pytest.raises(ValueError, match="crop"):
        RandomAffine(scale=0.0, crop=0.0)
    with pytest.raises(ValueError, match="scale must be 0 when crop"):
        RandomAffine(scale=0.1, crop=0.5)
    with pytest.raises(ValueError, match="clip"):
        RandomAffine(clip=(1.0, 0.0))
    with pytest.raises(ValueError, match="max_rotation"):
        DigitAugment(max_rotation=-1.0)
    with pytest.raises(TypeError, match="floating"):
        DigitAugment()(torch.zeros(2, 64, dtype=torch.long))
    assert MMCLDigitAugment is DigitAugment and NCDRandomAffine is RandomAffine


def test_backbones_shapes_and_the_shared_mlp_head():
    torch.manual_seed(0)
    assert small_cnn(side=8, dim=32, width=8)(torch.rand(5, 1, 8, 8)).shape == (5, 32)
    assert small_cnn(side=28, dim=16, width=4)(torch.rand(2, 1, 28, 28)).shape == (2, 16)
    assert ConvNet(feat_dim=12, channels=(4, 8))(torch.rand(3, 1, 9, 9)).shape == (3, 12)
    net = small_cnn(side=8, dim=32, width=8)
    head = mlp_backbone(2 * 8 * 4 * 4, 32, hidden=128)
    assert [type(m) for m in net[-4:]] == [type(m) for m in head]
    # conv(1->8) + conv(8->16) + linear(256->128) + linear(128->32), weights and biases.
    expected = (8 * 9 + 8) + (16 * 8 * 9 + 16) + (256 * 128 + 128) + (128 * 32 + 32)
    assert sum(p.numel() for p in net.parameters()) == expected
    assert mmcl_small_cnn is small_cnn and NCDConvNet is ConvNet
    with pytest.raises(TypeError, match="width"):
        small_cnn(width=2.5)


def test_apply_batched_is_eval_mode_inference_by_batches():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 3))
    net(torch.randn(32, 4))  # non-trivial running statistics
    x = torch.randn(10, 4)
    net.eval()
    with torch.no_grad():
        expected = net(x)
    net.train()
    out = apply_batched(net, x, batch_size=3)
    torch.testing.assert_close(out, expected)
    assert net.training and not out.requires_grad
    pair = apply_batched(net, x, lambda b: (net(b), b.sum(1)), batch_size=4)
    torch.testing.assert_close(pair[0], expected)
    torch.testing.assert_close(pair[1], x.sum(1))
    torch.testing.assert_close(embed(net, x, batch_size=7), expected)
    assert mmcl_embed is embed
    torch.testing.assert_close(embed(nn.Flatten(), x.reshape(10, 2, 2)), x)  # no parameters
    with pytest.raises(ValueError, match="batch_size"):
        apply_batched(net, x, batch_size=0)
