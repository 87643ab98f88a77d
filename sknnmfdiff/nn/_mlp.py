"""A small multilayer perceptron over a feature vector, inputs standardised (torch only).

The default network of :class:`sknnmfdiff.SkorchCNNClassifier` (our choice: the paper,
arXiv 2603.13182, gives no layers for its classifier). The selected NMF features are
ranked by a statistic, not ordered in space, so a convolution over them has no
locality to exploit: a fully connected network sees every pair of features directly.
The features are small (L2-normalised coefficients, standard deviations about
0.1-0.2), so the network first standardises them with the training set's mean and
standard deviation, held as buffers so that the module alone (the compiled pipeline,
the attacks) computes the same logits. It imports nothing from scikit-learn so that
:mod:`sknnmfdiff.torch_adapter` can reuse it.
"""

import torch
from torch import nn

from ._runtime import check_network_sizes

__all__ = ["FeatureMLP"]


class FeatureMLP(nn.Module):
    """Standardisation, ``n_layers`` fully connected ReLU layers, a linear head; logits.

    ``(N, k) -> (x - mean) / scale -> [Linear(width) -> ReLU] x n_layers -> Dropout
    -> Linear -> (N, n_classes)``

    The standardisation is a fixed affine map (buffers, not trained), so the module is
    differentiable in its input everywhere, with the input gradient of the plain
    network scaled by ``1 / scale``. With the defaults, ``k = 10`` and two classes the
    module has 18,178 trainable parameters.

    Parameters
    ----------
    n_features : int
        Length ``k`` of the input vectors, >= 1.
    n_classes : int
        Number of output logits, >= 2.
    width : int, default=128
        Units of every hidden layer, >= 1.
    n_layers : int, default=2
        Number of hidden layers, >= 1.
    dropout : float, default=0.1
        Dropout probability before the linear head, in [0, 1).
    mean : array-like of shape (n_features,) or None, default=None
        Subtracted from the input (the training features' mean); None gives zeros.
    scale : array-like of shape (n_features,) or None, default=None
        The centred input is divided by it (the training features' standard
        deviation), all > 0; None gives ones.

    Raises
    ------
    ValueError
        If an argument is outside its range, or ``mean``/``scale`` has the wrong
        shape, a non-finite value or (``scale``) a value <= 0.

    Examples
    --------
    >>> import torch
    >>> from sknnmfdiff.nn import FeatureMLP
    >>> net = FeatureMLP(10, 2).eval()
    >>> net(torch.zeros(4, 10)).shape
    torch.Size([4, 2])
    """

    def __init__(self, n_features, n_classes, *, width=128, n_layers=2, dropout=0.1,
                 mean=None, scale=None):
        super().__init__()
        check_network_sizes(dropout, n_features=(n_features, 1), n_classes=(n_classes, 2),
                            width=(width, 1), n_layers=(n_layers, 1))
        self.n_features = int(n_features)
        self.n_classes = int(n_classes)
        self.register_buffer("mean", self._vector("mean", mean, 0.0))
        self.register_buffer("scale", self._vector("scale", scale, 1.0))
        if not bool((self.scale > 0).all()):
            raise ValueError("scale must be > 0 everywhere; got a value <= 0.")
        layers, d = [], self.n_features
        for _ in range(int(n_layers)):
            layers += [nn.Linear(d, int(width)), nn.ReLU()]
            d = int(width)
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(d, self.n_classes))

    def _vector(self, name, value, fill):
        if value is None:
            return torch.full((self.n_features,), fill, dtype=torch.float32)
        v = torch.as_tensor(value, dtype=torch.float32).detach().clone().reshape(-1)
        if v.shape != (self.n_features,) or not bool(torch.isfinite(v).all()):
            raise ValueError(
                f"{name} must hold {self.n_features} finite values; got shape "
                f"{tuple(torch.as_tensor(value).shape)}."
            )
        return v

    def forward(self, x):
        """Logits of a batch of feature vectors.

        Parameters
        ----------
        x : torch.Tensor of shape (N, n_features), float32
            The feature vectors (any real values; the pipeline passes L2-normalised,
            selected, possibly purified NMF coefficients).

        Returns
        -------
        logits : torch.Tensor of shape (N, n_classes), float32
            Unnormalised class scores; ``softmax(logits, dim=1)`` are probabilities.

        Raises
        ------
        ValueError
            If ``x`` is not 2-D with ``n_features`` columns.
        """
        if x.dim() != 2 or x.shape[1] != self.n_features:
            raise ValueError(
                f"FeatureMLP expects input of shape (N, {self.n_features}); got "
                f"{tuple(x.shape)}."
            )
        return self.head(self.features((x - self.mean) / self.scale))
