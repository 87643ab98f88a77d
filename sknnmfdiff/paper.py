"""The paper's published figures and protocol constants, in one place.

"Diffusion-Based Feature Denoising and Using NNMF for Robust Brain Tumor
Classification" (CVPR 2026, arXiv 2603.13182). The study
(:mod:`sknnmfdiff.study`), its Markdown report (:mod:`sknnmfdiff.report`), the CLI,
the split (:func:`sknnmfdiff.datasets.paper_split`) and the ready-made pipelines
(:mod:`sknnmfdiff.pipeline`) read these; nothing here imports the rest of the package.
"""

__all__ = ["PAPER_PROTOCOL", "PAPER_TABLE"]

#: The paper's Table (arXiv 2603.13182): rows x metrics, as published. Accuracies
#: are fractions in [0, 1]; "robust" rows are under AutoAttack, L-inf eps = 0.10.
PAPER_TABLE = {
    "clean baseline": dict(accuracy=0.8605, roc_auc=0.9105, mcc=0.7178, brier=0.1461, log_loss=0.4751),
    "clean defended": dict(accuracy=0.8512, roc_auc=0.8967, mcc=0.6988, brier=0.1555, log_loss=0.4963),
    "robust baseline": dict(accuracy=0.0047, roc_auc=0.0075, mcc=-0.9906, brier=0.4702, log_loss=1.1629),
    "robust defended": dict(accuracy=0.5953, roc_auc=0.7485, mcc=0.1703, brier=0.2150, log_loss=0.6182),
}

#: The paper's protocol: images resized to ``image_size`` x ``image_size`` pixels,
#: ``n_per_class`` images of each of the two classes (about 2,200 in all) split
#: ``train_size``/``val_size``/``test_size`` = 70/20/10 %, KL-NMF rank ``n_components``
#: = 15, purifier timestep ``t`` = 41 averaging ``n_eot`` = 8 draws, AutoAttack
#: (APGD-CE + Square) at L-inf ``eps`` = 0.10 in [0, 1] input units.
PAPER_PROTOCOL = {
    "image_size": 128,
    "n_per_class": 1100,
    "train_size": 0.7,
    "val_size": 0.2,
    "test_size": 0.1,
    "n_components": 15,
    "t": 41,
    "n_eot": 8,
    "eps": 0.10,
}
