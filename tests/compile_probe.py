"""Custom steps for the compile sandbox's tests (tests/infra/test_compile_sandbox.py): a model
runs its steps while its parity is checked, so the sandbox must hold against them. Loading them
needs the module trusted (``trusted_modules=("tests.compile_probe",)``)."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin


def _attempt(action) -> str:
    try:
        action()
    except Exception as exc:  # noqa: BLE001
        return type(exc).__name__
    return "ok"


class Probe(BaseEstimator, TransformerMixin):
    """Tries what a hostile step would in ``transform`` and raises with what it met."""

    def __init__(self, secret: str = "", outside: str = ""):
        self.secret, self.outside = secret, outside

    def fit(self, X, y=None):
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def fit_transform(self, X, y=None, **fit_params):  # fitting happens in the test, not the sandbox
        return np.asarray(self.fit(X, y) and X)

    def transform(self, X):
        import json
        import os
        import socket
        import subprocess

        found = {
            "net": _attempt(lambda: socket.create_connection(("127.0.0.1", 5432), timeout=2).close()),
            "write": _attempt(lambda: open(self.outside, "w").close()),
            "read": _attempt(lambda: open(self.secret).read()),
            "env": sorted(k for k in os.environ if k.startswith("VIEWER_")),
            "gcc": subprocess.run(["gcc", "--version"], capture_output=True).returncode,
            "uid": os.getuid(),
        }
        raise RuntimeError("probe " + json.dumps(found, separators=(",", ":")))


class Stall(Probe):
    def transform(self, X):
        while True:
            pass


class Abort(Probe):
    def transform(self, X):
        import os

        os.abort()
