"""Model hosts through the app: a model that crashes, freezes, hogs memory or reaches for the
network answers 503 / 504 / 422 naming itself, the server keeps answering everyone else, three
failures in the window quarantine it (409 until an admin releases it), and a scoring chunk that
crashes its host is a failed attempt."""

from __future__ import annotations

import hashlib
import io
import time

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from tests.poison import HostileModel
from tests.support import alive, children, upload_model, wait_for_job, wait_gone

FEATURES = ["a", "b", "c"]


@pytest.fixture
def app_config() -> dict:
    return {"TRUSTED_MODULES": "tests.poison", "HOST_TIMEOUT_SECONDS": 2.0, "QUARANTINE_FAILURES": 3,
            "PINNED_MODELS": "kept"}


def fitted(model, seed: int):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(60, len(FEATURES)))
    return model.fit(X, np.where(X[:, 0] > 0, "yes", "no"))


def predict(client, headers, name: str, first: float):
    return client.post(f"/api/v1/models/{name}/predict", headers=headers,
                       json={"instances": [[first, 0.5, -0.5], [0.1, 0.2, 0.3]]})


def still_serving(client, headers) -> None:
    assert client.get("/ping").status_code == 200
    answer = predict(client, headers, "benign", 0.3)
    assert answer.status_code == 200 and len(answer.get_json()["predictions"]) == 2


@pytest.fixture
def models(client, auth):
    headers = auth.bearer("scientist")
    upload_model(client, headers, fitted(LogisticRegression(), 0), "benign")
    upload_model(client, headers, fitted(HostileModel(), 1), "hostile")
    return headers


def host_pid(app, name: str) -> int:
    from viewer.services import hosts

    with app.app_context():  # the most recently used (earlier tests' projects may have left theirs)
        return [h.pid for h in hosts.pool().hosts().values() if h.label.startswith(name)][-1]


def test_a_model_that_crashes_its_host_answers_503_and_the_next_request_gets_a_new_host(app, client, models):
    assert predict(client, models, "hostile", 0.2).status_code == 200
    first = host_pid(app, "hostile")
    answer = predict(client, models, "hostile", 666)
    assert answer.status_code == 503
    body = answer.get_json()
    assert body["error_code"] == "model_host_crashed" and "hostile/1" in body["message"], body
    still_serving(client, models)
    assert wait_gone(first)
    assert predict(client, models, "hostile", 0.2).status_code == 200
    assert host_pid(app, "hostile") != first


def test_a_pinned_models_host_is_never_the_one_stopped_to_make_room(app, client, models):
    from viewer.services import hosts

    upload_model(client, models, fitted(LogisticRegression(C=0.5), 4), "kept")  # VIEWER_PINNED_MODELS=kept
    assert predict(client, models, "kept", 0.1).status_code == 200
    assert predict(client, models, "hostile", 0.1).status_code == 200
    with app.app_context():
        the_pool = hosts.pool()
        assert [k for k, h in the_pool.hosts().items() if h.label == "kept/1" and k in the_pool.pinned]
        assert not [k for k, h in the_pool.hosts().items() if h.label == "hostile/1" and k in the_pool.pinned]


def test_a_frozen_model_answers_504_at_its_deadline_and_its_host_is_stopped(app, client, models):
    assert predict(client, models, "hostile", 0.2).status_code == 200
    pid = host_pid(app, "hostile")
    started = time.monotonic()
    answer = predict(client, models, "hostile", 777)
    assert answer.status_code == 504 and time.monotonic() - started < 10
    assert answer.get_json()["error_code"] == "model_host_timeout"
    assert "hostile/1 took longer than 2 s" in answer.get_json()["message"]
    still_serving(client, models)
    assert wait_gone(pid)


@pytest.mark.parametrize("trigger, words", [(888, "memory"), (555, "Operation not permitted"),
                                           (444, "Operation not permitted|Resource temporarily unavailable")])
def test_a_model_reaching_for_memory_the_network_or_processes_is_refused_with_a_sentence(client, models,
                                                                                        trigger, words):
    import re

    answer = predict(client, models, "hostile", trigger)
    assert answer.status_code == 422, answer.get_json()
    assert re.search(words, answer.get_json()["message"]), answer.get_json()
    still_serving(client, models)
    assert predict(client, models, "hostile", 0.2).status_code == 200  # the same host lives on


def test_three_failures_quarantine_a_model_until_a_project_admin_releases_it(app, client, auth, models):
    for _ in range(3):
        assert predict(client, models, "hostile", 666).status_code == 503
    answer = predict(client, models, "hostile", 0.2)
    assert answer.status_code == 409
    body = answer.get_json()
    assert body["error_code"] == "model_quarantined"
    assert "crashed 3 times" in body["message"] and "release" in body["message"], body
    still_serving(client, models)
    card = client.get("/api/v1/models/hostile/versions/1", headers=models).get_json()
    assert card["quarantine"]["reason"].startswith("its model host failed 3 times")
    v2 = client.get("/v2/models/hostile/ready", headers=models).get_json()
    assert v2["ready"] is False
    assert client.post("/api/v1/models/hostile/versions/1/release", headers=models).status_code == 403
    auth.login("admin")
    page = client.get("/models/").get_data(as_text=True)
    assert "Quarantined" in page and "hostile/1" in page
    assert "crashed 3 times" in client.get("/models/hostile/versions/1").get_data(as_text=True)
    released = client.post("/api/v1/models/hostile/versions/1/release", headers=auth.bearer("admin"))
    assert released.status_code == 200 and released.get_json()["quarantine"] is None
    assert predict(client, models, "hostile", 0.2).status_code == 200


def test_an_upload_that_crashes_the_loader_is_refused_and_nothing_is_stored(client, models):
    from tests.poison import CrashOnLoad

    buffer = io.BytesIO()
    joblib.dump(fitted(CrashOnLoad(), 3), buffer)
    answer = client.post("/api/v1/models", headers=models, data={"file": (io.BytesIO(buffer.getvalue()), "x.joblib"),
                                                                 "name": "crasher"}, content_type="multipart/form-data")
    assert answer.status_code == 422, answer.get_json()
    assert "crashed the process that loaded it" in answer.get_json()["message"]
    assert client.get("/api/v1/models/crasher", headers=models).status_code == 404
    still_serving(client, models)


def test_a_chunk_that_crashes_its_host_is_a_failed_attempt_and_the_job_says_why(app, client, worker, models):
    import pandas as pd

    rows = pd.DataFrame(np.random.default_rng(2).normal(size=(40, 3)), columns=FEATURES)
    rows.loc[0, "a"] = 666
    uploaded = client.post("/api/v1/datasets", headers=models,
                           data={"file": (io.BytesIO(rows.to_csv(index=False).encode()), "crash.csv")},
                           content_type="multipart/form-data")
    assert uploaded.status_code in (201, 202), uploaded.get_json()
    job = client.post("/api/v1/jobs", headers=models,
                      json={"model": "hostile", "dataset": uploaded.get_json()["id"]}).get_json()
    done = wait_for_job(client, models, job["id"], timeout=120)
    assert done["state"] == "error", done
    assert "hostile/1 crashed its host process" in done["error"], done
    card = client.get("/api/v1/models/hostile/versions/1", headers=models).get_json()
    assert card["quarantine"] is not None  # three attempts, three crashes


def test_the_hostile_corpus_is_refused_inside_hosts_and_the_server_keeps_serving(app, client, models, tmp_path):
    """Each live case of the red team's native corpus (each kills a process that uses it without
    our loader, tests/core/test_hostile_native.py) uploaded through the API: refused (422) by the
    loader in its host, nothing stored, and the server answers /ping and a benign model after each;
    no host is left behind for any of them."""
    from tests.core.test_hostile_native import CASES, LIVE_CASES, original, quiet, save
    from viewer.services import hosts

    digests = set()
    for name in LIVE_CASES:
        spec = CASES[name]
        model, _ = original(spec.original)
        with quiet():
            hostile = spec.tamper(model)
        path = save(hostile, tmp_path / f"{name}.joblib", "joblib")
        digests.add(hashlib.sha256(path.read_bytes()).hexdigest())
        answer = client.post("/api/v1/models", headers=models,
                             data={"file": (io.BytesIO(path.read_bytes()), f"{name}.joblib"), "name": "corpus"},
                             content_type="multipart/form-data")
        assert answer.status_code == 422, (name, answer.get_json())
        assert answer.get_json()["error_code"] == "model_unsafe" and spec.reason in answer.get_json()["message"]
        assert "0x" not in answer.get_data(as_text=True)  # no addresses, no raw memory
        still_serving(client, models)
    assert client.get("/api/v1/models/corpus", headers=models).status_code == 404
    with app.app_context():
        kept = hosts.pool().hosts()
        assert not [key for key in kept if key.split("/")[-1] in digests]  # a refused upload's host is gone
        server = hosts.pool().server().process.pid

        def live() -> list[int]:  # killed hosts take a moment to go
            return [pid for pid in children(server) if alive(pid)]

        deadline = time.monotonic() + 5
        while len(live()) != len(kept) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(live()) == sorted(h.pid for h in kept.values())  # and no other host process lives
