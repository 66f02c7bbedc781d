"""Bundled data loaders and the digits data-join split."""

from __future__ import annotations

import torch

import constrained_pairs as cpairs


def test_digits_join_splits_columns_and_rows():
    data = cpairs.data.digits_join(n_a=30, n_p=40, n_test=50, left_columns=3, seed=2)
    assert data.x_a.shape == (30, 24) and data.aux_a.shape == (30, 40)
    assert data.x_p.shape == (40, 24) and data.y_p.shape == (40,)
    assert data.x_test.shape == (50, 24) and data.aux_test.shape == (50, 40)
    images, labels = cpairs.data.load_digits(as_images=True, dtype=torch.float64)
    # Each row of x/aux is the left/right part of one digit image; the three sets are disjoint.
    flat = {tuple(img[0].flatten().tolist()): k for k, img in enumerate(images)}

    def index_of(left, right):
        image = torch.cat([left.reshape(8, 3), right.reshape(8, 5)], dim=1)
        return flat[tuple(image.flatten().tolist())]

    used_a = {index_of(left, right) for left, right in zip(data.x_a, data.aux_a)}
    used_t = {index_of(left, right) for left, right in zip(data.x_test, data.aux_test)}
    assert not used_a & used_t
    assert float(data.x_a.max()) <= 1.0 and float(data.x_a.min()) >= 0.0
    problem = data.problem(r_a=1.0, r_p=1.0)
    assert problem.num_classes == 10 and problem.has_aux


def test_mnist5k_is_bundled():
    x, y = cpairs.data.load_mnist5k()
    assert x.shape == (5000, 784) and torch.bincount(y).tolist() == [500] * 10
    assert float(x.max()) == 1.0
