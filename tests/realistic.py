"""Data and models like users have: a loan table with IDs, strings, missing values and dates, the
file Excel writes in most of Europe, and the pipelines people really fit (column selectors, a
custom step, LightGBM, XGBoost).

The custom step lives here, so loading a model that uses it needs VIEWER_TRUSTED_MODULES to name
``tests.realistic`` (the session's worker trusts it, as an operator would trust their own package).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

REGIONS = ["north", "south", "east", "west"]
EMPLOYMENT = ["salaried", "self-employed", "retired", "student"]
FEATURES = ["amount", "income", "age", "region", "employment"]
TARGET = "defaulted"


def loan_table(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    """``n`` loans: a string ID, numbers with missing values, categories with missing values, a
    date, and a target that depends on them."""
    rng = np.random.default_rng(seed)
    amount = rng.gamma(2.0, 6000.0, n).round(2)
    income = rng.normal(42000, 12000, n).clip(8000).round(2)
    age = rng.integers(18, 80, n).astype(float)
    region = rng.choice(REGIONS, n).astype(object)
    employment = rng.choice(EMPLOYMENT, n, p=[0.6, 0.2, 0.15, 0.05]).astype(object)
    score = 1.5 * amount / income - 0.02 * (age - 40) + (region == "south") * 0.8 + (employment == "student") * 1.0
    defaulted = (score + rng.normal(0, 0.5, n) > 0.6).astype(int)
    amount[rng.random(n) < 0.05] = np.nan
    income[rng.random(n) < 0.03] = np.nan
    region[rng.random(n) < 0.04] = None
    opened = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 700, n), unit="D")
    return pd.DataFrame({
        "loan_id": [f"L{100000 + i}" for i in range(n)],
        "amount": amount, "income": income, "age": age,
        "region": pd.array(region, dtype=object), "employment": pd.array(employment, dtype=object),
        "opened": opened, TARGET: defaulted,
    })


def _european_number(value: float) -> str:
    """1234.5 -> '1.234,50' (thousands dots, a decimal comma), as Excel writes it in Germany."""
    if value != value:  # NaN
        return ""
    text = f"{value:,.2f}"  # 1,234.50
    return text.replace(",", "\0").replace(".", ",").replace("\0", ".")


def european_csv(frame: pd.DataFrame) -> bytes:
    """The file Excel saves in most of Europe: ';' separated, decimal commas, thousands dots,
    dd.mm.yyyy dates, Windows-1252 text."""
    out = frame.copy()
    for column in out.columns:
        if column in ("amount", "income"):
            out[column] = [_european_number(v) for v in out[column]]
        elif pd.api.types.is_datetime64_any_dtype(out[column]):
            out[column] = out[column].dt.strftime("%d.%m.%Y")
    return out.to_csv(sep=";", decimal=",", index=False).encode("cp1252")  # other floats: 41,0


class ClipOutliers(BaseEstimator, TransformerMixin):
    """A custom step as data scientists write them: clips numeric columns of a DataFrame to the
    quantiles seen in fit and passes every other column through unchanged."""

    def __init__(self, quantile: float = 0.99):
        self.quantile = quantile

    def fit(self, X, y=None):
        numeric = X.select_dtypes("number")
        self.upper_ = numeric.quantile(self.quantile).to_dict()
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X):
        X = X.copy()
        for column, upper in self.upper_.items():
            X[column] = X[column].clip(upper=upper)
        return X

    def get_feature_names_out(self, input_features=None):
        return self.feature_names_in_
