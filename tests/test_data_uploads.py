"""Dataset uploads through the page and the API: reading options, duplicates, identifier columns,
distributions and the "mostly numbers" warning on the dataset page."""

from __future__ import annotations

import io
import re
from html import unescape

from tests.test_data_dialects import european_csv, write_workbook


def upload_page(client, auth, content: bytes, filename: str = "data.csv", **fields):
    token = auth.csrf_token("/datasets/upload")
    return client.post("/datasets/upload", content_type="multipart/form-data",
                       data={"csrf_token": token, "file": (io.BytesIO(content), filename), **fields})


def upload_api(client, auth, content: bytes, filename: str = "data.csv", **fields):
    return client.post("/api/v1/datasets", headers=auth.bearer("scientist"), content_type="multipart/form-data",
                       data={"file": (io.BytesIO(content), filename), **fields})


def test_a_european_csv_through_the_api_is_numbers_dates_and_an_id(client, auth, tmp_path):
    european_csv(tmp_path / "eu.csv", n=500)
    response = upload_api(client, auth, (tmp_path / "eu.csv").read_bytes(), "eu.csv")
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    types = {c["name"]: c["dtype"] for c in body["columns"]}
    assert types["Betrag €"] == "double" and types["Datum"] == "date32[day]" and types["Aktiv"] == "bool"
    assert body["source"]["decimal"] == "," and body["source"]["encoding"] == "cp1252"
    assert body["id_columns"] == ["Kunden-ID"] and body["warnings"] == []


def test_api_overrides_and_a_bad_override_names_the_choices(client, auth, tmp_path):
    european_csv(tmp_path / "eu.csv", n=100)
    data = (tmp_path / "eu.csv").read_bytes()
    wrong = upload_api(client, auth, data, "eu.csv", decimal=".", thousands="none")
    assert wrong.status_code == 201
    assert {w["column"] for w in wrong.get_json()["warnings"]} == {"Betrag €", "Zins"}
    bad = upload_api(client, auth, data, "eu.csv", delimiter="x", allow_duplicate="true")
    assert bad.status_code == 400
    assert "choose one of comma, semicolon, tab or pipe" in bad.get_json()["message"]


def test_the_same_bytes_again_are_a_409_naming_the_existing_dataset_unless_allowed(client, auth):
    data = b"a,b\n1,2\n3,4\n"
    first = upload_api(client, auth, data, "one.csv").get_json()
    again = upload_api(client, auth, data, "copy.csv")
    assert again.status_code == 409
    body = again.get_json()
    assert body["error_code"] == "duplicate_dataset" and body["existing"] == first["id"]
    assert "This file is already dataset one.csv" in body["message"] and "allow_duplicate" in body["message"]
    assert body["existing_url"].endswith(f"/api/v1/datasets/{first['id']}")
    assert upload_api(client, auth, data, "copy.csv", allow_duplicate="true").status_code == 201


def test_the_upload_page_offers_the_existing_dataset_and_uploads_anyway(client, auth):
    auth.login("scientist")
    data = b"a;b\n1,5;2\n3,25;4\n"
    first = upload_page(client, auth, data, "first.csv", decimal=",")
    assert first.status_code == 302
    existing = first.headers["Location"].rsplit("/", 1)[1]
    again = upload_page(client, auth, data, "second.csv")
    html = unescape(again.get_data(as_text=True))
    assert again.status_code == 409
    assert re.search(rf'This file is already dataset <a href="/datasets/{existing}">first.csv</a>', html)
    anyway = upload_page(client, auth, data, "second.csv", allow_duplicate="y")
    assert anyway.status_code == 302 and not anyway.headers["Location"].endswith(existing)


def test_identifier_flags_flip_through_the_api_and_the_page(app, client, auth):
    rows = "\n".join(f"{1000 + i},{i % 4},c{i}" for i in range(60))
    body = upload_api(client, auth, ("loan_id,grade,code\n" + rows + "\n").encode(), "loans.csv").get_json()
    assert body["id_columns"] == ["loan_id", "code"]
    flipped = client.post(f"/api/v1/datasets/{body['id']}/identifiers", headers=auth.bearer("scientist"),
                          json={"column": "code", "identifier": False})
    assert flipped.status_code == 200 and flipped.get_json()["id_columns"] == ["loan_id"]
    unknown = client.post(f"/api/v1/datasets/{body['id']}/identifiers", headers=auth.bearer("scientist"),
                          json={"column": "nope", "identifier": True})
    assert unknown.status_code == 404 and "no column 'nope'" in unknown.get_json()["message"]
    auth.login("scientist")
    page = f"/datasets/{body['id']}"
    token = auth.csrf_token(page)
    response = client.post(f"{page}/identifier", data={"csrf_token": token, "column": "grade", "identifier": "1"})
    assert response.status_code == 302
    with app.app_context():
        from viewer.infra.records import Dataset
        from viewer.services.datasets import id_columns
        from viewer.infra.extensions import db
        assert id_columns(db.session.get(Dataset, body["id"])) == ["loan_id", "grade"]
    html = unescape(client.get(page).get_data(as_text=True))
    assert html.count('class="kind kind-col-identifier"') == 2 and "identifies rows" in html


def test_the_dataset_page_shows_distributions_missing_shares_and_the_warning(client, auth, tmp_path):
    european_csv(tmp_path / "bad.csv", n=400, bad={5: "n/v"})
    auth.login("scientist")
    response = upload_page(client, auth, (tmp_path / "bad.csv").read_bytes(), "bad.csv")
    html = unescape(client.get(response.headers["Location"]).get_data(as_text=True))
    assert "Column Betrag €:</strong> Column 'Betrag €' is stored as text although 391 of its 392" in html
    assert "'n/v'" in html
    assert html.count("data-bokeh-target") >= 4 and "/assets/bokeh/" in html
    assert re.search(r'<td class="num">6 <span class="hint">\(1\.5 %\)</span>', html)   # Datum: 6 missing
    assert "decimal <code>,</code> · thousands <code>.</code>" in html


def test_an_xlsx_upload_through_the_page(client, auth, tmp_path):
    write_workbook(tmp_path / "loans.xlsx", sheets=("Jan", "Feb"))
    auth.login("scientist")
    response = upload_page(client, auth, (tmp_path / "loans.xlsx").read_bytes(), "loans.xlsx", sheet="Feb")
    assert response.status_code == 302, unescape(response.get_data(as_text=True)).split("field-error")[1][:300]
    html = unescape(client.get(response.headers["Location"]).get_data(as_text=True))
    assert "<th>Sheet</th><td>Feb</td>" in html and "XLSX" in html
