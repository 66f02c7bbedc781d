"""Max-margin contrastive learning (SPEC §3) with an InfoNCE baseline and a linear probe.

from constrained_pairs.mmcl import MMCLLoss, DigitAugment, pretrain, linear_probe
loss_fn = MMCLLoss(kernel="rbf", sigma=5.0)
outcome = pretrain(encoder, images, loss_fn, epochs=10, lr=1e-3, augment=DigitAugment(),
                   seed=0)  # outcome.status, outcome.history.loss
accuracy = linear_probe(encoder, (x_train, y_train), (x_test, y_test))
"""

from constrained_pairs.mmcl.augment import DigitAugment
from constrained_pairs.mmcl.encoders import small_cnn
from constrained_pairs.mmcl.kernels import kernel_matrix
from constrained_pairs.mmcl.loss import MMCLLoss
from constrained_pairs.mmcl.training import PretrainHistory, embed, linear_probe, pretrain
from constrained_pairs.qp.svm_structure import explicit_q

__all__ = [
    "DigitAugment",
    "MMCLLoss",
    "PretrainHistory",
    "embed",
    "explicit_q",
    "kernel_matrix",
    "linear_probe",
    "pretrain",
    "small_cnn",
]
