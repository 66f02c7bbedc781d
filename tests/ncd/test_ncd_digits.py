"""End to end on sklearn digits: known 0-4 labelled, novel 5-9 discovered (SPEC §5 protocol)."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import pytest
import torch
from sklearn.cluster import KMeans

from constrained_pairs.data import load_digits
from constrained_pairs.metrics import cluster_acc
from constrained_pairs.ncd import ResidualNCD
from constrained_pairs.ncd.pretrain import pretrain_contrastive
from constrained_pairs.ncd.vision import RandomAffine, mlp_backbone


def _split():
    x, y = load_digits(as_images=True)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    known = y < 5
    xk, yk = x[known], y[known]
    n_train = int(0.8 * len(yk))
    return xk[:n_train], yk[:n_train], xk[n_train:], yk[n_train:], x[~known], y[~known]


def test_short_run_beats_kmeans_and_keeps_known_classes():
    x_tr, y_tr, x_te, y_te, x_u, y_u = _split()
    augment = RandomAffine(shift=1 / 8, degrees=10, scale=0.1)
    distort = RandomAffine(shift=0.2, degrees=20, scale=0.2, shear=0.6, aspect=0.4, noise=0.1)
    backbone = mlp_backbone(64, 64)
    # A shortened benchmark recipe: few epochs and large batches keep this test short.
    pretrain_contrastive(backbone, torch.cat([x_tr, x_u]), 64, distort, epochs=60)
    model = ResidualNCD(backbone, 64, 5, 5)
    model.fit_known(
        x_tr,
        y_tr,
        epochs=30,
        lr=1e-2,
        backbone_lr=1e-5,
        augment=augment,
        batch_size=256,
        progress=False,
    )
    known_before = (model.predict_known(x_te) == y_te).float().mean().item()
    model.fit_novel(
        x_u, epochs=30, augment=augment, pair_pos_weight="balanced", batch_size=256, progress=False
    )
    known_after = (model.predict_known(x_te) == y_te).float().mean().item()
    acc = cluster_acc(y_u, model.predict_novel(x_u))
    kmeans_acc = cluster_acc(
        y_u, KMeans(5, n_init=10, random_state=0).fit(x_u.flatten(1).numpy()).labels_
    )
    assert kmeans_acc == pytest.approx(0.895, abs=0.01)  # SPEC §5 reference
    assert acc > kmeans_acc + 0.02
    assert known_before > 0.9 and known_after >= known_before - 0.02


@pytest.mark.slow
def test_full_run_reaches_target():
    # The benchmark's own recipe and seeds, so test and published figure cannot drift apart.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from benchmarks.ncd import run

    torch.set_num_threads(1)
    results = [run("digits", seed, ["full"], "cpu") for seed in (0, 1, 2)]
    full = [r["variants"]["full"] for r in results]
    assert statistics.mean(f["acc"] for f in full) >= 0.95
    for result, f in zip(results, full):
        assert f["known_acc_after"] >= result["known_acc_before"] - 0.02
