"""Plain torch building blocks of the method, free of scikit-learn.

The estimators and :func:`sknnmfdiff.to_torch_module` share these modules, so the
compiled pipeline computes exactly what the fitted steps compute.

- :class:`NNLSProjection`, :func:`nnls`, :func:`l2_normalize_rows`: exact batched
  non-negative least squares onto fixed NMF components, with the exact gradient by
  implicit differentiation on the active set.
- :class:`FeatureMLP`: the classifier's default network over the selected features
  (standardised inputs, two hidden layers).
- :class:`CNN1d`: the lightweight 1-D CNN over the selected features (the paper's
  stage 3; the classifier's ``architecture="paper"``).
- :func:`nnls_gram_export`, :func:`solve_spd_export`: the same NNLS written with
  :func:`torch.while_loop` and elementary ops (Gauss-Jordan solves), so that it
  exports to one static graph (ONNX ``Loop`` nodes).
- :func:`linear_beta_schedule`, :func:`sinusoidal_embedding`, :class:`DenoiserMLP`,
  :class:`FeaturePurifier`, :func:`eot_noise`: the feature-space diffusion purifier
  (DDPM forward process, Ho et al. 2020; x0-predicting denoiser; EOT average of
  draws, antithetic by default).
- :func:`pgd_linf`, :func:`project_linf`, :func:`mean_probability_nll`,
  :func:`mean_probability_kl`: L-inf PGD on an objective of the input, for PGD and
  TRADES adversarial training (Madry et al. 2018; Zhang et al. 2019).

- :class:`single_thread`, :func:`as_tensor`, :func:`cpu_if_no_cuda`,
  :func:`check_device`, :func:`check_network_sizes`: how the method's torch code runs
  (one intra-op thread for tiny ops; numpy arrays as aligned, contiguous tensors; a
  GPU-fitted model on a machine without CUDA; devices and network sizes checked).

The code lives in private modules that import torch and numpy only: ``_runtime`` (the
two helpers above), and ``_nnls`` (the NNLS projection), ``_nnls_export`` (its
exportable form), ``_diffusion`` (the purifier), ``_cnn`` (the CNN), ``_mlp`` (the MLP)
and ``_attacks`` (the training attacks), which import nothing but ``_runtime``. No
module here imports scikit-learn, skorch or the rest of the package (checked by ``tests/test_layout.py``).
"""

from ._attacks import mean_probability_kl, mean_probability_nll, pgd_linf, project_linf
from ._cnn import CNN1d
from ._diffusion import (
    DenoiserMLP,
    FeaturePurifier,
    eot_noise,
    linear_beta_schedule,
    sinusoidal_embedding,
)
from ._mlp import FeatureMLP
from ._nnls import NNLSProjection, l2_normalize_rows, nnls
from ._nnls_export import nnls_gram_export, solve_spd_export
from ._runtime import as_tensor, check_device, check_network_sizes, cpu_if_no_cuda, single_thread

__all__ = [
    "CNN1d",
    "DenoiserMLP",
    "FeatureMLP",
    "FeaturePurifier",
    "NNLSProjection",
    "as_tensor",
    "check_device",
    "check_network_sizes",
    "cpu_if_no_cuda",
    "eot_noise",
    "l2_normalize_rows",
    "linear_beta_schedule",
    "mean_probability_kl",
    "mean_probability_nll",
    "nnls",
    "nnls_gram_export",
    "pgd_linf",
    "project_linf",
    "single_thread",
    "sinusoidal_embedding",
    "solve_spd_export",
]
