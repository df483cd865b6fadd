"""A small Python client for the viewer's API.

    from viewer.client import Client
    client = Client("http://127.0.0.1:5000", token="vwr_...")
    client.upload_model("model.joblib", name="churn")
    client.predict(df, model="churn@production")          # numpy array of predictions
    client.predict_proba(df, model="churn")               # DataFrame, one column per class

It needs only requests, pandas and numpy (pyarrow for Parquet; not Flask), so scripts and notebooks
can use it anywhere.
"""

from __future__ import annotations

import datetime
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import requests


class ApiError(RuntimeError):
    """An error answer from the server, with its HTTP status and ``error_code``."""

    def __init__(self, status: int, error_code: str, message: str):
        super().__init__(f"{status} {error_code}: {message}")
        self.status = status
        self.error_code = error_code
        self.message = message


def _records(data: Any) -> dict[str, Any]:
    """Any tabular input as a ``dataframe_split`` body (None for missing values)."""
    if isinstance(data, pd.DataFrame):
        frame = data
    elif isinstance(data, dict):
        frame = pd.DataFrame(data)
    else:
        # object: a mixed list keeps its numbers; datetime64 stays (as objects they become ints)
        dated = isinstance(data, np.ndarray) and data.dtype.kind == "M"
        array = data if dated else np.asarray(data, dtype=object)
        if array.ndim == 1:
            array = array.reshape(1, -1)
        return {"instances": [[_plain(v) for v in row] for row in array]}
    rows = [[_plain(v) for v in row] for row in frame.itertuples(index=False, name=None)]
    return {"dataframe_split": {"columns": [str(c) for c in frame.columns], "data": rows}}


def _plain(value: Any) -> Any:
    if value is pd.NA or value is pd.NaT or (isinstance(value, np.datetime64) and np.isnat(value)):
        return None
    if isinstance(value, (datetime.datetime, np.datetime64)):  # as a CSV holds them: ISO 8601 text
        return pd.Timestamp(value).isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class Client:
    last_request_id: str | None = None  # the id of the last prediction request (its log records')

    def __init__(self, url: str, token: str | None = None, *, project: str | None = None, timeout: float = 60.0):
        """``project``: work in that project (``/p/<project>/`` on the server); the token's user's
        default project when left out."""
        self.root = url.rstrip("/")
        self.url = self.root + (f"/p/{project}" if project else "")
        self.timeout = timeout
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    # --- plumbing --------------------------------------------------------------------------------

    def request(self, method: str, path: str, *, root: bool = False, **kwargs: Any) -> Any:
        response = self.send(method, path, root=root, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def send(self, method: str, path: str, *, root: bool = False, **kwargs: Any) -> requests.Response:
        """The raw response (for downloads); an error answer raises ApiError. ``root``: ``path`` is
        from the server's root, not from this project's."""
        response = self.session.request(method, (self.root if root else self.url) + path,
                                        timeout=kwargs.pop("timeout", self.timeout), **kwargs)
        if response.status_code >= 400:
            try:
                body = response.json()
                raise ApiError(response.status_code, body.get("error_code", "error"), body.get("message", ""))
            except (ValueError, AttributeError):
                raise ApiError(response.status_code, "error", response.text[:500]) from None
        return response

    # --- models ----------------------------------------------------------------------------------

    def me(self) -> dict[str, Any]:
        return self.request("GET", "/api/v1/me")

    def _all(self, path: str, key: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every item of a paged list, following its 'next' links."""
        page = self.request("GET", path, params=params)
        found = list(page[key])
        while page.get("next"):  # a path from the server's root (it holds the /p/<project>/ prefix)
            page = self.request("GET", page["next"], root=True)
            found += page[key]
        return found

    def models(self, query: str = "") -> list[dict[str, Any]]:
        return self._all("/api/v1/models", "models", {"q": query} if query else None)

    def model(self, ref: str) -> dict[str, Any]:
        """A model (``name``) with its versions, or one version (``name@alias``, ``name/3``)."""
        if "/" in ref:
            name, _, version = ref.partition("/")
            return self.request("GET", f"/api/v1/models/{name}/versions/{int(version)}")
        return self.request("GET", f"/api/v1/models/{ref}")

    def upload_model(self, model: Any, name: str, description: str = "") -> dict[str, Any]:
        """Register a new version of ``name``: ``model`` is a saved file (joblib, pickle or skops;
        a path) or a fitted estimator, which is saved with joblib on the way (in memory)."""
        if isinstance(model, (str, Path)):
            path = Path(model)
            with path.open("rb") as fh:
                return self.request("POST", "/api/v1/models", files={"file": (path.name, fh)},
                                    data={"name": name, "description": description})
        import joblib

        buffer = io.BytesIO()
        joblib.dump(model, buffer)
        buffer.seek(0)
        return self.request("POST", "/api/v1/models", files={"file": (f"{name}.joblib", buffer)},
                            data={"name": name, "description": description})

    def set_alias(self, name: str, alias: str, version: int) -> dict[str, Any]:
        return self.request("PUT", f"/api/v1/models/{name}/aliases/{alias}", json={"version": version})

    def delete_version(self, name: str, version: int) -> None:
        self.request("DELETE", f"/api/v1/models/{name}/versions/{version}")

    # --- predictions -----------------------------------------------------------------------------

    def _predict_path(self, model: str) -> str:
        if "/" in model:
            name, _, version = model.partition("/")
            return f"/api/v1/models/{name}/versions/{int(version)}/predict"
        return f"/api/v1/models/{model}/predict"

    def _predict_call(self, data: Any, model: str, request_id: str | None, **kwargs: Any) -> dict[str, Any]:
        headers = {"Content-Type": "application/json", **({"X-Request-ID": request_id} if request_id else {})}
        body = self.request("POST", self._predict_path(model), data=json.dumps(_records(data)), headers=headers,
                            **kwargs)
        self.last_request_id = body.get("request_id")
        return body

    def predict(self, data: Any, model: str, *, request_id: str | None = None) -> np.ndarray:
        """The predictions of ``data``'s rows. The request's id in the prediction log (``request_id``,
        or a generated one) is ``last_request_id`` afterwards: labels that arrive later name it."""
        return np.asarray(self._predict_call(data, model, request_id)["predictions"])

    def predict_proba(self, data: Any, model: str, *, request_id: str | None = None) -> pd.DataFrame:
        body = self._predict_call(data, model, request_id, params={"output": "proba"})
        index = data.index if isinstance(data, pd.DataFrame) else None
        return pd.DataFrame(body["probabilities"], columns=body["classes"], index=index)

    # --- the prediction log and monitoring -------------------------------------------------------

    def prediction_log(self, model: str, start: Any = None, end: Any = None, *, version: int | None = None
                       ) -> pd.DataFrame:
        """A window of a model's prediction log, one row per row served: request_id, row, at (UTC),
        latency_ms, route, prediction, proba, version, and (for a project's scientists) the inputs
        as columns ``input.<name>`` (null where the model's sampling left them out). ``start`` and
        ``end``: datetimes or ISO 8601 text (UTC when no offset is given)."""
        params = {k: (v.isoformat() if hasattr(v, "isoformat") else v)
                  for k, v in (("start", start), ("end", end), ("version", version)) if v is not None}
        response = self.send("GET", f"/api/v1/models/{model}/log", params={**params, "format": "parquet"})
        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(response.content))
        if "inputs" in table.column_names:
            table = table.flatten()
            table = table.rename_columns([c.replace("inputs.", "input.", 1) for c in table.column_names])
        return table.to_pandas()

    def post_labels(self, model: str, labels: Any) -> dict[str, Any]:
        """Labels for logged predictions: a DataFrame (or records) with request_id, label and
        optionally row (0 by default). Returns how many were accepted and matched, the request ids
        the log does not hold (yet) and the labels refused (not a class of the model)."""
        records = labels.to_dict("records") if isinstance(labels, pd.DataFrame) else list(labels)
        items = [{"request_id": str(r["request_id"]), "row": int(r.get("row", 0) or 0), "label": _plain(r["label"])}
                 for r in records]
        totals: dict[str, Any] = {"accepted": 0, "matched": 0, "unknown": [], "unknown_count": 0, "rejected": [],
                                  "rejected_count": 0}
        for start in range(0, len(items), 10_000):  # the API takes 10,000 a request
            answer = self.request("POST", f"/api/v1/models/{model}/labels", json={"labels": items[start:start + 10_000]})
            for key, value in answer.items():
                totals[key] = totals[key] + value
        return totals

    def drift(self, model: str, *, window: str = "hour", last: int = 48) -> dict[str, Any]:
        """The drift report: per window, traffic, latency, per column drift against the reference,
        and realized performance from the labels joined so far."""
        return self.request("GET", f"/api/v1/models/{model}/drift", params={"window": window, "last": last})

    # --- datasets and scoring jobs ----------------------------------------------------------------

    def datasets(self) -> list[dict[str, Any]]:
        return self._all("/api/v1/datasets", "datasets")

    def dataset(self, dataset_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v1/datasets/{dataset_id}")

    def upload_dataset(self, data: str | Path | pd.DataFrame, name: str | None = None) -> dict[str, Any]:
        """Upload a CSV or Parquet file, or a DataFrame (sent as Parquet, so types survive).
        A large file answers with state "ingesting" and its ingest job under "job": wait for it."""
        if isinstance(data, pd.DataFrame):
            buffer = io.BytesIO()
            data.to_parquet(buffer, index=False)
            name = name or "dataframe.parquet"
            return self.request("POST", "/api/v1/datasets", files={"file": (name, buffer.getvalue())})
        path = Path(data)
        with path.open("rb") as fh:
            return self.request("POST", "/api/v1/datasets", files={"file": (name or path.name, fh)})

    def submit_job(self, model: str, dataset: str, target: str | None = None, *, force: bool = False,
                   passthrough: list[str] | None = None) -> dict[str, Any]:
        """Score dataset id ``dataset`` with ``model`` (name, name@alias, name/3); with ``target``
        the job computes metrics. ``passthrough``: dataset columns kept beside the predictions
        (None: the dataset's ID columns). The same model version, dataset, target and passthrough
        scored before returns that job, unless ``force``."""
        body: dict[str, Any] = {"model": model, "dataset": dataset, "target": target, "force": force}
        if passthrough is not None:
            body["passthrough"] = list(passthrough)
        return self.request("POST", "/api/v1/jobs", json=body)

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        return self.request("DELETE", f"/api/v1/jobs/{job_id}")

    def results(self, job_id: str, *, inputs: bool = False, index: str | None = None) -> pd.DataFrame:
        """A finished scoring job's rows: ``row``, the passthrough columns (by default the
        dataset's ID columns, e.g. ``loan_id``), ``prediction``, ``proba_<class>`` per class and
        ``target`` when the job had one. ``inputs``: every dataset column with the outputs beside
        it. ``index``: a column to index the frame by (an ID, to ``join`` your own rows by it)."""
        params = {"format": "parquet", **({"inputs": "true"} if inputs else {})}
        response = self.send("GET", f"/api/v1/jobs/{job_id}/results", params=params)
        frame = pd.read_parquet(io.BytesIO(response.content))
        return frame.set_index(index) if index else frame

    # --- jobs ------------------------------------------------------------------------------------

    def jobs(self, **filters: str) -> list[dict[str, Any]]:
        """Every job matching the filters (model, dataset, state, user, kind), newest first,
        following the list's 'next' links page by page."""
        return self._all("/api/v1/jobs", "jobs", {k: v for k, v in filters.items() if v})

    def job(self, job_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v1/jobs/{job_id}")

    def wait_job(self, job_id: str, timeout: float = 600.0, poll: float = 0.5) -> dict[str, Any]:
        """Poll a job until it is done, failed or cancelled; returns its final state."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            body = self.job(job_id)
            if body["state"] in ("done", "error", "cancelled"):
                return body
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is still {body['state']} after {timeout:.0f} s")
            time.sleep(poll)

    def compare_datasets(self, dataset: str, reference: str, *, force: bool = False, wait: bool = True,
                         timeout: float = 600.0) -> dict[str, Any]:
        """Drift of dataset id ``dataset`` against dataset id ``reference`` (a worker job; no model
        needed). With ``wait`` (default) returns the finished job, whose ``result["columns"]``
        holds each shared column's figures (``drift``, ``wasserstein``, ``psi``, ``jensen_shannon``,
        ...) and ``result["dataset_drift"]`` the verdict; else the job as submitted."""
        job = self.request("POST", f"/api/v1/datasets/{dataset}/drift", json={"reference": reference, "force": force})
        return self.wait_job(job["id"], timeout=timeout) if wait else job

    def feature_importance(self, model: str, dataset: str, target: str, *, n_repeats: int | None = None,
                           max_rows: int | None = None, seed: int | None = None, scoring: str | None = None,
                           force: bool = False, wait: bool = True, timeout: float = 600.0) -> dict[str, Any]:
        """Permutation importance of ``model`` on dataset id ``dataset`` (a worker job). With
        ``wait`` (default) returns the finished job, whose ``result["features"]`` lists
        ``{"name", "mean", "std", "values"}`` most important first; else the job as submitted."""
        body: dict[str, Any] = {"kind": "importance", "model": model, "dataset": dataset, "target": target,
                                "force": force}
        body.update({k: v for k, v in (("n_repeats", n_repeats), ("max_rows", max_rows), ("seed", seed),
                                       ("scoring", scoring)) if v is not None})
        job = self.request("POST", "/api/v1/jobs", json=body)
        return self.wait_job(job["id"], timeout=timeout) if wait else job
