"""A model class for fault tests: it fails on rows holding the value 999 (a "poison" chunk).

Loading it needs VIEWER_TRUSTED_MODULES=tests.poison: the operator's way to trust their code.
"""

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin


class PoisonModel(ClassifierMixin, BaseEstimator):
    def fit(self, X, y):
        self.classes_ = np.unique(y)
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def predict_proba(self, X):
        X = np.asarray(X, dtype=float)
        if (X == 999).any():
            raise RuntimeError("poisoned row")
        p = 1 / (1 + np.exp(-X[:, 0]))
        return np.column_stack([1 - p, p])

    def predict(self, X):
        return self.classes_.take(self.predict_proba(X).argmax(axis=1))
