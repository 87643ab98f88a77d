"""Figures for the sknnmfdiff pipeline and its robustness evaluation.

Every function builds and returns a :class:`matplotlib.figure.Figure` with an
Agg canvas attached. Nothing here touches :mod:`matplotlib.pyplot` or its global
state, so the functions are safe to call from worker threads and on machines
without a display. Save a figure with :func:`save_figure` (or ``fig.savefig``);
in a notebook, a returned figure is shown when it is the cell's last expression.

The figures follow the paper, "Diffusion-Based Feature Denoising and Using NNMF
for Robust Brain Tumor Classification" (CVPR 2026, arXiv 2603.13182): the rank-15
basis images, the class-wise activation of each component, the per-criterion
feature scores used for selection, the denoising error of the purifier against
the noise it removes, and robust accuracy against the attack budget.

Naming follows scikit-learn: ``X ~= W H`` with ``components_ = H`` the basis
images (one per row) and ``W`` the per-sample activations (the paper writes
``V ~= W H`` with ``W`` the basis).

All public names are importable from ``sknnmfdiff.plots``; the code lives in
private submodules, one concern each:

- ``_features``: figures of the NMF features (:func:`plot_nmf_basis`,
  :func:`plot_class_activation_heatmap`, :func:`plot_feature_scores`).
- ``_robustness``: figures of the defence and its evaluation
  (:func:`plot_denoising_error`, :func:`plot_robustness_curve`,
  :func:`plot_adversarial_examples`).
- ``_certified``: certified accuracy of randomized smoothing against the radius
  (:func:`plot_certified_accuracy`).
- ``_sweep``: figures of a sweep (:func:`plot_tradeoff`, :func:`plot_metric_vs_t`).
- ``_common``: the pyplot-free figure and input checks the figures share, and
  :func:`save_figure`.

Imports run one way: ``_features``, ``_robustness``, ``_certified`` and ``_sweep`` build on
``_common``,
which imports nothing of the package.
"""

import logging

from ._certified import plot_certified_accuracy
from ._common import save_figure
from ._features import plot_class_activation_heatmap, plot_feature_scores, plot_nmf_basis
from ._robustness import plot_adversarial_examples, plot_denoising_error, plot_robustness_curve
from ._sweep import plot_metric_vs_t, plot_tradeoff

__all__ = [
    "plot_nmf_basis",
    "plot_class_activation_heatmap",
    "plot_feature_scores",
    "plot_denoising_error",
    "plot_robustness_curve",
    "plot_adversarial_examples",
    "plot_certified_accuracy",
    "plot_tradeoff",
    "plot_metric_vs_t",
    "save_figure",
]

#: The parent of the submodules' loggers (``sknnmfdiff.plots``), importable here as
#: before the split: a level or handler set on it applies to all of them.
logger = logging.getLogger(__name__)
