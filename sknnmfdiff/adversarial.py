"""Adversarial training of the classifier through the defended pipeline.

:class:`AdversarialClassifier` is a final pipeline step that trains the CNN of
:class:`~sknnmfdiff.SkorchCNNClassifier` on adversarial examples crafted, batch by
batch, through the frozen purifier (:class:`~sknnmfdiff.DiffusionPurifier`) and the
current network: PGD adversarial training (Madry et al., 2018) or TRADES (Zhang et al.,
2019), with expectation over the purifier's noise (Athalye et al., 2018). The threat
model is the evaluation's: L-inf perturbations of the selected, L2-normalised NMF
features in [0, 1] (feature space) or, with ``features``, of the pixels in [0, 1]
through the differentiable NNLS projection (pixel space). The attacks themselves are
plain torch (:mod:`sknnmfdiff.nn`); the skorch net and its training loop are the
classifier's own, with a custom training and validation step.
"""

import copy
import logging
import warnings
import time

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context, clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_selection import SelectorMixin
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import HasMethods, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from skorch import NeuralNetClassifier
from skorch.callbacks import PassthroughScoring
from skorch.dataset import unpack_data
from skorch.utils import to_tensor
from torch import nn

from ._constraints import RANDOM_STATE, int_interval, real_interval
from ._persistence import VersionedEstimatorMixin
from ._seeding import base_seed, derived_seed
from .classifier import SkorchCNNClassifier
from .decomposition import KLNMFTransformer
from .nn import (
    NNLSProjection,
    as_tensor,
    eot_noise,
    mean_probability_kl,
    mean_probability_nll,
    pgd_linf,
)
from .purification import DiffusionPurifier

__all__ = ["AdversarialClassifier"]

logger = logging.getLogger(__name__)

_ATTACK, _TRAIN_NOISE, _VALID, _CLASSIFIER = 1, 2, 3, 4


class _Columns(nn.Module):
    """Keep the columns ``index`` of a (N, n_features) input (a fitted selector)."""

    def __init__(self, index):
        super().__init__()
        self.register_buffer("index", torch.as_tensor(np.asarray(index), dtype=torch.long))

    def forward(self, z):
        return z.index_select(1, self.index)


def _torch_front(features):
    """The fitted pixel -> feature steps as one frozen, differentiable module."""
    steps = features.steps if isinstance(features, Pipeline) else [("features", features)]
    modules = []
    for name, est in steps:
        if est is None or (isinstance(est, str) and est == "passthrough"):
            continue
        if isinstance(est, KLNMFTransformer):
            modules.append(NNLSProjection(est.components_, normalize=True))
        elif isinstance(est, SelectorMixin):
            modules.append(_Columns(np.flatnonzero(est.get_support())))
        else:
            raise TypeError(
                f"features step {name!r} of type {type(est).__name__} has no differentiable "
                "torch version: pixel-space adversarial training supports KLNMFTransformer "
                "and feature selectors (SelectorMixin) only."
            )
    return nn.Sequential(*modules).eval().requires_grad_(False)


class _Adversary:
    """What the adversarial net needs per batch: the frozen front (pixels -> features, or
    None) and purifier (or None), the attack's settings, its generators and work counts.

    A plain object, not a ``nn.Module``, so that skorch does not register it as a module
    of the net. Three generators: the attack's draws (random starts, EOT noise) in
    training, the purifier noise of the features the net trains on, and the validation's
    (attack and noise), rewound before every validation pass so that the validation
    loss of every epoch is measured under the same draws.
    """

    def __init__(self, *, front, purifier, method, eps, n_steps, step_size, beta, n_eot,
                 seed, n_features):
        self.front, self.purifier = front, purifier
        self.method, self.eps, self.n_steps = method, float(eps), int(n_steps)
        self.step_size, self.beta = float(step_size), float(beta)
        self.randomized = purifier is not None and int(purifier.t) > 0
        self.n_draws = int(n_eot) if self.randomized else 1
        self.seed, self.n_features = seed, n_features
        self.skip_attack = method == "trades" and self.beta == 0  # natural training
        self.counts = {"attacked_batches": 0, "attack_gradients": 0, "sample_gradients": 0}

    def to(self, device):
        """Copies of the front and purifier on ``device``; seeded generators there."""
        self.front = None if self.front is None else copy.deepcopy(self.front).to(device)
        if self.purifier is not None:  # (made by make_torch_purifier: no generator yet)
            self.purifier = copy.deepcopy(self.purifier).to(device)
        self.gen = {p: torch.Generator(device=device).manual_seed(derived_seed(self.seed, p))
                    for p in (_ATTACK, _TRAIN_NOISE, _VALID)}
        return self

    def rewind_validation(self):
        self.gen[_VALID].manual_seed(derived_seed(self.seed, _VALID))

    def features(self, x):
        return x if self.front is None else self.front(x)

    def _noise(self, z, n_draws, generator):
        """(n_draws, n_eot, N, k) purifier noise, one set per row and draw."""
        p = self.purifier
        return torch.stack([
            eot_noise(p.n_eot, z.shape[0], z.shape[1], generator=generator,
                      antithetic=p.antithetic, device=z.device, dtype=z.dtype)
            for _ in range(n_draws)])

    def logits(self, module, x, n_draws, generator):
        """(n_draws, N, n_classes) logits of ``n_draws`` purifier draws at input ``x``."""
        z = self.features(x)
        if not self.randomized:
            return module(z).unsqueeze(0)
        zp = self.purifier.purify_draws(z, self._noise(z, n_draws, generator))
        return module(zp.reshape(-1, zp.shape[2])).reshape(n_draws, z.shape[0], -1)

    def attack(self, module, x, y, generator):
        """Adversarial inputs of a batch against ``module`` in eval mode (restored after)."""
        was_training = module.training
        module.eval()
        try:
            if self.method == "pgd":  # Madry et al.: cross-entropy, uniform random start
                def objective(xa):
                    return mean_probability_nll(self.logits(module, xa, self.n_draws, generator), y)
                start = "uniform"
            else:  # TRADES: KL from the clean prediction, start near the clean input
                with torch.no_grad():
                    p_ref = torch.softmax(self.logits(module, x, self.n_draws, generator), -1)
                    p_ref = p_ref.mean(0)

                def objective(xa):
                    return mean_probability_kl(self.logits(module, xa, self.n_draws, generator), p_ref)
                start = "normal"
            x_adv = pgd_linf(objective, x, eps=self.eps, n_steps=self.n_steps,
                             step_size=self.step_size, generator=generator, start=start)
        finally:
            module.train(was_training)
        self.counts["attacked_batches"] += 1
        self.counts["attack_gradients"] += self.n_steps
        self.counts["sample_gradients"] += self.n_steps * x.shape[0] * self.n_draws
        return x_adv

    def train_inputs(self, inputs, generator):
        """The features the net trains on, each input purified (one draw, ``n_eot`` noise
        vectors per row) with the same noise, so that clean and adversarial differ only
        by the perturbation."""
        zs = [self.features(x) for x in inputs]
        if not self.randomized:
            return zs
        eps = self._noise(zs[0], 1, generator)
        return [self.purifier.purify_draws(z, eps)[0] for z in zs]


class _AdversarialNet(NeuralNetClassifier):
    """skorch net whose training and validation steps use adversarial examples.

    After ``fit`` the net is made a plain :class:`NeuralNetClassifier` (class and state).
    Training step: attack the batch (module in eval mode), then the loss on the
    purified adversarial features (PGD) or natural loss + ``beta`` KL (TRADES), in train
    mode. Validation step: the same objective on held-out rows under the validation's
    draws, so that early stopping watches the adversarial loss (Rice et al., 2020,
    "Overfitting in adversarially robust deep learning", ICML); ``y_pred`` (hence
    ``valid_acc``) is the clean prediction for TRADES and the adversarial one for PGD.
    """

    adversary_ = None

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        if self.adversary_ is not None and not training:
            self.adversary_.rewind_validation()
        return super().run_single_epoch(iterator, training, prefix, step_fn, **fit_params)

    def _adversarial_step(self, batch, training):
        adv = self.adversary_
        Xi, yi = unpack_data(batch)
        x, y = to_tensor(Xi, device=self.device), to_tensor(yi, device=self.device)
        attack_gen = adv.gen[_ATTACK if training else _VALID]
        noise_gen = adv.gen[_TRAIN_NOISE if training else _VALID]
        x_adv = None if adv.skip_attack else adv.attack(self.module_, x, y, attack_gen)
        self._set_training(training)
        with torch.set_grad_enabled(training):
            if adv.method == "pgd":
                (z_adv,) = adv.train_inputs([x_adv], noise_gen)
                logits_adv = y_pred = self.infer(z_adv)
                loss = self.get_loss(logits_adv, y, X=x, training=training)
            else:
                zs = adv.train_inputs([x] if x_adv is None else [x, x_adv], noise_gen)
                y_pred = self.infer(zs[0])
                loss = self.get_loss(y_pred, y, X=x, training=training)
                logits_adv = None
                if x_adv is not None:
                    logits_adv = self.infer(zs[1])
                    loss = loss + adv.beta * torch.nn.functional.kl_div(
                        torch.log_softmax(logits_adv, 1), torch.softmax(y_pred, 1),
                        reduction="batchmean")
        if logits_adv is not None:
            acc = (logits_adv.argmax(1) == y).double().mean().item()
            self.history.record_batch(("train" if training else "valid") + "_adv_acc", acc)
        return loss, y_pred

    def train_step_single(self, batch, **fit_params):
        if self.adversary_ is None:
            return super().train_step_single(batch, **fit_params)
        loss, y_pred = self._adversarial_step(batch, training=True)
        loss.backward()
        return {"loss": loss, "y_pred": y_pred}

    def validation_step(self, batch, **fit_params):
        if self.adversary_ is None:
            return super().validation_step(batch, **fit_params)
        loss, y_pred = self._adversarial_step(batch, training=False)
        return {"loss": loss.detach(), "y_pred": y_pred.detach()}


class _AdversarialCNN(SkorchCNNClassifier):
    """:class:`SkorchCNNClassifier` whose net trains adversarially (internal).

    Same parameters, fit and prediction as its parent: only the net the parent builds
    is rebuilt as an :class:`_AdversarialNet` (from the net's own parameters) carrying
    ``self._adversary``, which :class:`AdversarialClassifier` sets before ``fit`` and
    removes after it.
    """

    def _module_params(self, X_tr, n_classes):
        adversary = getattr(self, "_adversary", None)
        if adversary is not None and adversary.front is not None:
            # Pixel input: the network maps the front's features (and standardises
            # them by their statistics), not the pixels.
            with torch.no_grad():
                X_tr = adversary.front(as_tensor(X_tr)).numpy()
        return super()._module_params(X_tr, n_classes)

    def _build_net(self, module, *args, **kwargs):
        adversary = getattr(self, "_adversary", None)
        if adversary is None:  # refitted on its own: plain training
            return super()._build_net(module, *args, **kwargs)
        params = super()._build_net(module, *args, **kwargs).get_params(deep=False)
        callbacks = list(params.get("callbacks") or [])
        if not adversary.skip_attack:
            callbacks.append(("train_adv_acc", PassthroughScoring(
                "train_adv_acc", lower_is_better=False, on_train=True)))
            if params.get("train_split") is not None:
                callbacks.append(("valid_adv_acc", PassthroughScoring(
                    "valid_adv_acc", lower_is_better=False)))
        net = _AdversarialNet(**dict(params, callbacks=callbacks))
        net.adversary_ = adversary.to(torch.device(net.device))
        return net


class AdversarialClassifier(VersionedEstimatorMixin, ClassifierMixin, BaseEstimator):
    """CNN trained on adversarial examples made through the purifier (PGD or TRADES).

    The last step of an adversarially trained pipeline
    (:func:`~sknnmfdiff.make_adversarial_pipeline`). ``fit`` fits ``features`` (if
    given) and ``purifier`` on the clean training data, then trains a clone of
    ``classifier`` through its own skorch loop (seeding, validation split, early
    stopping, class weights, epoch table) with one change: every mini-batch is first
    attacked, in the L-inf ball of radius ``eps`` intersected with [0, 1], through the
    frozen purifier and the current network (in eval mode), and the network is then
    updated (in train mode) on

    * ``method="pgd"`` (Madry et al., 2018): the cross-entropy on the purified
      adversarial features; the attack maximises the cross-entropy of the mean
      probability over ``n_eot`` purifier draws, from a uniform random start;
    * ``method="trades"`` (Zhang et al., 2019): the cross-entropy on the purified clean
      features plus ``beta`` times ``KL(f(clean) || f(adversarial))``; the attack
      maximises that KL (mean probability over ``n_eot`` draws) from
      ``clean + 0.001 N(0, I)``. ``beta = 0`` is natural training: no attack is run.

    Either attack takes ``n_steps`` signed gradient steps of ``step_size``
    (:func:`sknnmfdiff.nn.pgd_linf`). The purified features the network trains on get
    one purifier draw (``purifier.n_eot`` noise vectors averaged) with noise of their
    own per row, shared by a row's clean and adversarial version; the held-out rows of
    early stopping are attacked the same way each epoch (the same draws every epoch),
    so early stopping watches the adversarial validation loss. At prediction,
    ``predict_proba(X) = classifier_.predict_proba(purifier_.transform(features_(X)))``:
    exactly the defended pipeline's computation, so
    :func:`~sknnmfdiff.to_torch_module` compiles it (NMF and selection, purifier,
    CNN) and :func:`~sknnmfdiff.evaluate_robustness` attacks it like any pipeline.

    Threat model: without ``features``, ``X`` is the selected, L2-normalised NMF
    features (feature units, in [0, 1]); with ``features`` (a
    :class:`~sknnmfdiff.KLNMFTransformer`, or a Pipeline of it and a selector), ``X``
    is pixels in [0, 1] and the attack perturbs the pixels through the exact NNLS
    projection's gradient (:class:`sknnmfdiff.nn.NNLSProjection`), which is far slower.

    Parameters
    ----------
    purifier : DiffusionPurifier or None, default=None
        Purifier in the loop (cloned and fitted on the clean features); None trains
        and predicts without purification.
    classifier : SkorchCNNClassifier or None, default=None
        Its parameters set the network and its training (cloned);
        None means ``SkorchCNNClassifier(random_state=...)`` seeded from ``random_state``.
    features : estimator or None, default=None
        Pixel-space training: an unfitted :class:`~sknnmfdiff.KLNMFTransformer` or a
        Pipeline of one and a feature selector, fitted on ``X`` first.
    method : {"pgd", "trades"}, default="trades"
        Training objective (see above).
    eps : float, default=0.1
        L-inf radius of the training attack, in [0, 1], in the units of ``X`` (feature
        or pixel units). 0 gives natural training (the attack still runs).
    n_steps : int, default=10
        Gradient steps of the training attack, >= 1.
    step_size : float or None, default=None
        Size of each signed step, > 0; None means ``2.5 * eps / n_steps`` (Madry et
        al.'s rule).
    beta : float, default=6.0
        TRADES' weight of the KL term, >= 0 (Zhang et al. use 6 on CIFAR-10); ignored
        by PGD.
    n_eot : int, default=4
        Purifier draws averaged (mean probability) per gradient of the training attack,
        >= 1; ignored without a purifier (or with ``t = 0``).
    random_state : int, RandomState instance or None, default=None
        Seeds the attack's random starts and EOT noise, the training features' purifier
        noise and the validation draws (torch generators of their own; the global RNGs
        are never used), and the default classifier. A given ``classifier`` and
        ``purifier`` keep their own ``random_state`` for their weights and noise.
        ``None`` draws fresh OS entropy.
    verbose : int, default=0
        At least the classifier's ``verbose``: > 0 logs its epoch table at INFO level,
        with the columns ``train_adv_acc`` and ``valid_adv_acc`` (accuracy on the
        training attack's examples).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels.
    features_ : estimator or None
        The fitted ``features``.
    purifier_ : DiffusionPurifier or None
        The fitted purifier.
    classifier_ : SkorchCNNClassifier
        The adversarially trained classifier (of a private subclass); ``net_.module_``
        maps float32 (N, k) features to logits, ``history_`` holds the epoch table.
    step_size_ : float
        The step size used.
    training_cost_ : dict
        ``seconds`` (wall time of ``fit``), ``features_seconds``, ``purifier_seconds``,
        ``classifier_seconds``; ``epochs``; ``attacked_batches``, ``attack_gradients``
        (batched input-gradient evaluations, one per attack step and batch, validation
        included) and ``sample_gradients`` (rows x purifier draws differentiated).
    n_features_in_ : int
        Number of columns of ``X`` in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the columns of ``X``, when they are all strings.

    Raises
    ------
    ValueError
        From ``fit``: bad parameters, ``X`` (or its features) outside [0, 1], NaN.
    TypeError
        From ``fit``: a ``classifier`` that is not a SkorchCNNClassifier, a ``purifier``
        that is not a DiffusionPurifier, a ``features`` step without a torch version.

    Notes
    -----
    On the paper split of the shared MRI data (test part, adaptive attack at eps = 0.10 in
    feature space; ``benchmarks/adversarial_training.py``, output in
    ``docs/results/adversarial_training.txt``) the adversarially trained pipelines reached
    63-78 % clean and 22-42 % robust balanced accuracy, against 85.0 % and 6.8 % for the
    paper's defended pipeline: robust accuracy is bought with clean accuracy, and the
    purifier in the loop did not add robustness over the same training without it.

    References
    ----------
    .. [1] A. Madry, A. Makelov, L. Schmidt, D. Tsipras and A. Vladu, "Towards deep
       learning models resistant to adversarial attacks", ICLR 2018.
    .. [2] H. Zhang, Y. Yu, J. Jiao, E. Xing, L. El Ghaoui and M. Jordan,
       "Theoretically principled trade-off between robustness and accuracy", ICML 2019.
    .. [3] A. Athalye, L. Engstrom, A. Ilyas and K. Kwok, "Synthesizing robust
       adversarial examples", ICML 2018 (expectation over transformation).

    Examples
    --------
    >>> import numpy as np
    >>> from sknnmfdiff import AdversarialClassifier, SkorchCNNClassifier
    >>> rng = np.random.default_rng(0)
    >>> Z = rng.random((120, 6)).astype(np.float32)
    >>> y = (Z[:, 0] > Z[:, 1]).astype(int)
    >>> clf = AdversarialClassifier(
    ...     classifier=SkorchCNNClassifier(max_epochs=3, random_state=0),
    ...     eps=0.05, n_steps=2, random_state=0).fit(Z, y)
    >>> clf.predict_proba(Z[:2]).shape
    (2, 2)
    """

    _parameter_constraints: dict = {
        "purifier": [HasMethods(["fit", "transform"]), None],
        "classifier": [HasMethods(["fit", "predict_proba"]), None],
        "features": [HasMethods(["fit", "transform"]), None],
        "method": [StrOptions({"pgd", "trades"})],
        "eps": [real_interval(0, 1, closed="both")],
        "n_steps": [int_interval(1, None, closed="left")],
        "step_size": [real_interval(0, None, closed="neither"), None],
        "beta": [real_interval(0, None, closed="left")],
        "n_eot": [int_interval(1, None, closed="left")],
        "random_state": RANDOM_STATE,
        "verbose": ["verbose"],
    }

    def __init__(self, purifier=None, classifier=None, *, features=None, method="trades",
                 eps=0.1, n_steps=10, step_size=None, beta=6.0, n_eot=4, random_state=None,
                 verbose=0):
        self.purifier = purifier
        self.classifier = classifier
        self.features = features
        self.method = method
        self.eps = eps
        self.n_steps = n_steps
        self.step_size = step_size
        self.beta = beta
        self.n_eot = n_eot
        self.random_state = random_state
        self.verbose = verbose

    def _check_params(self, seed):
        """(classifier, purifier) templates; TypeError naming a wrong sub-estimator."""
        classifier = self.classifier
        if classifier is None:
            classifier = SkorchCNNClassifier(random_state=derived_seed(seed, _CLASSIFIER))
        if not isinstance(classifier, SkorchCNNClassifier):
            raise TypeError(f"classifier must be a SkorchCNNClassifier (or None), got "
                            f"{type(classifier).__name__}.")
        if self.purifier is not None and not isinstance(self.purifier, DiffusionPurifier):
            raise TypeError(f"purifier must be a DiffusionPurifier or None, got "
                            f"{type(self.purifier).__name__}.")
        return classifier, self.purifier

    @staticmethod
    def _check_box(Z, what):
        if Z.size and (Z.min() < 0 or Z.max() > 1):
            raise ValueError(
                f"{what} must lie in [0, 1], the box of the threat model, got values in "
                f"[{Z.min():.4g}, {Z.max():.4g}]; scale them (pixels) or use L2-normalised "
                "NMF features.")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y):
        """Fit the features and the purifier on clean data, then train the classifier
        adversarially.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features in [0, 1] (feature space), or pixels in [0, 1] when ``features``
            is given; cast to float32.
        y : array-like of shape (n_samples,)
            Class labels, at least two classes.

        Returns
        -------
        self : AdversarialClassifier
        """
        t_start = time.perf_counter()
        seed = base_seed(self.random_state)
        classifier, purifier = self._check_params(seed)
        X, y = validate_data(self, X, y, dtype=[np.float32, np.float64])
        check_classification_targets(y)
        X = np.ascontiguousarray(X, dtype=np.float32)
        self._check_box(X, "X" if self.features is None else "X (pixels)")
        cost = {}
        t0 = time.perf_counter()
        features, front, Z = None, None, X
        if self.features is not None:
            features = clone(self.features).fit(X, y)
            front = _torch_front(features)
            Z = np.ascontiguousarray(features.transform(X), dtype=np.float32)
            self._check_box(Z, "The features of X")
        cost["features_seconds"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        purifier = None if purifier is None else clone(purifier).fit(Z)
        cost["purifier_seconds"] = time.perf_counter() - t0

        step_size = self.step_size
        if step_size is None:
            step_size = 2.5 * self.eps / self.n_steps
        adversary = _Adversary(
            front=front, purifier=None if purifier is None else purifier.make_torch_purifier(),
            method=self.method, eps=self.eps, n_steps=self.n_steps, step_size=step_size,
            beta=self.beta, n_eot=self.n_eot, seed=seed,
            n_features=None if front is None else Z.shape[1])
        params = classifier.get_params(deep=False)
        if "verbose" in params:
            params["verbose"] = max(int(params["verbose"] or 0), int(self.verbose))
        clf = _AdversarialCNN(**params)
        clf._adversary = adversary
        t0 = time.perf_counter()
        try:
            clf.fit(X, y)
        finally:
            del clf._adversary
        cost["classifier_seconds"] = time.perf_counter() - t0
        # A plain net from now on: the class skorch builds (what unpickling and a model
        # file rebuild), without the adversary.
        del clf.net_.adversary_
        clf.net_.__class__ = NeuralNetClassifier
        if front is not None:  # trained on pixels; predicts from the front's features
            clf.n_features_in_ = Z.shape[1]
            clf.__dict__.pop("feature_names_in_", None)

        self.features_, self.purifier_, self.classifier_ = features, purifier, clf
        self.classes_ = clf.classes_
        self.step_size_ = float(step_size)
        predicted = np.unique(self.predict(X))
        if predicted.size == 1:  # robust only as a constant is: say so, do not hide it
            warnings.warn(
                f"AdversarialClassifier ({self.method}, eps={self.eps:g}): the trained network "
                f"predicts one class ({predicted[0]!r}) for every training sample; training "
                "collapsed (eps too large for these features or too few samples). Its robust "
                "accuracy is then the share of that class: lower eps, use more samples, or use "
                "TRADES with a smaller beta.", ConvergenceWarning, stacklevel=2)
        self.training_cost_ = dict(
            seconds=time.perf_counter() - t_start, **cost, epochs=int(clf.n_epochs_),
            **adversary.counts)
        logger.info("AdversarialClassifier (%s, eps=%g): %d epochs, %d attack gradients, "
                    "%.1f s", self.method, self.eps, clf.n_epochs_,
                    adversary.counts["attack_gradients"], self.training_cost_["seconds"])
        return self

    def _classifier_input(self, X):
        """Purified features of validated ``X``, the input of ``classifier_``."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float32, np.float64], reset=False)
        Z = X if self.features_ is None else self.features_.transform(X)
        return Z if self.purifier_ is None else self.purifier_.transform(Z)

    def predict_proba(self, X):
        """Class probabilities of the purified features.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features_in_)
            As in ``fit``.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes), float64
            Column ``j`` is ``classes_[j]``; one purifier call (its seeded ``transform``).
        """
        Z = self._classifier_input(X)  # raises NotFittedError first
        return self.classifier_.predict_proba(Z)

    def decision_function(self, X):
        """The classifier's decision function on the purified features.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features_in_)
            As in ``fit``.

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes), float64
            See :meth:`SkorchCNNClassifier.decision_function`.
        """
        Z = self._classifier_input(X)  # raises NotFittedError first
        return self.classifier_.decision_function(Z)

    def predict(self, X):
        """Most probable class of each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features_in_)
            As in ``fit``.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        Z = self._classifier_input(X)  # raises NotFittedError first
        return self.classifier_.predict(Z)

    def fitted_steps(self):
        """The fitted parts as the equivalent pipeline steps, in the order they compute.

        Returns
        -------
        steps : list of (str, estimator)
            The steps of ``features_`` (when given), ``("purify", purifier_)`` (when
            given) and ``("clf", classifier_)``: a Pipeline of them predicts what this
            estimator predicts. :func:`~sknnmfdiff.to_torch_module` compiles these.
        """
        check_is_fitted(self)
        steps = []
        if self.features_ is not None:
            steps += list(getattr(self.features_, "steps", [("features", self.features_)]))
        if self.purifier_ is not None:
            steps.append(("purify", self.purifier_))
        return steps + [("clf", self.classifier_)]
