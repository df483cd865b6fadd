"""The model registry through the API, the pages and the CLI, on a real database."""

from __future__ import annotations

import io
import os
import pickle
import re
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression, Ridge

from viewer.services import registry
from viewer.cli import cli
from viewer.infra.extensions import db
from viewer.infra.records import Job, ModelVersion, RegisteredModel


@pytest.fixture(scope="module")
def iris_model():
    X, y = load_iris(return_X_y=True)
    return LogisticRegression(max_iter=500).fit(X, y)


def dump(estimator, **kwargs) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(estimator, buffer, **kwargs)
    return buffer.getvalue()


def upload(client, headers, content: bytes, name="iris", filename="model.joblib", **form):
    return client.post("/api/v1/models", headers=headers, content_type="multipart/form-data",
                       data={"file": (io.BytesIO(content), filename), "name": name, **form})


def stored_objects(app) -> list[Path]:
    root = Path(app.config["DATA_DIR"]) / "models"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


class Canary:
    """Pickles to a call that would create a file: proof of code execution if it appears."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_upload_versions_and_facts(client, auth, iris_model):
    headers = auth.bearer("scientist")
    first = upload(client, headers, dump(iris_model), description="Iris species")
    assert first.status_code == 201, first.get_json()
    body = first.get_json()
    assert body["version"] == 1 and body["name"] == "iris" and body["kind"] == "classifier"
    assert body["classes"] == [0, 1, 2] and body["n_features"] == 4
    assert body["uploaded_by"] == "scientist" and len(body["sha256"]) == 64
    assert body["has_predict_proba"] is True

    second = upload(client, headers, dump(LogisticRegression(C=0.1, max_iter=500).fit(*load_iris(return_X_y=True))))
    assert second.status_code == 201 and second.get_json()["version"] == 2

    again = upload(client, headers, dump(iris_model))  # same bytes as v1, but v2 is latest: a new version
    assert again.get_json()["version"] == 3
    duplicate = upload(client, headers, dump(iris_model))  # same bytes as the latest: nothing new
    assert duplicate.status_code == 200 and duplicate.get_json()["version"] == 3

    listing = client.get("/api/v1/models", headers=auth.bearer("viewer")).get_json()["models"]
    assert [(m["name"], m["latest_version"]) for m in listing] == [("iris", 3)]
    model = client.get("/api/v1/models/iris", headers=auth.bearer("viewer")).get_json()
    assert [v["version"] for v in model["versions"]] == [1, 2, 3]
    assert model["description"] == "Iris species"


def test_addressing_by_alias_and_version(client, auth, iris_model):
    headers = auth.bearer("scientist")
    upload(client, headers, dump(iris_model))
    upload(client, headers, dump(Ridge().fit(np.eye(3), [1, 2, 3])))
    assert client.put("/api/v1/models/iris/aliases/production", headers=headers, json={"version": 1}).status_code == 200
    assert client.get("/api/v1/models/iris@production", headers=headers).get_json()["version"] == 1
    assert client.get("/api/v1/models/iris/versions/2", headers=headers).get_json()["kind"] == "regressor"
    client.put("/api/v1/models/iris/aliases/production", headers=headers, json={"version": 2})
    assert client.get("/api/v1/models/iris@production", headers=headers).get_json()["version"] == 2
    assert client.get("/api/v1/models/iris@staging", headers=headers).status_code == 404
    assert client.get("/api/v1/models/iris/versions/9", headers=headers).get_json()["error_code"] == "version_not_found"
    assert client.put("/api/v1/models/iris/aliases/bad alias!", headers=headers, json={"version": 1}).status_code == 400
    assert client.put("/api/v1/models/iris/aliases/x", headers=headers, json={"version": "1"}).status_code == 400
    assert client.delete("/api/v1/models/iris/aliases/production", headers=headers).status_code == 204
    assert client.get("/api/v1/models/iris@production", headers=headers).status_code == 404


def test_viewer_cannot_change_the_registry(client, auth, iris_model):
    viewer = auth.bearer("viewer")
    assert upload(client, viewer, dump(iris_model)).status_code == 403
    upload(client, auth.bearer("scientist"), dump(iris_model))
    assert client.delete("/api/v1/models/iris/versions/1", headers=viewer).status_code == 403
    assert client.put("/api/v1/models/iris/aliases/p", headers=viewer, json={"version": 1}).status_code == 403


def test_only_admins_open_a_model_to_anonymous_predictions(client, auth, iris_model):
    upload(client, auth.bearer("scientist"), dump(iris_model))
    assert client.patch("/api/v1/models/iris", headers=auth.bearer("scientist"),
                        json={"anonymous_predict": True}).status_code == 403
    response = client.patch("/api/v1/models/iris", headers=auth.bearer("admin"), json={"anonymous_predict": True})
    assert response.status_code == 200 and response.get_json()["anonymous_predict"] is True


def test_delete_is_refused_while_a_job_uses_the_version(app, client, auth, iris_model):
    headers = auth.bearer("scientist")
    upload(client, headers, dump(iris_model))
    upload(client, headers, dump(Ridge().fit(np.eye(3), [1, 2, 3])))
    with app.app_context():
        version = registry.resolve("iris/1")
        db.session.add(Job(kind="score", state="running", params={}, model_version_id=version.id))
        db.session.commit()
    refused = client.delete("/api/v1/models/iris/versions/1", headers=headers)
    assert refused.status_code == 409 and refused.get_json()["error_code"] == "model_in_use"
    assert client.delete("/api/v1/models/iris/versions/2", headers=headers).status_code == 204
    with app.app_context():
        db.session.query(Job).update({"state": "done"})
        db.session.commit()
    assert client.delete("/api/v1/models/iris/versions/1", headers=headers).status_code == 204
    assert client.get("/api/v1/models/iris", headers=headers).status_code == 404
    assert stored_objects(app) == []  # the last reference went, so did the file


def test_identical_files_under_two_names_share_one_object(app, client, auth, iris_model):
    headers = auth.bearer("scientist")
    content = dump(iris_model)
    upload(client, headers, content, name="a")
    upload(client, headers, content, name="b")
    assert len(stored_objects(app)) == 1
    client.delete("/api/v1/models/a/versions/1", headers=headers)
    assert len(stored_objects(app)) == 1  # still used by b
    assert registry_loads(app, "b/1")


def registry_loads(app, ref) -> bool:
    with app.app_context():
        return hasattr(registry.load(registry.resolve(ref)), "predict")


def test_size_limit_is_413_and_stores_nothing(make_app, users, auth, iris_model):
    small = make_app(MAX_MODEL_MB=1)
    client = small.test_client()
    response = upload(client, auth.bearer("scientist"), os.urandom(1_200_000))
    assert response.status_code == 413
    assert "VIEWER_MAX_MODEL_MB" in response.get_json()["message"]
    assert stored_objects(small) == [] and not list((Path(small.config["DATA_DIR"]) / "scratch").glob("*"))


@pytest.mark.parametrize("content, filename", [
    (b"", "empty.joblib"),
    (b"sepal_length,sepal_width\n1,2\n", "data.joblib"),
    (os.urandom(4096), "noise.pkl"),
    (b"\x80\x04\x95", "truncated.pkl"),
])
def test_unreadable_files_are_422_and_store_nothing(app, client, auth, content, filename):
    response = upload(client, auth.bearer("scientist"), content, filename=filename)
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["error_code"] in ("model_unreadable", "model_unsafe")
    with app.app_context():
        assert db.session.query(RegisteredModel).count() == 0
    assert stored_objects(app) == []


def test_truncated_real_model_is_422(app, client, auth, iris_model):
    content = dump(iris_model)
    response = upload(client, auth.bearer("scientist"), content[: len(content) // 2])
    assert response.status_code == 422
    assert stored_objects(app) == []


def test_hostile_pickle_is_refused_names_the_offender_and_runs_nothing(app, client, auth, tmp_path):
    canary = tmp_path / "pwned"
    for content in (pickle.dumps(Canary(canary)), dump(Canary(canary)), dump(Canary(canary), compress=3)):
        response = upload(client, auth.bearer("scientist"), content)
        assert response.status_code == 422
        body = response.get_json()
        assert body["error_code"] == "model_unsafe"
        assert "system" in body["message"]
        assert not canary.exists()
    with app.app_context():
        assert db.session.query(ModelVersion).count() == 0
    assert stored_objects(app) == []


def test_bad_names_and_missing_file_are_400(client, auth, iris_model):
    headers = auth.bearer("scientist")
    for name in ("", "../etc", "a/b", "x@y", "-lead", "a" * 101):
        response = upload(client, headers, dump(iris_model), name=name)
        assert response.status_code == 400, name
        assert response.get_json()["error_code"] == "bad_model_name"
    assert client.post("/api/v1/models", headers=headers, data={"name": "x"}).status_code == 400


def test_hostile_filename_is_display_text_only(app, client, auth, iris_model):
    response = upload(client, auth.bearer("scientist"), dump(iris_model), filename="../../../etc/passwd;rm -rf")
    assert response.status_code == 201
    for path in stored_objects(app):
        assert re.fullmatch(r"[0-9a-f]{64}", path.name)
        assert Path(app.config["DATA_DIR"]) in path.parents


def test_loaded_models_are_cached_by_content(app, client, auth, iris_model):
    upload(client, auth.bearer("scientist"), dump(iris_model))
    with app.app_context():
        version = registry.resolve("iris")
        registry._cache.discard(version.sha256)
        first = registry.load(version)
        assert registry.load(version) is first
        X, _y = load_iris(return_X_y=True)
        np.testing.assert_array_equal(first.predict_proba(X), iris_model.predict_proba(X))


def test_pages_upload_list_and_card(app, client, auth, iris_model):
    auth.login("scientist")
    token = auth.csrf_token("/models/upload")
    response = client.post("/models/upload", content_type="multipart/form-data", data={
        "csrf_token": token, "name": "iris", "description": "three species",
        "file": (io.BytesIO(dump(iris_model)), "iris.joblib")})
    assert response.status_code == 302
    assert response.headers["Location"] == "/models/iris/versions/1"
    card = client.get("/models/iris/versions/1").get_data(as_text=True)
    for fact in ("sklearn.linear_model._logistic.LogisticRegression", "classifier", "predict_proba",
                 "4 unnamed features", "iris.joblib"):
        assert fact in card, fact
    listing = client.get("/models/?q=species").get_data(as_text=True)
    assert "/models/iris" in listing
    assert "No model matches" in client.get("/models/?q=zzz").get_data(as_text=True)


def test_upload_page_shows_a_refusal_beside_the_field(client, auth, tmp_path):
    auth.login("scientist")
    token = auth.csrf_token("/models/upload")
    response = client.post("/models/upload", content_type="multipart/form-data", data={
        "csrf_token": token, "name": "evil", "file": (io.BytesIO(pickle.dumps(Canary(tmp_path / "x"))), "evil.pkl")})
    assert response.status_code == 422
    assert 'class="field-error"' in response.get_data(as_text=True)
    assert not (tmp_path / "x").exists()


def test_viewer_sees_no_upload_page(client, auth):
    auth.login("viewer")
    assert client.get("/models/upload").status_code == 403
    assert client.get("/models/").status_code == 200


def test_card_warns_on_a_version_mismatch(client, auth, iris_model, monkeypatch):
    import sklearn.base

    monkeypatch.setattr(sklearn.base, "__version__", "0.24.2")
    content = dump(iris_model)
    monkeypatch.undo()
    response = upload(client, auth.bearer("scientist"), content)
    assert response.status_code == 201
    assert response.get_json()["saved_with"]["sklearn"] == "0.24.2"
    auth.login("viewer")
    assert "Version mismatch" in client.get("/models/iris/versions/1").get_data(as_text=True)


def test_cli_registers_a_model(app, runner, users, iris_model, tmp_path):
    path = tmp_path / "m.joblib"
    joblib.dump(iris_model, path)
    result = runner.invoke(cli, ["register-model", str(path), "--name", "cli-model", "--user", "scientist"])
    assert result.exit_code == 0, result.output
    assert "Registered cli-model/1" in result.output
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps(Canary(tmp_path / "cli-pwned")))
    result = runner.invoke(cli, ["register-model", str(bad), "--name", "cli-model"])
    assert result.exit_code != 0 and "system" in result.output
    assert not (tmp_path / "cli-pwned").exists()


def test_a_model_asking_for_many_processes_is_held_to_one_and_told_so(client, auth):
    """n_jobs=-1 (or 24) is set to 1 at upload: the version says so beside its facts, as a note
    rather than a warning, and predicting starts no extra process."""
    from sklearn.ensemble import RandomForestClassifier

    X, y = load_iris(return_X_y=True)
    forest = RandomForestClassifier(n_estimators=3, n_jobs=-1, random_state=0).fit(X, y)
    headers = auth.bearer("scientist")
    made = upload(client, headers, dump(forest), name="forest")
    assert made.status_code == 201, made.get_json()
    version = client.get("/api/v1/models/forest/versions/1", headers=headers).get_json()
    assert version["warnings"] == []
    assert version["adjustments"] == ["Changed at upload: n_jobs=-1 was set to 1 in RandomForestClassifier (the "
                                      "server runs each model in one process and one thread)."]
    auth.login("scientist")
    page = client.get("/models/forest/versions/1").get_data(as_text=True)
    assert '<div class="flash flash-info"><p>Changed at upload: n_jobs=-1 was set to 1' in page
    answer = client.post("/api/v1/models/forest/predict", headers=headers, json={"instances": X[:2].tolist()})
    assert answer.status_code == 200 and answer.get_json()["predictions"] == forest.predict(X[:2]).tolist()
