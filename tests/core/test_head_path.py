"""``HeadPath``: a pipeline's preprocessing computed in numpy gives exactly scikit-learn's output
on messy loan data (missing numbers and categories, unseen categories, an ID column dropped,
make_column_selector), or stands aside so scikit-learn answers."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, StandardScaler

from tests.realistic import FEATURES, TARGET, loan_table
from viewer.core.compiled import _dense
from viewer.core.head_path import SMALL, HeadPath, decode, encode

NUMBERS = ["amount", "income", "age"]
TEXT = ["region", "employment"]


def heads() -> dict[str, ColumnTransformer]:
    return {
        "loan": ColumnTransformer([
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), NUMBERS),
            ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")),
             TEXT)]),
        "selector": ColumnTransformer([
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
             make_column_selector(dtype_include="number")),
            ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False),
             make_column_selector(dtype_include=["object", "string"]))]),
        "ordinal-passthrough": ColumnTransformer([
            ("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1), TEXT)],
            remainder="passthrough"),
        "constant-text-and-positions": ColumnTransformer([
            ("cat", make_pipeline(SimpleImputer(strategy="constant", fill_value="none"),
                                  OneHotEncoder(handle_unknown="ignore")), [3, 4]),
            ("num", StandardScaler(with_mean=False), [2])]),
        "one-hot-on-numbers": ColumnTransformer([
            ("age", OneHotEncoder(handle_unknown="ignore"), ["age"]),
            ("num", SimpleImputer(strategy="mean"), ["amount", "income"])]),
    }


@pytest.fixture(scope="module")
def loans():
    frame = loan_table(1500, seed=11)
    features = [c for c in FEATURES if c not in ("opened", "loan_id")]
    fitted = {name: make_pipeline(ct).fit(frame[features].iloc[:1000], frame[TARGET].iloc[:1000])
              for name, ct in heads().items()}
    test = frame[features].iloc[1000:].copy()
    test.loc[test.index[:40:3], "region"] = "atlantis"          # unseen categories
    test.loc[test.index[1:40:4], "employment"] = np.nan          # missing, as NaN instead of None
    test.loc[test.index[2:40:5], "age"] = 200.0                  # an age never seen (one-hot on numbers)
    return fitted, test


@pytest.mark.parametrize("name", list(heads()))
def test_identical_to_scikit_learn_on_messy_rows(loans, name):
    fitted, test = loans
    path = HeadPath.build(fitted[name])
    assert path is not None, f"{name}: no path"
    for rows in (test, test.iloc[:SMALL], test.iloc[3:4]):  # converted at once and column by column
        ours = path.transform(rows)
        theirs = _dense(fitted[name].transform(rows))
        assert ours is not None
        assert ours.dtype == np.float64 and ours.shape == theirs.shape
        assert np.array_equal(ours, theirs, equal_nan=True)


@pytest.mark.parametrize("name", list(heads()))
def test_an_exported_head_is_rebuilt_from_plain_data_with_the_same_output(loans, name):
    """What a model host sends the app: a description of the fitted steps in JSON (categories with
    NaN, numbers, statistics) and the head's output on its probe; the rebuilt path transforms
    messy rows exactly as scikit-learn does."""
    fitted, test = loans
    path = HeadPath.build(fitted[name])
    sent = json.loads(json.dumps({"described": path.export(), "check": path.expected()}, allow_nan=False))
    rebuilt = HeadPath.from_export(sent["described"], sent["check"])
    assert rebuilt is not None
    for rows in (test.iloc[:SMALL], test.iloc[3:4]):
        assert np.array_equal(rebuilt.transform(rows), _dense(fitted[name].transform(rows)), equal_nan=True)


def test_a_description_that_does_not_give_the_hosts_output_is_not_used(loans):
    fitted, _test = loans
    path = HeadPath.build(fitted["loan"])
    check = json.loads(json.dumps(path.expected()))
    described = json.loads(json.dumps(path.export()))
    mean = described["ct"]["parts"][0]["step"]["steps"][0]["statistics"]  # the imputer's means
    mean["values"][0] += 1.0
    assert HeadPath.from_export(described, check) is None
    described = json.loads(json.dumps(path.export()))
    described["ct"]["parts"][1]["step"]["steps"][1]["step"] = "target_encoder"  # a step it does not know
    assert HeadPath.from_export(described, check) is None
    assert HeadPath.from_export({"ct": {}}, check) is None


def test_a_large_vocabulary_is_probed_on_a_sample_and_checked_by_digest():
    """A one-hot column of 3,000 postcodes: the probe takes an even sample of them, and the host
    sends the output's digest, not the output (which grows with the square of the categories)."""
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"zip": rng.integers(10000, 13000, 6000).astype(str).astype(object),
                          "income": rng.normal(3000, 500, 6000)})
    head = make_pipeline(ColumnTransformer([("zip", OneHotEncoder(handle_unknown="ignore"), ["zip"]),
                                            ("income", StandardScaler(), ["income"])])).fit(frame)
    path = HeadPath.build(head)
    assert path is not None and len(path.probe()) < 300
    sent = json.dumps({"described": path.export(), "check": path.expected()}, allow_nan=False)
    assert len(sent) < 200_000
    rebuilt = HeadPath.from_export(json.loads(sent)["described"], json.loads(sent)["check"])
    rows = frame.iloc[:10]
    assert np.array_equal(rebuilt.transform(rows), _dense(head.transform(rows)))


def test_arrays_travel_as_json_with_their_kind_and_missing_values():
    text = np.array(["north", np.nan, "south"], dtype=object)
    for values in (text, np.array([1.5, np.nan, np.inf, -np.inf, -0.0]), np.arange(3), np.array([True, False])):
        back = decode(json.loads(json.dumps(encode(values), allow_nan=False)))
        assert back.dtype == values.dtype and back.shape == values.shape
        assert all(a == b or (a != a and b != b) for a, b in zip(back.tolist(), values.tolist()))
        assert [type(v) for v in back.tolist()] == [type(v) for v in values.tolist()]


def test_str_columns_read_like_object_columns(loans):
    fitted, test = loans
    as_str = test.astype({c: "str" for c in TEXT})
    path = HeadPath.build(fitted["loan"])
    assert np.array_equal(path.transform(as_str), _dense(fitted["loan"].transform(as_str)), equal_nan=True)


def test_steps_it_does_not_know_keep_scikit_learn(loans):
    _, test = loans
    frame = loan_table(300, seed=3)
    custom = ColumnTransformer([("num", FunctionTransformer(np.log1p), ["amount"])])
    infrequent = ColumnTransformer([("cat", OneHotEncoder(min_frequency=50, handle_unknown="infrequent_if_exist"),
                                     TEXT)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # log1p of missing amounts: not what this test is about
        for ct in (custom, infrequent):
            assert HeadPath.build(make_pipeline(ct).fit(frame)) is None
    assert HeadPath.build(make_pipeline(StandardScaler()).fit(frame[NUMBERS])) is None  # no column names


def test_input_it_was_not_built_for_goes_to_scikit_learn(loans):
    fitted, test = loans
    strict = make_pipeline(ColumnTransformer([("cat", OneHotEncoder(), ["employment"])]))
    strict.fit(loan_table(300, seed=3))
    path = HeadPath.build(strict)
    assert path is not None
    unseen = pd.DataFrame({"employment": ["astronaut"]})
    assert path.transform(unseen) is None  # scikit-learn's own error is the answer
    with pytest.raises(ValueError, match="unknown categor"):
        strict.transform(unseen)
    loan = HeadPath.build(fitted["loan"])
    text_in_numbers = test.iloc[:2].astype({"amount": object})
    text_in_numbers.loc[text_in_numbers.index[0], "amount"] = "12 000"
    assert loan.transform(text_in_numbers) is None
    assert loan.transform(test.drop(columns=["income"])) is None
    assert loan.transform(test.to_numpy()) is None


def test_a_predictor_answers_a_column_transformer_pipeline_through_the_path_with_the_same_answers(loans):
    """A loan pipeline ending in LogisticRegression (not compiled): the Predictor computes its
    preprocessing directly and gives the pipeline's own labels and probabilities, and its errors
    and warnings where the pipeline gives them."""
    from sklearn.linear_model import LogisticRegression

    from viewer.core.introspect import describe_model
    from viewer.core.payload import Table
    from viewer.core.predictor import Predictor

    frame = loan_table(1200, seed=2)
    model = make_pipeline(heads()["loan"], LogisticRegression(max_iter=500))
    model.fit(frame[FEATURES], frame[TARGET])
    predictor = Predictor(model, describe_model(model).to_dict())
    assert predictor.head is not None
    _, test = loans
    rows = [[None if isinstance(v, float) and np.isnan(v) else v for v in row] for row in test[FEATURES].to_numpy().tolist()]
    report: list = []
    X = predictor.prepare(Table(columns=FEATURES, rows=rows), report)
    assert np.array_equal(predictor.predict(X), model.predict(X))
    assert np.array_equal(predictor.predict_proba(X), model.predict_proba(X))
    assert any("atlantis" in json.dumps(w) for w in report)  # the unknown region is still reported


def test_input_scikit_learn_reads_otherwise_is_left_to_it(loans):
    """What a second look found: values whose meaning in scikit-learn depends on more than the
    value (None, pd.NA), precision it keeps (float32), values it refuses (infinity) and columns
    of another kind (numbers for a text encoder, nullable integers) are not computed directly."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    fitted, test = loans
    loan = HeadPath.build(fitted["loan"])
    rows = test.iloc[:5].copy()
    cases = {
        "None in a text column": rows.assign(region=pd.Series([None] * 5, dtype=object, index=rows.index)),
        "pd.NA in a text column": rows.assign(region=pd.array([pd.NA] * 5, dtype="string")),
        "float32 numbers": rows.astype({"amount": np.float32}),
        "infinite amount": rows.assign(amount=np.inf),
        "nullable integers with NA": rows.assign(age=pd.array([None] * 5, dtype="Int64")),
        "numbers in a text column": rows.assign(region=np.arange(5.0)),
    }
    for name, frame in cases.items():
        assert loan.transform(frame) is None, name
    # a float32 NaN is NaN to scikit-learn, and here
    nan32 = rows.assign(region=pd.Series([np.float32("nan")] * 5, dtype=object, index=rows.index))
    assert np.array_equal(loan.transform(nan32), _dense(fitted["loan"].transform(nan32)))

    # Through a Predictor, a model that takes infinity itself: the preprocessing's refusal stands.
    from viewer.core.introspect import describe_model
    from viewer.core.payload import PayloadError
    from viewer.core.predictor import Predictor

    frame = loan_table(800, seed=9)
    model = make_pipeline(heads()["loan"], HistGradientBoostingClassifier(max_iter=10))
    model.fit(frame[FEATURES], frame[TARGET])
    predictor = Predictor(model, describe_model(model).to_dict())
    assert predictor.head is not None
    with pytest.raises(PayloadError, match="infinite"):
        predictor.predict_proba(cases["infinite amount"])
