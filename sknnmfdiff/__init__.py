"""sknnmfdiff: KL-NMF features, statistical selection, a CNN and feature-space
diffusion purification for adversarially robust brain-tumour MRI classification.

Implements, as scikit-learn estimators, the method of "Diffusion-Based Feature
Denoising and Using NNMF for Robust Brain Tumor Classification" (CVPR 2026,
arXiv 2603.13182), with an honest robustness evaluation on top.

Public names are imported lazily, so ``import sknnmfdiff`` stays cheap until a
name is used.
"""

import importlib

from ._persistence import install_module_aliases

__version__ = "0.1.0.dev0"

# Models pickled before a module moved name the old path; keep it importable.
install_module_aliases()

_LAZY = {
    "KLNMFTransformer": "sknnmfdiff.decomposition",
    "StatSelector": "sknnmfdiff.feature_selection",
    "SkorchCNNClassifier": "sknnmfdiff.classifier",
    "DiffusionPurifier": "sknnmfdiff.purification",
    "SmoothedClassifier": "sknnmfdiff.smoothing",
    "make_paper_pipeline": "sknnmfdiff.pipeline",
    "make_baseline_pipeline": "sknnmfdiff.pipeline",
    "make_adversarial_pipeline": "sknnmfdiff.pipeline",
    "make_smoothed_pipeline": "sknnmfdiff.pipeline",
    "make_defence_pipeline": "sknnmfdiff.pipeline",
    "AdversarialClassifier": "sknnmfdiff.adversarial",
    "to_torch_module": "sknnmfdiff.torch_adapter",
    "export_onnx": "sknnmfdiff.onnx_export",
    "evaluate_robustness": "sknnmfdiff.evaluation",
    "RobustnessReport": "sknnmfdiff.evaluation",
    "paper_table": "sknnmfdiff.evaluation",
    "load_mri_folder": "sknnmfdiff.datasets",
    "load_images": "sknnmfdiff.datasets",
    "find_duplicates": "sknnmfdiff.datasets",
    "paper_split": "sknnmfdiff.datasets",
    "make_phantom_mri": "sknnmfdiff.datasets",
    "InconsistentVersionWarning": "sknnmfdiff._persistence",
    "make_robustness_scorer": "sknnmfdiff.model_selection",
    "robust_refit": "sknnmfdiff.model_selection",
    "run_sweep": "sknnmfdiff.sweep",
    "save": "sknnmfdiff.model_file",
    "load": "sknnmfdiff.model_file",
    "ModelFileError": "sknnmfdiff.model_file",
    "UntrustedTypeError": "sknnmfdiff.model_file",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sknnmfdiff' has no attribute {name!r}")


def __dir__():
    return __all__
