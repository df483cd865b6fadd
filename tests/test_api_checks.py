"""How the API's request checks (viewer.api.spec, the models of viewer.api.inputs) answer what a
review sent them: every refusal a 400 {error_code, message} that names the field, nothing read
twice or into memory, and one document however many threads ask for it first."""

from __future__ import annotations

import threading

import pytest

from viewer.api.spec import build_spec


@pytest.fixture
def headers(auth):
    return auth.bearer("admin")


def refused(response, *words):
    assert response.status_code == 400, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error_code", "message"} and body["error_code"] == "bad_request", body
    for word in words:
        assert word in body["message"], body["message"]
    return body["message"]


@pytest.mark.parametrize("method, path", [("post", "/api/v1/jobs"), ("post", "/api/v1/compare"),
                                          ("patch", "/api/v1/models/m"), ("put", "/api/v1/models/m/aliases/a")])
def test_deeply_nested_json_on_a_checked_route_is_a_400(client, headers, method, path):
    body = "[" * 100_000 + "]" * 100_000
    refused(getattr(client, method)(path, data=body, content_type="application/json", headers=headers),
            "Send a JSON object")


@pytest.mark.parametrize("method, path, body, field", [
    ("patch", "/api/v1/models/m", {"descripton": "typo"}, "'descripton' is not a field"),
    ("post", "/api/v1/jobs", {"model": "m", "dataset": "d", "forec": True}, "'forec' is not a field"),
    ("put", "/api/v1/models/m/aliases/a", {"version": 1, "x": 2}, "'x' is not a field"),
])
def test_an_unknown_field_is_refused_by_name(client, headers, method, path, body, field):
    refused(getattr(client, method)(path, json=body, headers=headers), field)


@pytest.mark.parametrize("query, field", [("sort=name&sort=name", "sort"), ("limit=1&limit=2", "limit")])
def test_a_parameter_given_twice_is_named(client, headers, query, field):
    refused(client.get(f"/api/v1/models?{query}", headers=headers), f"'{field}' is given more than once")


@pytest.mark.parametrize("value", ["+5", "5_0", "1.0", " 5"])
def test_whole_numbers_in_a_query_are_digits(client, headers, value):
    refused(client.get(f"/api/v1/models?limit={value}", headers=headers), "'limit' should be a whole number")


def test_an_upload_names_what_is_missing(client, headers):
    refused(client.post("/api/v1/datasets", data={"name": "x"}, headers=headers), "multipart/form-data")
    message = refused(client.post("/api/v1/models", data={"name": "m"}, content_type="multipart/form-data",
                                  headers=headers), "'file' is required")
    assert message.startswith("The request does not fit this route: ")


def test_the_document_is_built_once_however_many_threads_ask(make_app):
    """spectree's builder changes its own state as it goes: builds at the same time must not see
    each other's (a broken build served 500s until a restart)."""
    apps = [make_app() for _ in range(6)]
    results, errors = [], []

    def build(app):
        try:
            results.append(build_spec(app))
        except Exception as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=build, args=(app,)) for app in apps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and all(result == results[0] for result in results)
    assert build_spec(make_app()) == results[0]


def test_a_streamed_download_is_not_read_before_it_is_sent(app):
    """Checked views' answers pass through untouched: a generator answer is still a generator."""
    from flask import Response

    from viewer.api.spec import _Plugin, api

    taken = []

    def parts():
        for i in range(3):
            taken.append(i)
            yield b"x"

    with app.test_request_context():
        answer, error = _Plugin(api).validate_response(Response(parts()), None, False, False)
        assert error is None and taken == []
        assert b"".join(answer.response) == b"xxx" and taken == [0, 1, 2]
