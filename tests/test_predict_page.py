"""The prediction page: a form from the schema, what-if, CSV rows, errors beside the field."""

import re

import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from tests.support import upload_model


def register(client, auth, model, name):
    return upload_model(client, auth.bearer("scientist"), model, name)


@pytest.fixture
def churn(client, auth):
    frame = pd.DataFrame({"age": [22, 35, 47, 51, 62, 33] * 5, "plan": ["free", "pro", "team"] * 10})
    model = make_pipeline(ColumnTransformer([("num", StandardScaler(), ["age"]),
                                             ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan"])]),
                          LogisticRegression()).fit(frame, [0, 1, 1, 0, 1, 0] * 5)
    register(client, auth, model, "churn")
    return model


def post_form(client, auth, path, **fields):
    return client.post(path, data={"csrf_token": auth.csrf_token(path), **fields})


def test_form_is_built_from_the_schema(client, auth, churn):
    auth.login("viewer")
    page = client.get("/models/churn/versions/1/predict").get_data(as_text=True)
    assert 'name="f:age"' in page and 'type="number"' in page
    assert re.search(r'<select name="f:plan">.*<option value="free".*<option value="pro".*<option value="team"', page, re.S)
    assert re.search(r'name="f:age" value="4\d\.\d+"', page)  # prefilled with the scaler's mean


def test_predict_shows_probabilities_and_what_if(client, auth, churn):
    auth.login("viewer")
    path = "/models/churn/versions/1/predict"
    first = post_form(client, auth, path, mode="fields", **{"f:age": "30", "f:plan": "free"})
    assert first.status_code == 200
    text = first.get_data(as_text=True)
    expected = churn.predict(pd.DataFrame({"age": [30], "plan": ["free"]}))[0]
    assert f'<p class="big" id="prediction">{expected}</p>' in text
    assert 'data-bokeh-target="proba-plot"' in text and "/assets/bokeh/" in text
    second = post_form(client, auth, path, mode="fields", **{"f:age": "60", "f:plan": "team"}).get_data(as_text=True)
    assert "Before: " in second


def test_bad_field_is_shown_beside_it(client, auth, churn):
    auth.login("viewer")
    response = post_form(client, auth, "/models/churn/versions/1/predict", mode="fields",
                         **{"f:age": "old", "f:plan": "free"})
    assert response.status_code == 400
    assert re.search(r'name="f:age" value="old" class="invalid">\s*<span class="field-error">Enter a number.', 
                     response.get_data(as_text=True))


def test_csv_rows_and_unnamed_features(client, auth):
    X, y = load_iris(return_X_y=True)
    register(client, auth, LogisticRegression(max_iter=500).fit(X, y), "plain")
    register(client, auth, Ridge().fit(X, y), "reg")
    auth.login("viewer")
    page = client.get("/models/plain/versions/1/predict").get_data(as_text=True)
    assert 'name="row"' in page and "4 per row" in page
    one = post_form(client, auth, "/models/plain/versions/1/predict", mode="fields", row="5.1, 3.5, 1.4, 0.2")
    assert '<p class="big" id="prediction">0</p>' in one.get_data(as_text=True)
    csv = post_form(client, auth, "/models/reg/versions/1/predict", mode="csv",
                    csv="a,b,c,d\n5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n")
    text = csv.get_data(as_text=True)
    assert csv.status_code == 200 and text.count("<tr><td>") == 2
    bad = post_form(client, auth, "/models/reg/versions/1/predict", mode="csv", csv="a,b\n1,2\n")
    assert bad.status_code == 400 and "takes 4 columns" in bad.get_data(as_text=True)


def test_bokeh_is_served_locally_and_versioned(client, auth):
    import bokeh

    response = client.get(f"/assets/bokeh/{bokeh.__version__}/bokeh.min.js")
    assert response.status_code == 200 and b"Bokeh" in response.data[:5000]
    assert "immutable" in response.headers["Cache-Control"]
    response.close()
    assert client.get("/assets/bokeh/0.0.1/bokeh.min.js").status_code == 404
    assert client.get(f"/assets/bokeh/{bokeh.__version__}/..%2Fsecret.min.js").status_code == 404
