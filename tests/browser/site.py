"""What the browser tests look at: users, models, datasets and finished jobs, made through the
API the way a script would, on demand and once per browser package.

Models are fitted with scikit-learn here, at run time. Jobs run on the session's real worker
(the tests that need one ask for the ``worker`` fixture).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Callable

import joblib
import numpy as np
import pandas as pd

from tests.support import wait_for_job

# Column names and class labels that would run script if any page interpolated them unescaped
# into HTML, a Bokeh tooltip template or JavaScript (``@label`` and ``$x`` are Bokeh tooltip field
# syntax, ``{{7*7}}`` template syntax, ``__proto__`` breaks naive JS objects).
IMG = '<img src=x onerror="window.__xss=1">'
SCRIPT = '"><script>window.__xss=1</script>'
SVG = "<svg onload=alert(1)>"
TEMPLATE = "{{7*7}}"
FIELD = "@label"
DOLLAR = "$x"
PROTO = "__proto__"
XSS_FEATURES = [SCRIPT, TEMPLATE, DOLLAR, PROTO]
XSS_MULTI_TARGET, XSS_MULTI_LABELS = IMG, [IMG, SCRIPT, FIELD, TEMPLATE]
XSS_BINARY_TARGET, XSS_BINARY_LABELS = FIELD, [DOLLAR, SVG]
XSS_DATASET_NAME = f"{IMG}{SVG}.csv"
XSS_DESCRIPTION = f"{IMG} {SCRIPT} {SVG} {TEMPLATE}"


def churn_frame(n: int = 1000) -> pd.DataFrame:
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=n, n_features=5, n_informative=3, n_redundant=1, flip_y=0.08,
                               class_sep=0.8, random_state=7)
    frame = pd.DataFrame(X.round(4), columns=["tenure", "usage", "support_calls", "spend", "age"])
    return frame.assign(churned=np.where(y == 1, "churn", "stay"))


def churn_feb_frame() -> pd.DataFrame:
    """February's customers: January's kind, noisier and shifted (the model does worse on them)."""
    frame = churn_frame()
    rng = np.random.default_rng(11)
    features = ["tenure", "usage", "support_calls", "spend", "age"]
    frame[features] = (frame[features] + 0.4 + rng.normal(scale=0.9, size=(len(frame), len(features)))).round(4)
    return frame


def iris_frame() -> pd.DataFrame:
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True)
    frame = iris.data.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    return frame.assign(species=iris.target_names[iris.target.to_numpy()])


def diabetes_frame() -> pd.DataFrame:
    from sklearn.datasets import load_diabetes

    diabetes = load_diabetes(as_frame=True, scaled=False)
    return diabetes.data.assign(progression=diabetes.target)


def xss_frame(n: int = 600) -> pd.DataFrame:
    rng = np.random.default_rng(11)
    X = rng.normal(size=(n, len(XSS_FEATURES))).round(4)
    frame = pd.DataFrame(X, columns=XSS_FEATURES)
    multi = np.argmax(X @ rng.normal(size=(len(XSS_FEATURES), len(XSS_MULTI_LABELS))) + rng.normal(size=(n, 4)), 1)
    binary = (X[:, 0] - X[:, 1] + rng.normal(scale=0.8, size=n)) > 0
    frame[XSS_MULTI_TARGET] = np.asarray(XSS_MULTI_LABELS, dtype=object)[multi]
    frame[XSS_BINARY_TARGET] = np.asarray(XSS_BINARY_LABELS, dtype=object)[binary.astype(int)]
    return frame


def _logit(frame, features, target):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=1000).fit(frame[features], frame[target])


def _logit_on_churn(frame, features, target):
    """The churn model fitted on January's churn.csv, whichever dataset it is scored on."""
    return _logit(churn_frame(), features, target)


def _nb(frame, features, target):
    from sklearn.naive_bayes import GaussianNB

    return GaussianNB().fit(frame[features], frame[target])


def _ridge(frame, features, target):
    from sklearn.linear_model import Ridge

    return Ridge().fit(frame[features], frame[target])


@dataclass(frozen=True)
class Recipe:
    """A scoring job: which model (fitted how, on which data) scores which dataset."""

    dataset: str
    model: str
    fit: Callable
    target: str | None
    fit_target: str
    description: str = ""
    kind: str = "score"     # or "importance" (permutation importance of the model on the dataset)


DATASETS: dict[str, Callable[[], pd.DataFrame]] = {
    "churn.csv": churn_frame, "churn-feb.csv": churn_feb_frame, "iris.csv": iris_frame, "diabetes.csv": diabetes_frame, XSS_DATASET_NAME: xss_frame,
}
TARGETS = {"churn.csv": ["churned"], "churn-feb.csv": ["churned"], "iris.csv": ["species"], "diabetes.csv": ["progression"],
           XSS_DATASET_NAME: [XSS_MULTI_TARGET, XSS_BINARY_TARGET]}

JOBS: dict[str, Recipe] = {
    "binary": Recipe("churn.csv", "churn-logit", _logit_on_churn, "churned", "churned", "Churn, logistic regression"),
    "binary-feb": Recipe("churn-feb.csv", "churn-logit", _logit_on_churn, "churned", "churned",
                         "Churn, logistic regression"),
    "binary-nb": Recipe("churn.csv", "churn-nb", _nb, "churned", "churned", "Churn, naive Bayes"),
    "multiclass": Recipe("iris.csv", "iris-logit", _logit, "species", "species"),
    "regression": Recipe("diabetes.csv", "diabetes-ridge", _ridge, "progression", "progression"),
    "no-target": Recipe("churn.csv", "churn-logit", _logit, None, "churned", "Churn, logistic regression"),
    "importance": Recipe("churn.csv", "churn-logit", _logit, "churned", "churned", "Churn, logistic regression",
                         kind="importance"),
    "xss-multi": Recipe(XSS_DATASET_NAME, "xss-multi", _logit, XSS_MULTI_TARGET, XSS_MULTI_TARGET, XSS_DESCRIPTION),
    "xss-multi-nb": Recipe(XSS_DATASET_NAME, "xss-multi-nb", _nb, XSS_MULTI_TARGET, XSS_MULTI_TARGET,
                           XSS_DESCRIPTION),
    "xss-binary": Recipe(XSS_DATASET_NAME, "xss-binary", _logit, XSS_BINARY_TARGET, XSS_BINARY_TARGET,
                         XSS_DESCRIPTION),
    "xss-importance": Recipe(XSS_DATASET_NAME, "xss-multi", _logit, XSS_MULTI_TARGET, XSS_MULTI_TARGET,
                             XSS_DESCRIPTION, kind="importance"),
}


@dataclass
class Site:
    app: object
    base_url: str
    datasets: dict[str, str] = field(default_factory=dict)    # file name -> dataset id
    models: set[str] = field(default_factory=set)
    jobs: dict[str, dict] = field(default_factory=dict)      # recipe key -> the finished job (API object)

    def __post_init__(self):
        self.client = self.app.test_client()
        self._headers: dict[str, str] | None = None

    def create_users(self, password: str) -> None:
        from viewer.infra.extensions import db
        from viewer.infra.records import ROLES, ApiToken, User

        with self.app.app_context():
            for role in ROLES:
                user = User(username=role, role=role)
                user.set_password(password)
                db.session.add(user)
            db.session.commit()
            _token, raw = ApiToken.issue(User.by_name("scientist"), "browser tests")
            db.session.commit()
        self._headers = {"Authorization": f"Bearer {raw}"}

    @property
    def headers(self) -> dict[str, str]:
        assert self._headers is not None
        return self._headers

    def frame(self, name: str) -> pd.DataFrame:
        return DATASETS[name]()

    def dataset(self, name: str) -> str:
        if name not in self.datasets:
            content = self.frame(name).to_csv(index=False).encode()
            response = self.client.post("/api/v1/datasets", headers=self.headers, content_type="multipart/form-data",
                                        data={"file": (io.BytesIO(content), "upload.csv"), "name": name})
            assert response.status_code == 201, response.get_json()
            self.datasets[name] = response.get_json()["id"]
        return self.datasets[name]

    def model(self, recipe: Recipe) -> str:
        if recipe.model not in self.models:
            frame = self.frame(recipe.dataset)
            features = [c for c in frame.columns if c not in TARGETS[recipe.dataset]]
            estimator = recipe.fit(frame, features, recipe.fit_target)
            buffer = io.BytesIO()
            joblib.dump(estimator, buffer)
            response = self.client.post(
                "/api/v1/models", headers=self.headers, content_type="multipart/form-data",
                data={"file": (io.BytesIO(buffer.getvalue()), f"{recipe.model}.joblib"), "name": recipe.model,
                      "description": recipe.description})
            assert response.status_code == 201, response.get_json()
            self.models.add(recipe.model)
        return recipe.model

    def job(self, *keys: str) -> dict | list[dict]:
        """The finished job of each recipe (submitted together, then waited for)."""
        submitted = {}
        for key in keys:
            if key in self.jobs:
                continue
            recipe = JOBS[key]
            body = {"model": self.model(recipe), "dataset": self.dataset(recipe.dataset), "kind": recipe.kind}
            if recipe.kind == "importance":
                body["n_repeats"] = 2
            if recipe.target:
                body["target"] = recipe.target
            response = self.client.post("/api/v1/jobs", headers=self.headers, json=body)
            assert response.status_code in (200, 202), response.get_json()
            submitted[key] = response.get_json()["id"]
        for key, job_id in submitted.items():
            done = wait_for_job(self.client, self.headers, job_id, timeout=120)
            assert done["state"] == "done", done
            self.jobs[key] = done
        found = [self.jobs[k] for k in keys]
        return found[0] if len(keys) == 1 else found

    def path(self, key: str) -> str:
        return f"/jobs/{self.job(key)['id']}"
