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


class HostileModel(PoisonModel):
    """What a model can do to the process that runs it, by the first value of the first row:
    666 crashes it (a segfault), 777 freezes it (a loop holding the interpreter lock), 888 asks
    for 64 GiB, 555 tries the network, 444 tries to start a process. Any other row predicts."""

    def predict_proba(self, X):
        X = np.asarray(X, dtype=float)
        trigger = X[0, 0] if X.size else 0
        if trigger == 666:
            import ctypes

            ctypes.string_at(0)  # reads address 0: SIGSEGV
        elif trigger == 777:
            while True:
                pass
        elif trigger == 888:
            np.ones(8 * 2**30)
        elif trigger == 555:
            import socket

            socket.create_connection(("127.0.0.1", 5432), timeout=2).close()
        elif trigger == 444:
            import subprocess

            subprocess.run(["true"], check=True)
        return super().predict_proba(X)


class CrashOnLoad(PoisonModel):
    """Crashes whatever process unpickles it (its ``__setstate__`` reads address 0)."""

    def __setstate__(self, state):
        import ctypes

        ctypes.string_at(0)
