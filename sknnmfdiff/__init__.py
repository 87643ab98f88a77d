"""sknnmfdiff: KL-NMF features, statistical selection, a CNN and feature-space
diffusion purification for adversarially robust brain-tumour MRI classification.

Implements, as scikit-learn estimators, the method of "Diffusion-Based Feature
Denoising and Using NNMF for Robust Brain Tumor Classification" (CVPR 2026,
arXiv 2603.13182), with an honest robustness evaluation on top.
"""

__version__ = "0.1.0.dev0"
