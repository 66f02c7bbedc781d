"""mnist_join: disjoint stratified split of MNIST-5k halves, shapes, whole images."""

from __future__ import annotations

import pytest
import torch

from constrained_pairs.data import load_mnist5k, mnist_join
from constrained_pairs.errors import InvalidArgumentError


def test_split_is_disjoint_stratified_and_rebuilds_the_images():
    split = mnist_join(n_a=200, n_p=300, n_test=100, seed=3)
    assert split.x_a.shape == (200, 392) and split.aux_a.shape == (200, 392)
    assert split.x_p.shape == (300, 392) and split.y_p.shape == (300,)
    assert split.x_test.shape == (100, 392) and split.aux_test.shape == (100, 392)
    for labels, n in ((split.y_a, 200), (split.y_p, 300), (split.y_test, 100)):
        assert torch.equal(torch.bincount(labels, minlength=10), torch.full((10,), n // 10))
    assert 0.0 <= float(split.x_a.min()) and float(split.x_a.max()) <= 1.0
    images, labels = load_mnist5k()
    whole = torch.cat([split.whole_images(p).flatten(1) for p in ("a", "p", "test")])
    # every whole image is one of MNIST-5k's, used once (disjoint sets), with its own label
    nearest = torch.cdist(whole.double(), images.double()).argmin(dim=1)
    assert torch.equal(images[nearest], whole) and len(set(nearest.tolist())) == 600
    assert torch.equal(labels[nearest], torch.cat([split.y_a, split.y_p, split.y_test]))
    assert torch.equal(split.whole_images("p")[..., :14].flatten(1), split.x_p)


def test_images_flag_seed_and_dtype():
    flat = mnist_join(n_a=20, n_p=30, n_test=10, seed=1)
    shaped = mnist_join(n_a=20, n_p=30, n_test=10, seed=1, images=True, dtype=torch.float64)
    assert shaped.x_a.shape == (20, 1, 28, 14) and shaped.x_a.dtype == torch.float64
    assert torch.equal(shaped.x_p.flatten(1).float(), flat.x_p)
    assert torch.equal(flat.x_images(flat.x_test), shaped.x_test.float())
    assert not torch.equal(mnist_join(n_a=20, n_p=30, n_test=10, seed=2).y_p, flat.y_p)
    problem = shaped.problem(r_a=5.0, r_p=5.0)
    assert problem.x_a.shape == (20, 1, 28, 14)


def test_arguments_are_checked():
    with pytest.raises(InvalidArgumentError, match="n_a \\+ n_p \\+ n_test"):
        mnist_join(n_a=3000, n_p=2000, n_test=1)
    with pytest.raises(InvalidArgumentError, match="left_columns"):
        mnist_join(left_columns=28)
    with pytest.raises(InvalidArgumentError, match="part"):
        mnist_join(n_a=10, n_p=10, n_test=10).whole_images("b")
