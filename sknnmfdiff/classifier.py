"""A scikit-learn classifier around a skorch-trained neural network.

:class:`SkorchCNNClassifier` is the classifier of the paper's pipeline (arXiv
2603.13182, method stage 3, "lightweight CNN"), over the selected (and, in the
defended pipeline, purified) NMF features: by default a small MLP on standardised
features (:class:`~sknnmfdiff.nn.FeatureMLP`), or the 1-D CNN of earlier versions
(:class:`~sknnmfdiff.nn.CNN1d`, ``architecture="paper"``). It wraps a skorch
:class:`~skorch.NeuralNetClassifier` built in ``fit`` rather than subclassing it, so
that it follows scikit-learn's conventions: parameters only stored in ``__init__``,
labels of any type, seeded training that leaves the caller's torch random state
untouched. On CPU it trains and predicts on one torch thread (see the class's
docstring).
"""

import logging
import math
import numbers
import re
import warnings

import numpy as np
import torch
from scipy.special import softmax
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.model_selection import StratifiedShuffleSplit
from sklearn.preprocessing import LabelEncoder
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler

from ._constraints import RANDOM_STATE, int_interval, real_interval
from ._persistence import VersionedEstimatorMixin
from .nn import CNN1d, FeatureMLP, as_tensor, single_thread

__all__ = ["SkorchCNNClassifier", "NoValidationSplitWarning"]

logger = logging.getLogger(__name__)

_OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}

#: What ``"auto"`` parameters resolve to, per architecture.
_AUTO = {
    "mlp": {"width": 128, "lr": 1e-3, "max_epochs": 50, "early_stopping": False},
    "paper": {"width": 16, "lr": 1e-2, "max_epochs": 100, "early_stopping": True},
}


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _log_info(text):
    """skorch sink: a line of skorch's output, colour codes removed, at INFO level."""
    logger.info(_ANSI.sub("", str(text)))


def _log_debug(text):
    """skorch sink: a line of skorch's output, colour codes removed, at DEBUG level."""
    logger.debug(_ANSI.sub("", str(text)))


class _ArrayBatches:
    """Rows of in-memory ``X`` (and ``y``) read a whole mini-batch at a time."""

    def __init__(self, X, y):
        self.X = X if isinstance(X, torch.Tensor) else as_tensor(X)
        self.y = None if y is None or isinstance(y, torch.Tensor) else as_tensor(y)

    def __len__(self):
        return self.X.shape[0]

    def __getitem__(self, rows):
        # skorch ignores y when predicting; a placeholder as its Dataset gives.
        y = torch.zeros(len(rows)) if self.y is None else self.y[rows]
        return self.X[rows], y


def _is_plain_array(a):
    return isinstance(a, torch.Tensor) or (isinstance(a, np.ndarray) and a.flags.writeable)


def _batch_loader(dataset, batch_size, shuffle=False, drop_last=False):
    """skorch iterator: each mini-batch read from in-memory arrays by one index.

    torch's default :class:`~torch.utils.data.DataLoader` fetches a batch one sample at
    a time through skorch's :class:`~skorch.dataset.Dataset` and stacks the samples;
    for in-memory arrays that costs more than a step of the small CNN. Here a
    :class:`~torch.utils.data.BatchSampler` hands a list of row indices to
    :class:`_ArrayBatches`, which indexes ``X`` and ``y`` once per batch. The samplers
    are the ones the default loader builds (:class:`~torch.utils.data.RandomSampler`
    on torch's global generator when ``shuffle``), drawn in the same order, so the
    batches, and the trained weights, are exactly those of the default loader. Data
    that are not writable numpy arrays or tensors take the default loader.
    Module-level, so that a fitted net pickles.
    """
    X, y = getattr(dataset, "X", None), getattr(dataset, "y", None)
    if not (_is_plain_array(X) and (y is None or _is_plain_array(y)) and len(X) == len(dataset)):
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last)
    sampler = RandomSampler(dataset) if shuffle else SequentialSampler(dataset)
    return DataLoader(
        _ArrayBatches(X, y), sampler=BatchSampler(sampler, batch_size, drop_last),
        batch_size=None,
    )


class NoValidationSplitWarning(UserWarning):
    """The training set is too small for a stratified validation split, so the
    network is trained for ``max_epochs`` without early stopping."""


def _torch_seed(random_state):
    """A 63-bit seed for torch drawn from ``random_state``.

    ``None`` draws from fresh OS entropy (a different seed each call) rather than from
    numpy's global generator; an int seeds a :class:`numpy.random.Generator`; a
    :class:`numpy.random.RandomState` instance is drawn from (and so advanced).
    """
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**62, dtype=np.int64))
    return int(np.random.default_rng(random_state).integers(0, 2**62))


def _resolve_device(device):
    """torch device string for the ``device`` parameter; ValueError if CUDA is missing."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "device='cuda' but torch finds no CUDA device; use device='cpu' or 'auto'."
        )
    return device


class SkorchCNNClassifier(VersionedEstimatorMixin, ClassifierMixin, BaseEstimator):
    """Neural classifier over feature vectors, trained by skorch, seeded and sklearn-compatible.

    The classifier stage of Diffusion-Based Feature Denoising and Using NNMF for Robust
    Brain Tumor Classification (CVPR 2026, arXiv 2603.13182, method stage 3, a
    "lightweight CNN"). The paper gives neither the network's layers nor its training
    settings; both are our choices. The class keeps its name; ``architecture`` picks the
    network:

    - ``"mlp"`` (default): :class:`~sknnmfdiff.nn.FeatureMLP`, the features standardised
      by the training rows' mean and standard deviation (buffers inside the module),
      two hidden ReLU layers of ``width`` units, dropout, a linear head.
    - ``"paper"``: :class:`~sknnmfdiff.nn.CNN1d`, the 1-D CNN this class trained by
      default before (raw features, two convolution blocks of ``width`` channels).

    The selected features are ranked by a statistic, not ordered in space, so a
    convolution over them has no locality to exploit; the old CNN also stopped early on
    a small held-out split at a high learning rate. On the paper split (10 of 15
    features, 20 seeds that change the split) the ``"mlp"`` defaults reach 90.2 % (no
    purifier) and 89.3 % (defended) validation balanced accuracy against 87.1 % and
    87.4 % for ``"paper"``'s, and 89.3 % and 88.8 % for scikit-learn's best head
    (``benchmarks/bench_heads.py``, output in ``docs/results/bench_heads.txt``).

    ``"auto"`` parameters take the architecture's defaults:

    ==================  ===========  ===========
    parameter           ``"mlp"``    ``"paper"``
    ==================  ===========  ===========
    ``width``           128          16
    ``lr``              1e-3         1e-2
    ``max_epochs``      50           100
    ``early_stopping``  False        True
    ==================  ===========  ===========

    so ``SkorchCNNClassifier(architecture="paper")`` is the classifier of earlier
    versions, and models pickled by them load as ``architecture="paper"`` with their
    own parameters (they predict as before).

    ``fit`` builds a skorch :class:`~skorch.NeuralNetClassifier` (``net_``) with that
    module, ``criterion=torch.nn.CrossEntropyLoss`` on logits (class-weighted when
    ``class_weight`` is set) and trains it on float32 features and int64 labels
    ``0..n_classes-1`` (the positions of the labels in ``classes_``).

    **Early stopping.** With early stopping, a stratified validation split of
    ``ceil(validation_fraction * n_samples)`` samples is drawn from ``random_state``
    (:class:`sklearn.model_selection.StratifiedShuffleSplit`) and passed to skorch as a
    predefined split; skorch's :class:`~skorch.callbacks.EarlyStopping` stops after
    ``patience`` epochs without a relative improvement of 1e-4 in validation loss and
    restores the weights of the best epoch (``load_best=True``). The split needs at
    least 2 samples in every class and room for one sample of each class on both sides;
    when the data are smaller than that, the net is trained on all samples for
    ``max_epochs`` and a :class:`NoValidationSplitWarning` is issued. Without early
    stopping all samples are used for ``max_epochs``.

    **Randomness.** Weight initialisation, shuffling, dropout and the validation split
    all derive from ``random_state``: one seed is drawn from it and skorch runs inside
    :func:`torch.random.fork_rng`, so the caller's global torch RNG state (CPU, and the
    CUDA device used) is left as it was. Two fits with the same int ``random_state``
    on CPU give identical weights and probabilities; on CUDA, cuDNN kernels may still
    differ in the last bits. ``random_state=None`` draws a fresh seed from OS entropy.

    **Threads.** On CPU, ``fit``, ``predict``, ``predict_proba`` and
    ``decision_function`` run with torch's intra-op thread count set to 1
    (:func:`torch.set_num_threads`) and restore the caller's count when they return or
    raise. The network's tensors are small: splitting its kernels across threads costs
    more in synchronisation than it saves, and on a machine whose cores are shared
    with other processes the threads' barriers stall (training the CNN on the paper
    split with a competing CPU-bound process took 5.0 s on 2 threads against 1.2 s on
    one). Weights therefore no longer depend on the caller's thread count. The setting
    is process-global: do not fit or predict from several Python threads at once
    (with :class:`~sklearn.model_selection.GridSearchCV`, use ``n_jobs`` with the
    default process-based backend). On CUDA the thread count is not changed.

    **Batches.** Mini-batches are read from the in-memory arrays by one index per
    batch rather than sample by sample (same samples, same order, same weights as
    torch's default loader). skorch's per-epoch table is formatted only when it is
    logged: with ``verbose=0`` and this module's logger not enabled for DEBUG, the
    ``print_log`` callback is left out.

    **Persistence.** A model fitted on CUDA unpickles on a CPU-only machine: skorch maps
    the net's tensors to the CPU (with a warning) and prediction uses ``net_``'s device.

    Parameters
    ----------
    architecture : {"mlp", "paper"}, default="mlp"
        The network (see above).
    width : int or "auto", default="auto"
        Units of each hidden layer (``"mlp"``) or channels of both convolution blocks
        (``"paper"``), >= 1.
    dropout : float, default=0.1
        Dropout probability before the network's linear head, in [0, 1).
    lr : float or "auto", default="auto"
        Learning rate, > 0.
    max_epochs : int or "auto", default="auto"
        Number of passes over the training samples (at most, under early stopping),
        >= 1.
    batch_size : int, default=64
        Mini-batch size, >= 1. When the training set would leave a last batch of
        exactly one sample, that batch is dropped in each (shuffled) epoch, since batch
        normalisation cannot train on it.
    optimizer : {"adam", "adamw", "sgd"}, default="adam"
        :class:`torch.optim.Adam`, :class:`torch.optim.AdamW` or
        :class:`torch.optim.SGD` (with momentum 0.9).
    weight_decay : float, default=0.0
        L2 penalty (decoupled for ``"adamw"``), >= 0.
    early_stopping : bool or "auto", default="auto"
        Hold out a stratified validation split and stop on its loss (see above).
    patience : int, default=10
        Epochs without improvement of the validation loss before stopping, >= 1.
    validation_fraction : float, default=0.1
        Fraction of the samples held out for early stopping, in (0, 1).
    class_weight : "balanced", dict or None, default=None
        Weights of the classes in the cross-entropy loss. ``"balanced"`` uses
        ``n_samples / (n_classes * count(class))`` over the samples passed to ``fit``;
        a dict maps labels (as in ``y``) to weights, missing labels weighing 1.
    device : {"cpu", "cuda", "auto"}, default="cpu"
        Where to train; ``"auto"`` picks CUDA when available.
    random_state : int, RandomState instance or None, default=None
        Source of all randomness of ``fit`` (see above).
    verbose : int, default=0
        skorch's per-epoch table and early-stopping notice go to this module's logger
        (never printed): at INFO level when ``verbose > 0``, at DEBUG level otherwise
        (and then only when that logger is enabled for DEBUG at ``fit``).

    Attributes
    ----------
    net_ : skorch.NeuralNetClassifier
        The trained net. ``net_.module_`` is the network (:class:`FeatureMLP` or
        :class:`CNN1d`), mapping float32 (N, n_features_in_) features, as passed to
        ``predict`` (unstandardised), to logits (N, n_classes); in eval mode after
        ``fit``, differentiable in its input.
    classes_ : ndarray of shape (n_classes,)
        The class labels; the net's output ``j`` is ``classes_[j]``.
    class_weight_ : ndarray of shape (n_classes,), float64 or None
        The loss weights used, in the order of ``classes_``.
    device_ : str
        The device the net was trained on.
    history_ : skorch.History
        skorch's per-epoch record (``train_loss``, ``valid_loss``, ...).
    n_epochs_ : int
        Number of epochs run (the best epoch's weights are kept under early stopping).
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,), dtype=object
        Names of the features seen in ``fit``, when ``X`` has string column names.

    Raises
    ------
    ValueError
        From ``fit``: fewer than two classes, continuous ``y``, NaN or infinite ``X``,
        ``device="cuda"`` without CUDA, a ``class_weight`` dict with unknown labels or
        with a weight that is not a finite number >= 0.
    InvalidParameterError
        From ``fit`` (a ``ValueError`` and ``TypeError``): a parameter outside its
        range or of the wrong type, a bool given for a number included.

    References
    ----------
    .. [1] "Diffusion-Based Feature Denoising and Using NNMF for Robust Brain Tumor
       Classification", CVPR 2026, arXiv 2603.13182.
    .. [2] skorch developers, "skorch: a scikit-learn compatible neural network
       library that wraps PyTorch", https://skorch.readthedocs.io.

    Examples
    --------
    >>> import numpy as np
    >>> from sknnmfdiff.classifier import SkorchCNNClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 5))
    >>> y = np.where(X[:, 0] + X[:, 3] > 0, "tumor", "notumor")
    >>> clf = SkorchCNNClassifier(max_epochs=30, random_state=0).fit(X, y)
    >>> clf.classes_
    array(['notumor', 'tumor'], dtype='<U7')
    >>> clf.predict_proba(X[:3]).shape
    (3, 2)
    """

    _parameter_constraints: dict = {
        "architecture": [StrOptions(set(_AUTO))],
        "width": [int_interval(1, None, closed="left"), StrOptions({"auto"})],
        "dropout": [real_interval(0, 1, closed="left")],
        "lr": [real_interval(0, None, closed="neither"), StrOptions({"auto"})],
        "max_epochs": [int_interval(1, None, closed="left"), StrOptions({"auto"})],
        "batch_size": [int_interval(1, None, closed="left")],
        "optimizer": [StrOptions(set(_OPTIMIZERS))],
        "weight_decay": [real_interval(0, None, closed="left")],
        "early_stopping": ["boolean", StrOptions({"auto"})],
        "patience": [int_interval(1, None, closed="left")],
        "validation_fraction": [real_interval(0, 1, closed="neither")],
        "class_weight": [StrOptions({"balanced"}), dict, None],
        "device": [StrOptions({"cpu", "cuda", "auto"})],
        "random_state": RANDOM_STATE,
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        *,
        architecture="mlp",
        width="auto",
        dropout=0.1,
        lr="auto",
        max_epochs="auto",
        batch_size=64,
        optimizer="adam",
        weight_decay=0.0,
        early_stopping="auto",
        patience=10,
        validation_fraction=0.1,
        class_weight=None,
        device="cpu",
        random_state=None,
        verbose=0,
    ):
        self.architecture = architecture
        self.width = width
        self.dropout = dropout
        self.lr = lr
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.early_stopping = early_stopping
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.class_weight = class_weight
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def __setstate__(self, state):
        # Models saved before ``architecture`` existed hold the paper's CNN; they keep
        # it, so that get_params and clone describe (and refit) the saved network.
        state = dict(state)
        state.setdefault("architecture", "paper")
        super().__setstate__(state)

    # ------------------------------------------------------------------ helpers
    def _resolved(self, name):
        """Parameter ``name``, ``"auto"`` resolved for ``architecture`` (see ``_AUTO``)."""
        value = getattr(self, name)
        return _AUTO[self.architecture][name] if isinstance(value, str) and value == "auto" else value

    def _class_weights(self, classes, y_idx):
        """Loss weights in the order of ``classes`` (None when unweighted)."""
        if self.class_weight is None:
            return None
        labels = classes.tolist()
        if isinstance(self.class_weight, dict):
            unknown = [c for c in self.class_weight if c not in set(labels)]
            if unknown:
                raise ValueError(
                    f"class_weight has labels {unknown!r} that are not in y; the classes "
                    f"are {labels!r}."
                )
            bad = {c: w for c, w in self.class_weight.items()
                   if isinstance(w, (bool, np.bool_)) or not isinstance(w, numbers.Real)
                   or not math.isfinite(w) or w < 0}
            if bad:
                raise ValueError(
                    f"class_weight must map labels to finite numbers >= 0 (not bools); got "
                    f"{bad!r}."
                )
            return np.array([float(self.class_weight.get(c, 1.0)) for c in labels])
        return compute_class_weight("balanced", classes=np.arange(len(labels)), y=y_idx)

    def _validation_split(self, y_idx, n_classes, seed):
        """(train, valid) index arrays, or None when no split is possible or wanted."""
        if not self._resolved("early_stopping"):
            return None
        n = y_idx.shape[0]
        n_valid = math.ceil(self.validation_fraction * n)
        counts = np.bincount(y_idx, minlength=n_classes)
        if counts.min() < 2 or n_valid < n_classes or n - n_valid < n_classes:
            warnings.warn(
                f"{n} samples (smallest class {int(counts.min())}) are too few for a "
                f"stratified validation split of validation_fraction="
                f"{self.validation_fraction}; training on all samples for max_epochs="
                f"{self._resolved('max_epochs')} without early stopping.",
                NoValidationSplitWarning,
                stacklevel=3,
            )
            return None
        splitter = StratifiedShuffleSplit(
            n_splits=1, test_size=n_valid, random_state=seed % 2**32
        )
        return next(splitter.split(np.zeros((n, 1)), y_idx))

    def _module_params(self, X_tr, n_classes):
        """(module class, its keyword arguments) for ``architecture``."""
        params = {"n_features": X_tr.shape[1], "n_classes": n_classes,
                  "width": self._resolved("width"), "dropout": self.dropout}
        if self.architecture == "paper":
            return CNN1d, params
        # Standardisation by the training rows' statistics, inside the module; a
        # (near-)constant feature keeps scale 1, as in sklearn's StandardScaler.
        mean = X_tr.mean(axis=0, dtype=np.float64)
        scale = X_tr.std(axis=0, dtype=np.float64)
        scale[scale <= 1e-6 * np.maximum(1.0, np.abs(mean))] = 1.0
        params["mean"] = torch.as_tensor(mean, dtype=torch.float32)
        params["scale"] = torch.as_tensor(scale, dtype=torch.float32)
        return FeatureMLP, params

    def _build_net(self, module, n_classes, n_train, weights, valid, device):
        from skorch import NeuralNetClassifier
        from skorch.callbacks import EarlyStopping
        from skorch.dataset import Dataset
        from skorch.helper import predefined_split

        optimizer = _OPTIMIZERS[self.optimizer]
        # Module-level functions (not lambdas) so that the fitted net still pickles.
        sink = _log_info if self.verbose else _log_debug
        kwargs = {}
        if self.optimizer == "sgd":
            kwargs["optimizer__momentum"] = 0.9
        callbacks = []
        train_split = None
        if valid is not None:
            train_split = predefined_split(Dataset(*valid))
            callbacks.append(
                (
                    "early_stopping",
                    EarlyStopping(
                        monitor="valid_loss",
                        patience=self.patience,
                        load_best=True,
                        sink=sink,
                    ),
                )
            )
        if weights is not None:
            kwargs["criterion__weight"] = torch.as_tensor(weights, dtype=torch.float32)
        if self.verbose or logger.isEnabledFor(logging.DEBUG):
            kwargs["callbacks__print_log__sink"] = sink
        else:  # nobody reads the table: do not format it every epoch
            kwargs["callbacks__print_log"] = None
        module, module_params = module
        kwargs.update({f"module__{k}": v for k, v in module_params.items()})
        return NeuralNetClassifier(
            module=module,
            criterion=torch.nn.CrossEntropyLoss,
            optimizer=optimizer,
            optimizer__weight_decay=self.weight_decay,
            lr=self._resolved("lr"),
            max_epochs=self._resolved("max_epochs"),
            batch_size=self.batch_size,
            iterator_train=_batch_loader,
            iterator_train__shuffle=True,
            iterator_train__drop_last=(n_train % self.batch_size == 1),
            iterator_valid=_batch_loader,
            train_split=train_split,
            callbacks=callbacks,
            classes=np.arange(n_classes),
            device=device,
            verbose=self.verbose,
            **kwargs,
        )

    @staticmethod
    def _as_float32(X):
        """C-contiguous, writeable float32 copy-if-needed of ``X`` (torch needs both)."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        return X if X.flags.writeable else X.copy()

    # -------------------------------------------------------------------- API
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Train the CNN on ``(X, y)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Feature vectors; any real dtype, cast to float32. NaN and infinite values
            are rejected.
        y : array-like of shape (n_samples,)
            Class labels of any type (ints, {-1, 1}, strings), at least two classes.

        Returns
        -------
        self : SkorchCNNClassifier
            The fitted classifier.

        Raises
        ------
        ValueError
            If ``y`` has fewer than two classes or is continuous, ``device="cuda"``
            without CUDA, or ``class_weight`` names labels absent from ``y`` or gives a
            weight that is not a finite number >= 0.
        """
        X, y = validate_data(self, X, y, dtype=[np.float32, np.float64])
        check_classification_targets(y)
        encoder = LabelEncoder().fit(y)
        classes = encoder.classes_
        n_classes = classes.shape[0]
        if n_classes < 2:
            raise ValueError(
                "SkorchCNNClassifier needs samples of at least 2 classes in y; got 1 "
                f"class ({classes[0]!r})."
            )
        y_idx = encoder.transform(y).astype(np.int64)
        X = self._as_float32(X)
        device = _resolve_device(self.device)
        seed = _torch_seed(self.random_state)

        weights = self._class_weights(classes, y_idx)
        split = self._validation_split(y_idx, n_classes, seed)
        if split is None:
            X_tr, y_tr, valid = X, y_idx, None
        else:
            tr, va = split
            X_tr, y_tr, valid = X[tr], y_idx[tr], (X[va], y_idx[va])

        module = self._module_params(X_tr, n_classes)
        net = self._build_net(module, n_classes, X_tr.shape[0], weights, valid, device)
        if device.startswith("cuda"):
            index = torch.device(device).index
            index = torch.cuda.current_device() if index is None else index
            fork_devices = [index]
        else:
            fork_devices = []
        with torch.random.fork_rng(devices=fork_devices), single_thread(torch.device(device)):
            torch.random.default_generator.manual_seed(seed)
            for index in fork_devices:
                with torch.cuda.device(index):
                    torch.cuda.manual_seed(seed)
            net.fit(X_tr, y_tr)
        net.module_.eval()

        self.classes_ = classes
        self.net_ = net
        self.class_weight_ = weights
        self.device_ = device
        self.history_ = net.history
        self.n_epochs_ = len(net.history)
        logger.info(
            "SkorchCNNClassifier: %d epochs on %d samples (%s), final train loss %.4g",
            self.n_epochs_,
            X_tr.shape[0],
            device,
            net.history[-1, "train_loss"],
        )
        return self

    def _logits(self, X):
        """float64 logits (n_samples, n_classes) of validated ``X``."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float32, np.float64], reset=False)
        X = self._as_float32(X)
        # skorch's forward: eval mode, no grad, batched, collected on the CPU. Its
        # DataLoader draws a base seed from torch's global generator even without
        # shuffling: fork it so that prediction leaves the caller's RNG state alone.
        device = torch.device(self.net_.device)
        with torch.random.fork_rng(devices=[]), single_thread(device):
            logits = self.net_.forward(X, training=False, device="cpu")
        return logits.numpy().astype(np.float64)

    def decision_function(self, X):
        """Logits of the CNN.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features_in_)
            Feature vectors, cast to float32.

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes), float64
            For two classes, ``logit[classes_[1]] - logit[classes_[0]]`` (positive means
            ``classes_[1]``); otherwise the logits, column ``j`` for ``classes_[j]``.
        """
        logits = self._logits(X)
        if logits.shape[1] == 2:
            return logits[:, 1] - logits[:, 0]
        return logits

    def predict_proba(self, X):
        """Class probabilities: the softmax of the CNN's logits.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features_in_)
            Feature vectors, cast to float32.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes), float64
            Probabilities in [0, 1], rows summing to 1; column ``j`` is ``classes_[j]``.
        """
        return softmax(self._logits(X), axis=1)

    def predict(self, X):
        """Most probable class of each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features_in_)
            Feature vectors, cast to float32.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        logits = self._logits(X)
        return self.classes_[np.argmax(logits, axis=1)]
