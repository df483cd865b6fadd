"""The monitoring page in Chromium: the drift heat map, a cell opening the two distributions,
traffic and realized performance, under the app's CSP with no console error (screenshots)."""

from __future__ import annotations

import io
import time

import joblib
import numpy as np

from tests.browser.ui import UI
from tests.test_monitoring import frame

HOUR = 3600


def _monitored(site) -> None:
    """Model "drifting" with a reference and six past hours of logged predictions (the last three
    with a and region shifted), summarised by the workers' upkeep, as a day of traffic would be."""
    if "drifting" in site.models:
        return
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder
    from sklearn.impute import SimpleImputer

    from viewer.core.predlog import Entry, new_request_id
    from viewer.infra.records import RegisteredModel
    from viewer.services import monitoring, predlog

    X = frame(3_000, 0)
    y = (X["a"] + X["c"] / 20 > 11.5).astype(int)
    model = make_pipeline(ColumnTransformer([("num", SimpleImputer(), ["a", "b", "c"]),
                                             ("cat", OneHotEncoder(handle_unknown="ignore"), ["region"])]),
                          LogisticRegression(max_iter=1000)).fit(X, y)
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    made = site.client.post("/api/v1/models", headers=site.headers, content_type="multipart/form-data",
                            data={"file": (io.BytesIO(buffer.getvalue()), "drifting.joblib"), "name": "drifting"})
    assert made.status_code == 201, made.get_json()
    reference = site.client.post("/api/v1/datasets", headers=site.headers, content_type="multipart/form-data",
                                 data={"file": (io.BytesIO(X.to_csv(index=False).encode()), "reference.csv"),
                                       "allow_duplicate": "true"}).get_json()["id"]
    assert site.client.patch("/api/v1/models/drifting", headers=site.headers,
                             json={"monitor": {"reference": reference}}).status_code == 200
    now = time.time() - time.time() % HOUR
    entries = []
    for hour in range(6):
        rows = frame(1_000, 50 + hour, shift=1.0 if hour >= 3 else 0.0,
                     regions=(0.2, 0.3, 0.5) if hour >= 3 else (0.5, 0.3, 0.2))
        at = now - (6 - hour) * HOUR + 60
        proba = model.predict_proba(rows)
        entries.append(Entry(new_request_id(at), at, 1.5 + 0.1 * hour, "v1", len(rows),
                             {c: rows[c].to_numpy(dtype=object if c == "region" else float) for c in rows.columns},
                             None, np.array([str(v) for v in model.classes_[proba.argmax(1)]], dtype=object), proba))
    with site.app.app_context():
        version = RegisteredModel.query.filter_by(name="drifting").one().latest
        assert predlog.write_entries(version, entries) == 6_000
        monitoring.maintain()
    site.models.add("drifting")


def test_monitoring_heat_map_opens_a_cell_s_distributions(ui: UI, site):
    _monitored(site)
    ui.goto("/models/drifting/monitoring")
    page = ui.page
    heat = page.locator("table.heat")
    rows = {r.locator("th").inner_text(): r for r in heat.locator("tbody tr").all()}
    assert set(rows) == {"a", "b", "c", "region", "predictions"}
    for column in ("a", "region"):
        classes = [c.get_attribute("class") for c in rows[column].locator("td").all()]
        assert not any("cell-drift" in c for c in classes[:3]) and all("cell-drift" in c for c in classes[3:]), \
            (column, classes)
    for column in ("b", "c"):
        assert not any("cell-drift" in c.get_attribute("class") for c in rows[column].locator("td").all())
    ui.screenshot("monitoring-heat-map.png")
    rows["a"].locator("td").nth(4).locator("a").click()
    page.wait_for_url("**cell=*")
    ui.wait_for_plots(1)
    assert "a in the window from" in page.locator("#cell h2").inner_text()
    assert ui.canvases() >= 1
    assert page.locator("table.heat td.chosen").count() == 1
    ui.hover_plots()
    page.locator("#cell").screenshot(path=str(ui.screenshots / "monitoring-cell.png"))
    traffic = page.locator("#traffic tbody tr")
    assert traffic.count() == 6
    assert "3 of 4" not in traffic.first.inner_text() and "2 of 4" in traffic.first.inner_text()
    assert "dataset drift" in traffic.first.inner_text()
