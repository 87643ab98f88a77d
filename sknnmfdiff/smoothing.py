"""Certified robustness by randomized smoothing of the features, with the diffusion
denoiser as the denoising step (denoised smoothing).

:class:`SmoothedClassifier` turns a base classifier ``f`` over the selected, L2-normalised
NMF features ``z`` (shape ``(N, k)``) into the smoothed classifier

    g(z) = argmax_c P(f(D(z + sigma eps)) = c),   eps ~ N(0, I_k),

where ``D`` is a one-shot ``x0``-denoise of the diffusion purifier at the step ``t*`` whose
noise level matches ``sigma`` (Carlini et al., 2023). ``g`` is provably constant on the L2
ball of radius ``sigma * Phi^-1(p_A)`` around ``z`` (Cohen, Rosenfeld and Kolter, 2019,
theorem 1); :meth:`SmoothedClassifier.certify` estimates a lower confidence bound on
``p_A`` by Monte Carlo (CERTIFY) and :meth:`SmoothedClassifier.predict` is their PREDICT,
which abstains when the vote is not significant. :func:`clopper_pearson_lower` and
:func:`smoothing_timestep` are the two small pieces of maths the estimator rests on.

References
----------
J. Cohen, E. Rosenfeld and J. Z. Kolter, "Certified adversarial robustness via randomized
smoothing", ICML 2019 (algorithms CERTIFY and PREDICT; reference code locuslab/smoothing).
H. Salman, M. Sun, G. Yang, A. Kapoor and J. Z. Kolter, "Denoised smoothing: a provable
defense for pretrained classifiers", NeurIPS 2020.
N. Carlini, F. Tramer, K. Dvijotham, L. Rice, M. Sun and J. Z. Kolter, "(Certified!!)
Adversarial robustness for free!", ICLR 2023 (section 3: the step ``t*`` and the one-shot
denoise).
"""

import copy
import logging
import math
import numbers

import numpy as np
import torch
from scipy.stats import beta, binomtest, norm
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, _fit_context, clone
from sklearn.utils._param_validation import HasMethods, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ._constraints import RANDOM_STATE, int_interval, real_interval
from ._persistence import VersionedEstimatorMixin
from ._seeding import base_seed as _base_seed
from ._seeding import derived_seed as _derived_seed
from .nn import FeaturePurifier, check_device, cpu_if_no_cuda, single_thread

__all__ = ["SmoothedClassifier", "clopper_pearson_lower", "smoothing_timestep"]

logger = logging.getLogger(__name__)

_TRAIN, _SELECT, _ESTIMATE, _PREDICT, _COMPILED = 1, 2, 3, 4, 5


def smoothing_timestep(alphas_cumprod, sigma):
    """The diffusion step whose noise level is closest to ``sigma``.

    The forward process ``x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps`` is
    ``sqrt(alpha_bar_t) (x_0 + sigma_t eps)`` with ``sigma_t = sqrt((1 - alpha_bar_t) /
    alpha_bar_t)``; a Gaussian-smoothed input ``x_0 + sigma eps`` scaled by
    ``sqrt(alpha_bar_t)`` is therefore a sample of step ``t`` when ``sigma_t = sigma``
    (Carlini et al., 2023, section 3).

    Parameters
    ----------
    alphas_cumprod : array-like of shape (T,)
        ``alpha_bar`` of steps ``1 .. T`` (``DiffusionPurifier.alphas_cumprod_``), in (0, 1).
    sigma : float
        Standard deviation of the smoothing noise, > 0, in feature units.

    Returns
    -------
    t : int
        Step in ``1 .. T`` minimising ``|sigma_t - sigma|`` (the first one on a tie).
    sigma_t : float
        Its noise level ``sigma_t``.

    Raises
    ------
    ValueError
        If ``sigma`` is not positive and finite, ``alphas_cumprod`` is not a 1-D array in
        (0, 1), or ``sigma`` exceeds the largest noise level of the schedule by more than
        10 % (the denoiser never saw such noise).
    """
    ab = np.asarray(alphas_cumprod, dtype=np.float64)
    if ab.ndim != 1 or ab.size == 0 or not np.all((ab > 0) & (ab < 1)):
        raise ValueError("alphas_cumprod must be a non-empty 1-D array with values in (0, 1).")
    if not (isinstance(sigma, numbers.Real) and math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a positive finite number, got {sigma!r}.")
    sigmas = np.sqrt((1.0 - ab) / ab)
    if sigma > 1.1 * sigmas.max():
        raise ValueError(
            f"sigma={sigma!r} exceeds the largest noise level of the schedule "
            f"({sigmas.max():.4g}); use a longer schedule or a smaller sigma."
        )
    t = int(np.argmin(np.abs(sigmas - sigma))) + 1
    return t, float(sigmas[t - 1])


def clopper_pearson_lower(k, n, alpha):
    """One-sided Clopper-Pearson lower confidence bound on a binomial proportion.

    ``P(p >= bound) >= 1 - alpha`` for ``k`` successes out of ``n`` trials:
    ``bound = Beta.ppf(alpha; k, n - k + 1)`` and 0 for ``k = 0``. It is the lower end of
    the two-sided exact interval at level ``1 - 2 alpha``, as in Cohen et al. (2019) and
    ``scipy.stats.binomtest(k, n).proportion_ci(1 - 2 * alpha, method="exact").low``.

    Parameters
    ----------
    k : int or array-like of int
        Successes, ``0 <= k <= n``.
    n : int or array-like of int
        Trials, >= 1 (broadcast against ``k``).
    alpha : float
        Failure probability in (0, 0.5).

    Returns
    -------
    bound : float or ndarray of float64
        In [0, 1), the shape of ``k`` and ``n`` broadcast together.

    Raises
    ------
    ValueError
        If ``alpha`` is outside (0, 0.5), ``n < 1`` or ``k`` is outside ``0 .. n``.
    """
    if not (isinstance(alpha, numbers.Real) and 0 < alpha < 0.5):
        raise ValueError(f"alpha must be a number in (0, 0.5), got {alpha!r}.")
    k_arr, n_arr = np.broadcast_arrays(np.asarray(k), np.asarray(n))
    if np.any(n_arr < 1) or np.any(k_arr < 0) or np.any(k_arr > n_arr):
        raise ValueError("clopper_pearson_lower needs n >= 1 and 0 <= k <= n.")
    k_f = k_arr.astype(np.float64)
    n_f = n_arr.astype(np.float64)
    with np.errstate(invalid="ignore"):
        bound = np.where(k_f > 0, beta.ppf(alpha, np.maximum(k_f, 1), n_f - k_f + 1), 0.0)
    return float(bound) if bound.ndim == 0 else bound


class _NoDenoiser(torch.nn.Module):
    """The identity as a denoiser ``(x_t, t) -> x_t`` (Gaussian smoothing, no purifier)."""

    def forward(self, x, t):
        return x


class SmoothedClassifier(VersionedEstimatorMixin, MetaEstimatorMixin, ClassifierMixin,
                         BaseEstimator):
    """Randomized smoothing of a feature classifier, with diffusion denoising; certifies
    an L2 radius per sample.

    The smoothed classifier ``g(z) = argmax_c P(f(D(z + sigma eps)) = c)`` (see the
    module's docstring) over feature vectors ``z`` of shape ``(N, k)``: in the pipeline,
    the selected, L2-normalised NMF features, in place of the purifier and CNN
    (``Pipeline([("nmf", ...), ("select", ...), ("smooth", SmoothedClassifier(...))])``).
    The certificate is in the features, L2 norm, feature units: an L-inf perturbation of
    size ``eps`` of ``k`` features lies in the L2 ball of radius ``sqrt(k) eps``.

    Denoising step ``D`` (Carlini et al., 2023): with the fitted purifier's schedule, the
    step ``t*`` whose ``sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t)`` is closest to
    ``sigma`` (:func:`smoothing_timestep`, ``timestep_``), and ``D(x) =
    denoiser_(sqrt(alpha_bar_t*) x, t*)``: one x0-prediction, no averaging. The
    certificate is for the noise ``sigma`` actually added, whatever ``sigma_t*`` is: ``D``
    and ``f`` are any fixed functions. With ``purifier=None``, ``D`` is the identity
    (Gaussian smoothing of Cohen et al., 2019).

    Fitting: the purifier is cloned and fitted on the clean features (it trains the
    denoiser; its own ``t`` and ``n_eot`` play no part here). With ``train_on="noisy"``
    (default) the base classifier is trained on ``D(z + sigma eps)`` of the training
    features, ``n_train_draws`` independent draws a row (the inputs it sees when
    smoothing; Cohen et al. train on Gaussian-augmented inputs, Salman et al. on denoised
    ones); ``train_on="clean"`` trains it on the clean features (an "off-the-shelf"
    classifier as in Carlini et al.). A fitted purifier or classifier is used as it is
    when wrapped in :class:`sklearn.frozen.FrozenEstimator`.

    Noise: every call draws the noise of its ``n0`` or ``n`` draws once, shape
    ``(n_draws, k)``, from a :class:`torch.Generator` (on the CPU, so CPU and CUDA see the
    same noise) seeded from ``random_state`` and the call's purpose (selection,
    estimation, prediction: independent streams), and shares it between the rows (common
    random numbers, as in :class:`~sknnmfdiff.DiffusionPurifier`). A row's result therefore
    depends only on that row: not on its batch neighbours, its position, the batch size
    or the device (up to float rounding of the kernels). For every single row the draws
    are i.i.d. ``N(0, sigma^2 I)``, so each certificate holds with probability ``1 -
    alpha``; the Monte Carlo errors of different rows are correlated. With an int
    ``random_state`` repeated calls give the same answer; ``None`` draws fresh noise on
    every call. An attack must not be scored with noise it has seen: score adversarial
    inputs with another ``random_state`` (``set_params``) than the one the attack used.

    Parameters
    ----------
    purifier : estimator or None, default=None
        Unfitted :class:`~sknnmfdiff.DiffusionPurifier` (or any estimator whose ``fit(X)``
        sets ``denoiser_``, a torch module mapping ``(x_t (M, k), t)`` to predicted
        ``x_0``, and ``alphas_cumprod_``). ``None``: no denoising step.
    classifier : estimator or None, default=None
        Base classifier ``f`` over ``(M, k)`` features with ``fit`` and ``predict``.
        ``None``: a :class:`~sknnmfdiff.SkorchCNNClassifier` with this estimator's
        ``random_state``. A fitted skorch-based classifier (``net_.module_`` a torch
        module giving logits) is run directly on ``device``; any other through its
        ``predict`` on the CPU.
    sigma : float, default=0.25
        Standard deviation of the smoothing noise per feature, > 0, in feature units (the
        features are L2-normalised rows in [0, 1]).
    n0 : int, default=100
        Draws that select the class in :meth:`certify` (>= 1).
    n : int, default=1000
        Draws that estimate ``p_A`` in :meth:`certify` and that vote in :meth:`predict`
        and :meth:`predict_proba` (>= 1).
    alpha : float, default=0.001
        Failure probability of a certificate and of a prediction, in (0, 0.5).
    train_on : {"noisy", "clean"}, default="noisy"
        What the base classifier is trained on (see above).
    n_train_draws : int, default=1
        Noisy copies of every training row for ``train_on="noisy"`` (>= 1).
    abstain_label : scalar, default=-1
        Label returned by :meth:`predict` and :meth:`certify` when they abstain; must not
        be one of the classes. Returned arrays have the dtype of the classes promoted with
        it (object when one is a string and the other a number).
    batch_size : int, default=10000
        Rows (samples x draws) per pass of the denoiser and classifier (>= 1); does not
        change the results.
    device : str, default="cpu"
        Torch device of the smoothing passes (``"cpu"``, ``"cuda"``, ``"cuda:1"``); the
        fitted modules stay on the CPU. The purifier and classifier keep their own
        ``device`` parameters for fitting.
    random_state : int, RandomState instance or None, default=None
        Seeds the training noise (``fit``) and the noise of every call (see above).

    Attributes
    ----------
    purifier_ : estimator or None
        The fitted purifier.
    classifier_ : estimator
        The fitted base classifier.
    classes_ : ndarray of shape (n_classes,)
        Class labels (those of ``classifier_``).
    timestep_ : int or None
        The step ``t*`` of the denoising step (``None`` without a purifier).
    timestep_sigma_ : float or None
        Its noise level ``sigma_t*``.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen in ``fit``, when they are all strings.

    Raises
    ------
    ValueError
        From ``fit``: ``abstain_label`` among the classes, ``sigma`` beyond the
        purifier's schedule, NaN or infinite ``X``, a device that is not available.
    TypeError
        From ``fit``: a fitted purifier without ``denoiser_`` or ``alphas_cumprod_``.

    Notes
    -----
    The largest radius ``n`` draws can certify is ``sigma * Phi^-1(alpha^(1/n))``, reached
    when all ``n`` votes agree: ``2.46 sigma`` for ``n = 1000`` and ``3.2 sigma`` for ``n =
    10000`` at ``alpha = 0.001``. With ``sigma = 0.12`` and ``n = 1000`` no radius reaches
    0.316, the L2 radius of an L-inf ``eps = 0.10`` on ``k = 10`` features.

    Measured (``benchmarks/certify_smoothing.py``, output in
    ``docs/results/certify_smoothing.txt``): on the 220 test images of the paper split,
    with the defended paper pipeline's features and denoiser (seed 0, ``k = 10``) and a CNN
    trained on 8 noisy-then-denoised copies of the training features, ``n = 10000``: the
    certified accuracy at radius 0 (clean, abstentions wrong) was 77.7 %, 64.5 % and
    59.1 % for ``sigma = 0.12``, 0.25 and 0.5 (the defended pipeline itself: 84.5 %); at the
    L2 radius 0.316 of L-inf ``eps = 0.10`` it was 1.8 %, 3.6 % and 5.5 %; the largest L-inf
    ``eps`` with certified accuracy >= 50 % was 0.024. With one noisy copy
    (``n_train_draws=1``, the default) and ``n = 1000`` the radius-0 figures were 71.8,
    60.0 and 41.8 %. Gaussian smoothing without the denoiser (``purifier=None``) certified
    about as much (73.6, 67.7 and 59.5 % at radius 0; differences within the confidence
    intervals).

    See Also
    --------
    sknnmfdiff.evaluation.certified_accuracy : certified accuracy against the radius.
    sknnmfdiff.evaluation.check_certified_bound : no attack may beat the certificate.

    References
    ----------
    .. [1] J. Cohen, E. Rosenfeld and J. Z. Kolter, "Certified adversarial robustness via
       randomized smoothing", ICML 2019.
    .. [2] H. Salman et al., "Denoised smoothing: a provable defense for pretrained
       classifiers", NeurIPS 2020.
    .. [3] N. Carlini et al., "(Certified!!) Adversarial robustness for free!", ICLR 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sknnmfdiff.smoothing import SmoothedClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 4)).astype(np.float32)
    >>> y = (X[:, 0] > 0).astype(int)
    >>> smooth = SmoothedClassifier(classifier=LogisticRegression(), sigma=0.5,
    ...                             n=500, random_state=0).fit(X, y)
    >>> label, radius = smooth.certify(X[:3])
    >>> label.shape, radius.dtype
    ((3,), dtype('float64'))
    """

    _parameter_constraints: dict = {
        "purifier": [HasMethods(["fit"]), None],
        "classifier": [HasMethods(["fit", "predict"]), None],
        "sigma": [real_interval(0, None, closed="neither")],
        "n0": [int_interval(1, None, closed="left")],
        "n": [int_interval(1, None, closed="left")],
        "alpha": [real_interval(0, 0.5, closed="neither")],
        "train_on": [StrOptions({"noisy", "clean"})],
        "n_train_draws": [int_interval(1, None, closed="left")],
        "abstain_label": "no_validation",
        "batch_size": [int_interval(1, None, closed="left")],
        "device": [str],
        "random_state": RANDOM_STATE,
    }

    def __init__(
        self, purifier=None, classifier=None, *, sigma=0.25, n0=100, n=1000, alpha=0.001,
        train_on="noisy", n_train_draws=1, abstain_label=-1, batch_size=10_000, device="cpu",
        random_state=None,
    ):
        self.purifier = purifier
        self.classifier = classifier
        self.sigma = sigma
        self.n0 = n0
        self.n = n
        self.alpha = alpha
        self.train_on = train_on
        self.n_train_draws = n_train_draws
        self.abstain_label = abstain_label
        self.batch_size = batch_size
        self.device = device
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags

    # ------------------------------------------------------------------ helpers
    def _device(self, inference=False):
        """The torch device; for ``inference`` (a fitted model), the CPU with a warning
        when ``device`` names CUDA and this machine has none."""
        device = cpu_if_no_cuda(self.device, type(self).__name__) if inference else self.device
        return check_device(device)

    def _denoise_fn(self, device):
        """``D`` as a torch function on ``device``: (M, k) -> (M, k); identity without a
        purifier."""
        if self.purifier_ is None:
            return lambda x: x
        denoiser = self.purifier_.denoiser_
        if device.type != "cpu" or denoiser.training:  # a copy: the fitted one stays put
            denoiser = copy.deepcopy(denoiser).to(device).eval()
        scale = math.sqrt(float(self.purifier_.alphas_cumprod_[self.timestep_ - 1]))
        t = self.timestep_
        return lambda x: denoiser(scale * x, t)

    def _classify_fn(self, device):
        """``f`` as a function of a torch (M, k) batch -> int64 class indices (M,)."""
        clf = self.classifier_
        module = getattr(getattr(clf, "net_", None), "module_", None)
        if isinstance(module, torch.nn.Module):
            if device.type != "cpu" or module.training or next(
                module.parameters(), torch.empty(0)
            ).device != device:
                module = copy.deepcopy(module).to(device).eval()
            return lambda x: module(x).argmax(dim=1)
        classes = self.classes_

        def predict(x):
            pred = np.asarray(clf.predict(x.cpu().numpy()))
            idx = np.searchsorted(classes, pred).clip(0, len(classes) - 1)
            if not np.array_equal(classes[idx], pred):
                raise ValueError("The base classifier predicted labels outside its classes_.")
            return torch.from_numpy(idx.astype(np.int64))

        return predict

    def _noise(self, n_draws, purpose):
        seed = _derived_seed(_base_seed(self.random_state), purpose)
        gen = torch.Generator().manual_seed(seed)
        return torch.randn((n_draws, self.n_features_in_), generator=gen)

    def _votes(self, X, n_draws, purpose):
        """Votes (N, n_classes) int64 of ``n_draws`` smoothing draws of every row."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float32, reset=False)
        device = self._device(inference=True)
        n_rows, n_classes = X.shape[0], len(self.classes_)
        counts = np.zeros((n_rows, n_classes), dtype=np.int64)
        if n_rows == 0:
            return counts
        eps = self._noise(n_draws, purpose).to(device) * float(self.sigma)
        z = torch.from_numpy(np.ascontiguousarray(X)).to(device)
        denoise, classify = self._denoise_fn(device), self._classify_fn(device)
        total, step = n_rows * n_draws, int(self.batch_size)
        with torch.no_grad(), single_thread(device):
            for start in range(0, total, step):
                pairs = torch.arange(start, min(start + step, total), device=device)
                row, draw = pairs // n_draws, pairs % n_draws
                pred = classify(denoise(z[row] + eps[draw])).to(device)
                first = int(row[0])
                local = (row - first) * n_classes + pred
                n_local = int(row[-1]) - first + 1
                block = torch.bincount(local, minlength=n_local * n_classes)
                counts[first : first + n_local] += block.cpu().numpy().reshape(n_local, n_classes)
        return counts

    def _labels(self, idx):
        """Labels of class indices, ``abstain_label`` where ``idx == -1``."""
        classes, abstain = self.classes_, np.asarray(self.abstain_label)
        kinds = {classes.dtype.kind in "biuf", abstain.dtype.kind in "biuf"}
        strings = {classes.dtype.kind in "US", abstain.dtype.kind in "US"}
        dtype = np.result_type(classes, abstain) if kinds == {True} or strings == {True} \
            else object
        out = np.empty(idx.shape[0], dtype=dtype)
        keep = idx >= 0
        out[keep] = classes[idx[keep]]
        out[~keep] = self.abstain_label
        return out

    # -------------------------------------------------------------------- API
    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y):
        """Fit the purifier on ``X``, then the base classifier (see the class's docstring).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Clean features (in the pipeline: selected, L2-normalised NMF coefficients in
            [0, 1]); computations in float32.
        y : array-like of shape (n_samples,)
            Class labels.

        Returns
        -------
        self : SmoothedClassifier

        Raises
        ------
        ValueError
            If ``abstain_label`` is one of the classes, ``sigma`` is beyond the
            purifier's schedule, ``X`` holds NaN or infinity, or the device is missing.
        TypeError
            If the fitted purifier has no ``denoiser_`` or ``alphas_cumprod_``.
        """
        X, y = validate_data(self, X, y, dtype=np.float32)
        check_classification_targets(y)
        device = self._device()
        labels = np.unique(y)
        if any(label == self.abstain_label for label in labels.tolist()):
            raise ValueError(f"abstain_label={self.abstain_label!r} is one of the classes "
                             f"{labels.tolist()!r}; choose a value that is not a class.")
        self.purifier_ = None if self.purifier is None else clone(self.purifier).fit(X, None)
        self.timestep_ = self.timestep_sigma_ = None
        if self.purifier_ is not None:
            missing = [a for a in ("denoiser_", "alphas_cumprod_") if not hasattr(self.purifier_, a)]
            if missing:
                raise TypeError(f"The fitted purifier {type(self.purifier_).__name__} has no "
                                f"{', '.join(missing)}; pass a DiffusionPurifier.")
            self.timestep_, self.timestep_sigma_ = smoothing_timestep(
                self.purifier_.alphas_cumprod_, float(self.sigma))
            logger.info("SmoothedClassifier: sigma=%g -> step t*=%d (sigma_t*=%.4g)",
                        self.sigma, self.timestep_, self.timestep_sigma_)
        X_train, y_train = X, y
        if self.train_on == "noisy":
            gen = torch.Generator().manual_seed(
                _derived_seed(_base_seed(self.random_state), _TRAIN))
            draws = int(self.n_train_draws)
            noise = torch.randn((draws, *X.shape), generator=gen) * float(self.sigma)
            noisy = (torch.from_numpy(X)[None] + noise).reshape(-1, X.shape[1])
            denoise = self._denoise_fn(device)
            X_train = np.empty(tuple(noisy.shape), dtype=np.float32)
            with torch.no_grad(), single_thread(device):
                for start in range(0, noisy.shape[0], int(self.batch_size)):
                    part = noisy[start : start + int(self.batch_size)].to(device)
                    X_train[start : start + part.shape[0]] = denoise(part).cpu().numpy()
            y_train = np.tile(y, draws)
        if self.classifier is None:
            from .classifier import SkorchCNNClassifier

            classifier = SkorchCNNClassifier(random_state=self.random_state)
        else:
            classifier = clone(self.classifier)
        self.classifier_ = classifier.fit(X_train, y_train)
        self.classes_ = np.asarray(self.classifier_.classes_)
        return self

    def predict_proba(self, X):
        """Vote frequencies of the ``n`` smoothing draws: ``P(f(D(z + sigma eps)) = c)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features_in_)
            Features.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes), float64
            Multiples of ``1 / n`` in [0, 1], rows summing to 1; column ``j`` is
            ``classes_[j]``. The same draws as :meth:`predict`.
        """
        return self._votes(X, int(self.n), _PREDICT) / float(self.n)

    def predict(self, X):
        """PREDICT of Cohen et al. (2019): the top class of ``n`` draws, or abstain.

        The two most voted classes ``A`` and ``B`` (counts ``n_A >= n_B``, ties to the
        lower index) are compared by a two-sided binomial test of ``n_A`` out of ``n_A +
        n_B`` against ``p = 1/2`` (:func:`scipy.stats.binomtest`); the prediction is ``A``
        when its p-value is at most ``alpha`` and ``abstain_label`` otherwise. The
        probability of returning a class other than ``g(z)`` is at most ``alpha``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features_in_)
            Features.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Labels from ``classes_``, or ``abstain_label``.
        """
        counts = self._votes(X, int(self.n), _PREDICT)
        order = np.argsort(-counts, axis=1, kind="stable")
        rows = np.arange(counts.shape[0])
        n_a = counts[rows, order[:, 0]]
        n_b = counts[rows, order[:, 1]] if counts.shape[1] > 1 else np.zeros_like(n_a)
        idx = order[:, 0].copy()
        for i in range(counts.shape[0]):
            if binomtest(int(n_a[i]), int(n_a[i] + n_b[i]), 0.5).pvalue > self.alpha:
                idx[i] = -1
        return self._labels(idx)

    def make_torch_purifier(self, *, seed=None):
        """The smoothing noise and denoising step as a :class:`~sknnmfdiff.nn.FeaturePurifier`.

        One draw per call: ``D(z + sigma eps)`` with ``D`` the denoiser at ``timestep_``
        (``denoiser_(sqrt(alpha_bar_t*) (z + sigma eps), t*)``, exactly the step of
        :meth:`predict`), or ``z + sigma eps`` without a purifier. Followed by the base
        classifier's network, it is the *soft* smoothed classifier an attacker
        differentiates: averaged over draws (the evaluator's EOT and its
        mean-probability scoring) it estimates ``E[softmax(f(D(z + sigma eps)))]``
        (Salman et al., 2019, "Provably robust deep learning via adversarially trained
        smoothed classifiers"), whose top class is :meth:`predict`'s up to the hard
        votes and abstention.

        Parameters
        ----------
        seed : int or None, default=None
            Seed of its generator; None derives one from ``random_state`` (fresh
            entropy when that is None), independent of the draws of :meth:`predict`
            and :meth:`certify`.

        Returns
        -------
        purifier : FeaturePurifier
            On the CPU, in eval mode, ``n_eot=1``, ``randomized=True``; wraps the fitted
            denoiser itself (not a copy).
        """
        check_is_fitted(self)
        if seed is None:
            seed = _derived_seed(_base_seed(self.random_state), _COMPILED)
        if self.purifier_ is None:
            module = FeaturePurifier(_NoDenoiser(), [1.0], 1, 1, antithetic=False,
                                     sigma=float(self.sigma))
        else:
            module = FeaturePurifier(self.purifier_.denoiser_, self.purifier_.alphas_cumprod_,
                                     int(self.timestep_), 1, antithetic=False,
                                     sigma=float(self.sigma))
        module.randomized = float(self.sigma) > 0
        module.smoothing_sigma = float(self.sigma)  # what reports call it: not a purifier
        module.smoothing_denoised = self.purifier_ is not None
        return module.manual_seed(int(seed))

    def fitted_steps(self):
        """The fitted parts as pipeline steps, for :func:`~sknnmfdiff.to_torch_module`.

        Returns
        -------
        steps : list of (str, object)
            ``("smooth", self)`` (compiled through :meth:`make_torch_purifier`) and
            ``("clf", classifier_)``.
        """
        check_is_fitted(self)
        return [("smooth", self), ("clf", self.classifier_)]

    def certify(self, X, *, return_counts=False):
        """CERTIFY of Cohen et al. (2019): a class and a certified L2 radius per sample.

        ``n0`` selection draws choose the class ``c_A`` (most votes, ties to the lower
        index); ``n`` independent estimation draws count its votes ``n_A``;
        ``p_A_lower = clopper_pearson_lower(n_A, n, alpha)``. When ``p_A_lower < 1/2``
        the sample is abstained; otherwise ``radius = sigma * Phi^-1(p_A_lower)``, and
        with probability at least ``1 - alpha`` the smoothed classifier ``g`` returns
        ``c_A`` on the whole L2 ball of that radius around the sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features_in_)
            Features.
        return_counts : bool, default=False
            Also return ``n_A``.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            ``c_A`` as a label from ``classes_``, or ``abstain_label``.
        radius : ndarray of shape (n_samples,), float64
            Certified L2 radius in feature units (>= 0); NaN where abstained.
        counts : ndarray of shape (n_samples,), int64
            ``n_A`` (only with ``return_counts=True``).
        """
        selection = self._votes(X, int(self.n0), _SELECT)
        c_a = selection.argmax(axis=1)
        estimation = self._votes(X, int(self.n), _ESTIMATE)
        n_a = estimation[np.arange(estimation.shape[0]), c_a]
        p_lower = np.atleast_1d(clopper_pearson_lower(n_a, int(self.n), float(self.alpha)))
        certified = p_lower >= 0.5
        radius = np.full(n_a.shape[0], np.nan)
        radius[certified] = float(self.sigma) * norm.ppf(p_lower[certified])
        y_pred = self._labels(np.where(certified, c_a, -1))
        return (y_pred, radius, n_a) if return_counts else (y_pred, radius)
