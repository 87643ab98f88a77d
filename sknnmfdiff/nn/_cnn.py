"""A small 1-D convolutional classifier over a feature vector (torch only).

The paper (arXiv 2603.13182, method stage 3, "lightweight CNN") feeds the selected
NMF features to a 1-D CNN but does not give its layers; this architecture is our
choice. It imports nothing from scikit-learn so that :mod:`sknnmfdiff.torch_adapter`
can reuse it.
"""

from torch import nn

from ._runtime import check_network_sizes

__all__ = ["CNN1d"]


class CNN1d(nn.Module):
    """Two convolution blocks, adaptive pooling and a linear head; outputs logits.

    The feature vector is read as a one-channel sequence of length ``n_features``:

    ``(N, k) -> (N, 1, k) -> [Conv1d(kernel 3, padding 1) -> BatchNorm1d -> ReLU] x 2
    -> AdaptiveAvgPool1d(min(k, pooled_length)) -> flatten -> Dropout -> Linear
    -> (N, n_classes)``

    For ``k <= pooled_length`` the pooling is the identity, so the head still sees
    which feature each activation came from (global pooling would discard it); for
    longer inputs it averages neighbouring positions down to ``pooled_length``. Any
    ``k >= 1`` works. With the defaults, ``k = 10`` and two classes the module has
    1,234 parameters.

    Parameters
    ----------
    n_features : int
        Length ``k`` of the input vectors, >= 1.
    n_classes : int
        Number of output logits, >= 2.
    width : int, default=16
        Channels of both convolution blocks, >= 1.
    dropout : float, default=0.1
        Dropout probability before the linear head, in [0, 1).
    pooled_length : int, default=16
        Maximum length after pooling, >= 1.

    Raises
    ------
    ValueError
        If an argument is outside its range.

    Examples
    --------
    >>> import torch
    >>> from sknnmfdiff.nn import CNN1d
    >>> net = CNN1d(10, 2).eval()
    >>> net(torch.zeros(4, 10)).shape
    torch.Size([4, 2])
    """

    def __init__(self, n_features, n_classes, *, width=16, dropout=0.1, pooled_length=16):
        super().__init__()
        check_network_sizes(dropout, n_features=(n_features, 1), n_classes=(n_classes, 2),
                            width=(width, 1), pooled_length=(pooled_length, 1))
        self.n_features = int(n_features)
        self.n_classes = int(n_classes)
        length = min(self.n_features, int(pooled_length))
        self.features = nn.Sequential(
            nn.Conv1d(1, width, kernel_size=3, padding=1),
            nn.BatchNorm1d(width),
            nn.ReLU(),
            nn.Conv1d(width, width, kernel_size=3, padding=1),
            nn.BatchNorm1d(width),
            nn.ReLU(),
            nn.AdaptiveAvgPool1d(length),
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(width * length, self.n_classes),
        )

    def forward(self, x):
        """Logits of a batch of feature vectors.

        Parameters
        ----------
        x : torch.Tensor of shape (N, n_features), float32
            The feature vectors (any real values; the pipeline passes L2-normalised,
            selected, purified NMF coefficients).

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
                f"CNN1d expects input of shape (N, {self.n_features}); got {tuple(x.shape)}."
            )
        return self.head(self.features(x.unsqueeze(1)))


def _n_parameters(module):
    """Number of trainable parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)

