"""Job lists are filtered and sorted in SQL and come a page at a time with a 'next' link (the API,
the jobs page and the client); no filter runs after a LIMIT, so no older job vanishes."""

import re
from datetime import timedelta

from viewer.infra.extensions import db
from viewer.infra.records import Job, User, utcnow


def add_jobs(app, model: str, count: int, start_minutes_ago: int) -> list[str]:
    """Finished scoring-job records, one a minute apart, the newest ``start_minutes_ago`` old."""
    with app.app_context():
        user = User.by_name("scientist")
        now = utcnow()
        rows = [Job(kind="score", state="done", params={"model": f"{model}/1", "model_name": model},
                    created_by=user, created_at=now - timedelta(minutes=start_minutes_ago + i))
                for i in range(count)]
        db.session.add_all(rows)
        db.session.commit()
        return [j.id for j in rows]


def test_a_filter_finds_old_jobs_behind_many_newer_ones(app, client, auth):
    add_jobs(app, "busy", 600, start_minutes_ago=0)
    (old,) = add_jobs(app, "rare", 1, start_minutes_ago=10_000)
    headers = auth.bearer("viewer")
    body = client.get("/api/v1/jobs?model=rare", headers=headers).get_json()
    assert [j["id"] for j in body["jobs"]] == [old] and body["next"] is None
    auth.login("viewer")
    page = client.get("/jobs/?model=rare").get_data(as_text=True)
    assert f'href="/jobs/{old}"' in page and "Older jobs" not in page


def test_pages_follow_next_links_newest_first_without_repeats(app, client, auth):
    ids = add_jobs(app, "m", 7, start_minutes_ago=1)  # newest first already
    headers = auth.bearer("viewer")
    seen, url, sizes = [], "/api/v1/jobs?model=m&limit=3", []
    while url:
        body = client.get(url, headers=headers).get_json()
        sizes.append(len(body["jobs"]))
        seen += [j["id"] for j in body["jobs"]]
        url = body["next"]
    assert sizes == [3, 3, 1] and seen == ids
    first = client.get("/api/v1/jobs?model=m", headers=headers).get_json()
    assert [j["id"] for j in first["jobs"]] == ids and first["next"] is None  # the first page as before
    for bad in ("limit=0", "limit=501", "limit=x", "offset=-1", "sort=nonsense"):
        answer = client.get(f"/api/v1/jobs?{bad}", headers=headers)
        assert answer.status_code == 400 and answer.get_json()["error_code"] == "bad_request", bad


def test_the_jobs_page_links_older_jobs(app, client, auth):
    ids = add_jobs(app, "many", 501, start_minutes_ago=1)
    auth.login("viewer")
    page = client.get("/jobs/?model=many").get_data(as_text=True)
    older = re.search(r'<a href="([^"]+)" id="older-jobs"', page).group(1).replace("&amp;", "&")
    assert page.count('<a href="/jobs/') - page.count('<a href="/jobs/?') >= 500 and ids[-1] not in page
    rest = client.get(older).get_data(as_text=True)
    assert f'href="/jobs/{ids[-1]}"' in rest and 'id="older-jobs"' not in rest


def test_the_client_follows_next_links(app, live_server, auth):
    from viewer.client import Client

    ids = add_jobs(app, "paged", 501, start_minutes_ago=1)
    client = Client(live_server, auth.token("viewer"))
    assert [j["id"] for j in client.jobs(model="paged")] == ids


def add_models_and_datasets(app, models: list[str], datasets: list[str]) -> None:
    """Model records named ``models`` and ready datasets named ``datasets``, newest first."""
    from viewer.infra.records import Dataset, RegisteredModel

    with app.app_context():
        user = User.by_name("scientist")
        now = utcnow()
        db.session.add_all([RegisteredModel(name=name, description="", created_by=user) for name in models])
        db.session.add_all([Dataset(name=name, state="ready", uploaded_by=user, created_at=now - timedelta(minutes=i))
                            for i, name in enumerate(datasets)])
        db.session.commit()


def test_models_and_datasets_lists_come_a_page_at_a_time(app, client, auth, live_server):
    from viewer.client import Client

    add_models_and_datasets(app, [f"m{i:03d}" for i in range(7)], [f"d{i}" for i in range(5)])
    headers = auth.bearer("viewer")
    for path, key, expected in (("/api/v1/models?sort=name&limit=3", "models", [f"m{i:03d}" for i in range(7)]),
                                ("/api/v1/datasets?limit=2", "datasets", [f"d{i}" for i in range(5)])):
        names, url = [], path
        while url:
            body = client.get(url, headers=headers).get_json()
            names += [item["name"] for item in body[key]]
            url = body["next"]
        assert names == expected, path
    assert client.get("/api/v1/models?limit=0", headers=headers).status_code == 400
    assert client.get("/api/v1/datasets?offset=-1", headers=headers).status_code == 400
    assert client.get("/api/v1/models", headers=headers).get_json()["next"] is None  # one page, as before
    api = Client(live_server, auth.token("viewer"))
    assert [m["name"] for m in api.models()] == [f"m{i:03d}" for i in range(7)]
    assert [d["name"] for d in api.datasets()] == [f"d{i}" for i in range(5)]


def test_the_models_and_datasets_pages_link_the_next_page(app, client, auth):
    add_models_and_datasets(app, [f"p{i:04d}" for i in range(501)], [f"set{i:04d}" for i in range(501)])
    auth.login("viewer")
    for path, anchor, last in (("/models/", "more-models", "p0500"), ("/datasets/", "older-datasets", "set0500")):
        page = client.get(path).get_data(as_text=True)
        assert last not in page
        following = re.search(rf'<a href="([^"]+)" id="{anchor}"', page).group(1).replace("&amp;", "&")
        rest = client.get(following).get_data(as_text=True)
        assert last in rest and f'id="{anchor}"' not in rest, path


def test_tokens_list_comes_a_page_at_a_time(app, client, auth):
    headers = auth.bearer("viewer")
    for _ in range(2):
        auth.token("viewer")  # three tokens in all
    first = client.get("/api/v1/tokens?limit=2", headers=headers).get_json()
    rest = client.get(first["next"], headers=headers).get_json()
    assert len(first["tokens"]) == 2 and len(rest["tokens"]) == 1 and rest["next"] is None
    assert len({t["id"] for t in first["tokens"] + rest["tokens"]}) == 3


def test_the_account_page_lists_tokens_a_page_at_a_time(app, client, auth):
    from viewer.infra.extensions import db
    from viewer.infra.records import ApiToken, User

    auth.login("viewer")
    with app.app_context():
        user = User.by_name("viewer")
        for i in range(501):
            ApiToken.issue(user, f"script {i:03d}")
        db.session.commit()
    page = client.get("/account/").get_data(as_text=True)
    assert page.count("<code>") - page.count("<code>Authorization") == 500  # newest first: 500 of 501
    following = re.search(r'<a href="([^"]+)" id="more-tokens"', page).group(1).replace("&amp;", "&")
    rest = client.get(following).get_data(as_text=True)
    assert "script 000" in rest and "script 000" not in page and 'id="more-tokens"' not in rest
