"""Helpers shared by the smoothing tests: a fixed linear rule with a known smoothed
classifier, and small seeded data."""

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin


class LinearRule(ClassifierMixin, BaseEstimator):
    """The fixed binary rule ``1[X w + b > 0]``; ``fit`` only records the classes."""

    def __init__(self, w=(1.0, -2.0, 0.5, 0.0), b=0.1):
        self.w = w
        self.b = b

    def fit(self, X, y):
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def margin(self, X):
        return np.asarray(X, dtype=np.float64) @ np.asarray(self.w, dtype=np.float64) + self.b

    def predict(self, X):
        return (self.margin(X) > 0).astype(int)


def _data(n=60, k=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(scale=0.5, size=(n, k)).astype(np.float32)
    return X, (X[:, 0] - X[:, 1] > 0).astype(int)


_ABSTAINS = (
    "PREDICT abstains (returns abstain_label) where the vote is not significant at alpha, "
    "so predict is not always the argmax of predict_proba (Cohen et al., 2019)"
)
#: The estimator checks SmoothedClassifier fails by design, with the reasons.
SMOOTHED_EXPECTED_FAILURES = {
    "check_classifiers_train": _ABSTAINS,
    "check_classifiers_train(readonly_memmap=True)": _ABSTAINS,
    "check_classifiers_train(readonly_memmap=True,X_dtype=float32)": _ABSTAINS,
    "check_classifiers_classes": (
        "uses the labels {-1, 1}, and -1 is the default abstain_label, which fit refuses as "
        "a class"
    ),
}
