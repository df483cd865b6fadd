"""The demo: real models trained on data that ships with scikit-learn, registered, uploaded and
scored through the same functions the API calls (``registry.register``, ``datasets.upload``,
``submission.submit``), so the first pages after login have plots, a comparison and model cards.

``python manage.py demo`` loads it; ``make run`` loads it into a fresh install. Everything
belongs to the user ``demo`` (a scientist without a password: nobody logs in as it). Loading is
idempotent and fills gaps: a model whose name exists is neither trained nor registered again, a
test set is uploaded only if the demo user has no ready dataset of that name, and
``submission.submit`` returns the existing job for the same model version, dataset and target.
The scoring jobs are queued for a worker (``manage.py up`` starts one), like any other job.
It goes into the default project, or into the project named (made when missing); "exists" means
"exists in that project".
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import joblib
import pandas as pd
from sqlalchemy import select
from threadpoolctl import threadpool_limits

from ..infra.extensions import db
from ..infra.records import Dataset, User
from ..infra.scope import Scope, only_mine, within
from . import datasets, projects, registry, submission
from .errors import ServiceError

DEMO_USER = "demo"
CHAMPION = "champion"
TEST_SIZE = 0.3
SEED = 0


@dataclass(frozen=True)
class DemoModel:
    name: str
    summary: str                   # first sentence of the description
    build: Callable[[], Any]       # an unfitted estimator


@dataclass(frozen=True)
class DemoData:
    title: str
    dataset_name: str              # the test split's file name (a dataset's display name)
    target: str                    # the target column in the uploaded test split
    about: str
    load: Callable[[], tuple[pd.DataFrame, pd.Series]]
    classification: bool
    models: tuple[DemoModel, ...]


def _breast_cancer() -> tuple[pd.DataFrame, pd.Series]:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    return bunch.data, pd.Series(bunch.target_names[bunch.target], name="diagnosis")


def _wine() -> tuple[pd.DataFrame, pd.Series]:
    from sklearn.datasets import load_wine

    bunch = load_wine(as_frame=True)
    return bunch.data, pd.Series(bunch.target_names[bunch.target], name="cultivar")


def _diabetes() -> tuple[pd.DataFrame, pd.Series]:
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes(as_frame=True, scaled=False)  # age in years, BMI, blood pressure, ...
    return bunch.data, bunch.target.rename("progression")


def _logreg():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline([("scale", StandardScaler()), ("logreg", LogisticRegression(max_iter=1000))])


def _hgb():
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(random_state=SEED)


def _forest():
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=100, random_state=SEED)


def _ridge():
    from sklearn.linear_model import Ridge

    return Ridge(alpha=1.0)


def _gbr():
    from sklearn.ensemble import GradientBoostingRegressor

    return GradientBoostingRegressor(random_state=SEED)


DEMO: tuple[DemoData, ...] = (
    DemoData(
        title="Breast cancer", dataset_name="breast-cancer-test.csv", target="diagnosis", classification=True,
        about="Predicts whether a breast mass is malignant or benign from 30 measurements of the cell nuclei "
              "in a digitised image of a fine-needle aspirate (Wisconsin Diagnostic Breast Cancer data, "
              "sklearn.datasets.load_breast_cancer).",
        load=_breast_cancer,
        models=(DemoModel("breast-cancer-logreg", "Logistic regression on standardised features.", _logreg),
                DemoModel("breast-cancer-hgb", "Histogram gradient boosting.", _hgb)),
    ),
    DemoData(
        title="Wine", dataset_name="wine-test.csv", target="cultivar", classification=True,
        about="Tells which of three cultivars a wine comes from, from 13 results of its chemical analysis "
              "(sklearn.datasets.load_wine).",
        load=_wine,
        models=(DemoModel("wine-forest", "Random forest of 100 trees (multiclass).", _forest),),
    ),
    DemoData(
        title="Diabetes", dataset_name="diabetes-test.csv", target="progression", classification=False,
        about="Predicts a quantitative measure of diabetes progression one year after baseline from age, "
              "sex, body mass index, blood pressure and six blood serum measurements "
              "(sklearn.datasets.load_diabetes, unscaled).",
        load=_diabetes,
        models=(DemoModel("diabetes-ridge", "Ridge regression (alpha=1).", _ridge),
                DemoModel("diabetes-gbr", "Gradient boosting regressor.", _gbr)),
    ),
)


@dataclass
class Report:
    """What one load did; ``added`` is False when everything was there already."""

    registered: list[str] = field(default_factory=list)     # refs, e.g. "wine-forest/1"
    champions: list[str] = field(default_factory=list)      # "breast-cancer-hgb@champion"
    existing_models: list[str] = field(default_factory=list)
    uploaded: list[str] = field(default_factory=list)
    existing_datasets: list[str] = field(default_factory=list)
    queued: list[str] = field(default_factory=list)         # job ids
    existing_jobs: list[str] = field(default_factory=list)
    comparisons: list[list[str]] = field(default_factory=list)  # job ids of models scored on one test set
    problems: list[str] = field(default_factory=list)
    train_seconds: float = 0.0

    @property
    def added(self) -> bool:
        return bool(self.registered or self.uploaded or self.queued)

    def lines(self) -> list[str]:
        out = []
        if self.registered:
            out.append(f"Registered {', '.join(self.registered)} (trained in {self.train_seconds:.1f} s)")
        if self.champions:
            out.append(f"Aliases: {', '.join(self.champions)} (the best of each pair on its test set)")
        if self.uploaded:
            out.append(f"Uploaded test sets {', '.join(self.uploaded)}")
        if self.queued:
            out.append(f"Queued {len(self.queued)} scoring jobs for a worker")
        if not self.added:
            out.append(f"Nothing added: the demo's {len(self.existing_models)} models, "
                       f"{len(self.existing_datasets)} datasets and {len(self.existing_jobs)} scoring jobs "
                       "are there already.")
        out += [f"Problem: {p}" for p in self.problems]
        return out


def demo_user() -> User:
    user = User.by_name(DEMO_USER)
    if user is None:
        user = User(username=DEMO_USER, role="scientist")  # no password: nobody can log in as it
        db.session.add(user)
        db.session.commit()
    return user


def _model_exists(name: str) -> bool:
    return registry.exists(name)


def _find_dataset(name: str, user: User) -> Dataset | None:
    return db.session.scalar(only_mine(select(Dataset), Dataset.project_id)
                             .where(Dataset.name == name, Dataset.uploaded_by_id == user.id, Dataset.state == "ready")
                             .order_by(Dataset.created_at.desc()).limit(1))


def _description(item: DemoData, model: DemoModel, n_train: int, n_test: int) -> str:
    return (f"{model.summary} {item.about} Trained on {n_train} rows; the other {n_test} rows are the "
            f"dataset {item.dataset_name}, with the true value in the column '{item.target}'. "
            "A demo model: delete it whenever you like.")


def _score(estimator: Any, X: pd.DataFrame, y: pd.Series) -> float:
    return float(estimator.score(X, y))  # accuracy for classifiers, R² for regressors


def _load_one(item: DemoData, user: User, report: Report) -> None:
    from sklearn.model_selection import train_test_split

    X, y = item.load()
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=TEST_SIZE, random_state=SEED, stratify=y if item.classification else None)

    missing = [m for m in item.models if not _model_exists(m.name)]
    report.existing_models += [m.name for m in item.models if m not in missing]
    scores: dict[str, tuple[float, Any]] = {}
    for spec in missing:
        started = time.perf_counter()
        estimator = spec.build().fit(X_train, y_train)
        report.train_seconds += time.perf_counter() - started
        buffer = io.BytesIO()
        joblib.dump(estimator, buffer)
        buffer.seek(0)
        try:
            version, created = registry.register(
                buffer, name=spec.name, filename=f"{spec.name}.joblib", user=user,
                description=_description(item, spec, len(X_train), len(X_test)))
        except ServiceError as exc:
            report.problems.append(f"{spec.name}: {exc.message}")
            continue
        if created:
            report.registered.append(version.ref)
        else:  # the same bytes are there already (registered meanwhile)
            report.existing_models.append(spec.name)
        scores[spec.name] = (_score(estimator, X_test, y_test), version)
    # A fresh pair gets a champion: the better of the two on the held-out rows.
    if len(item.models) > 1 and len(scores) == len(item.models):
        best = max(scores, key=lambda name: scores[name][0])
        version = scores[best][1]
        registry.set_alias(version.model, CHAMPION, version.version)
        report.champions.append(f"{best}@{CHAMPION}")

    dataset = _find_dataset(item.dataset_name, user)
    if dataset is None:
        frame = X_test.assign(**{item.target: y_test.to_numpy()})
        try:
            dataset, _job = datasets.upload(io.BytesIO(frame.to_csv(index=False).encode()), item.dataset_name, user)
        except ServiceError as exc:
            report.problems.append(f"{item.dataset_name}: {exc.message}")
            return
        report.uploaded.append(f"{item.dataset_name} ({dataset.n_rows} rows)")
    else:
        report.existing_datasets.append(item.dataset_name)

    scored = []
    for spec in item.models:
        if not _model_exists(spec.name):
            continue  # its registration failed above
        try:
            job, created = submission.submit(spec.name, dataset.id, item.target, user)
        except ServiceError as exc:
            report.problems.append(f"scoring {spec.name} on {item.dataset_name}: {exc.message}")
            continue
        (report.queued if created else report.existing_jobs).append(job.id)
        scored.append(job.id)
    if len(scored) > 1:
        report.comparisons.append(scored)


def load(project: str | None = None) -> Report:
    """Train, register, upload and queue whatever part of the demo is missing from ``project``
    (default: the default project; made when missing). Needs an app context; run unscoped."""
    target = projects.by_name(project) if project else projects.get(projects.default_id())
    if target is None:
        target = projects.create(project)
    with within(Scope(target.id, target.name, "admin", global_admin=True)):
        return _load()


def _load() -> Report:
    report = Report()
    user = demo_user()
    # One thread: these datasets are tiny, and OpenMP threads spinning on a busy machine (or
    # beside the worker that `up` just started) made HistGradientBoosting's fit 10-20x slower.
    # threadpoolctl limits only libraries already loaded: import the estimators' modules first.
    import sklearn.ensemble  # noqa: F401
    import sklearn.linear_model  # noqa: F401

    with threadpool_limits(limits=1):
        for item in DEMO:
            _load_one(item, user, report)
    return report


__all__ = ["DEMO", "DEMO_USER", "Report", "load"]
