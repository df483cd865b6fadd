"""Drift sketches and figures: mergeable, stored without pickles, and within the stated binning
error of the exact values computed on the rows (scipy, scikit-learn)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance
from sklearn.metrics import roc_auc_score

from viewer.core.drift import sketch as sk
from viewer.core.drift import stats as ds


def numeric(values, grid=None):
    values = np.asarray(values, dtype=float)
    return sk.NumericSketch(grid or sk.Grid.for_values(values)).add(values)


@pytest.mark.parametrize("shift, spread, offset", [(0.0, 1.0, 0.0), (0.3, 1.0, 0.0), (0.0, 1.6, 0.0),
                                                   (1.0, 1.0, 1e9), (0.05, 1.0, -5e4)])
def test_wasserstein_over_std_is_within_the_stated_error_of_scipy(shift, spread, offset):
    rng = np.random.default_rng(1)
    ref = offset + rng.normal(0, 1, 20_000)
    cur = offset + rng.normal(shift, spread, 5_000)
    grid = sk.Grid.for_values(ref)
    ours = ds.wasserstein(numeric(ref, grid), numeric(cur, grid))
    exact = stats.wasserstein_distance(ref, cur) / np.std(ref)
    assert abs(ours - exact) <= sk.STEP / 2 * 1.2, (ours, exact)


def test_a_skewed_column_with_outliers_beyond_the_grid():
    rng = np.random.default_rng(2)
    ref = rng.lognormal(10, 1.5, 20_000)  # incomes: a long right tail
    cur = np.concatenate([rng.lognormal(10.2, 1.5, 5_000), [1e15, 2e15]])  # two values beyond the grid
    grid = sk.Grid.for_values(ref)
    cur_sketch = numeric(cur, grid)
    assert cur_sketch.over[0] == 2 and cur_sketch.over[1] == 3e15
    ours = ds.wasserstein(numeric(ref, grid), cur_sketch)
    exact = stats.wasserstein_distance(ref, cur) / np.std(ref)
    assert ours == pytest.approx(exact, rel=0.01)


def test_missing_and_infinite_values_are_counted_not_binned():
    sketch = numeric([1.0, np.nan, np.inf, -np.inf, 2.0, 3.0])
    assert sketch.missing == 3 and sketch.n == 3 and sketch.mean == 2.0
    assert sketch.counts.sum() + sketch.under[0] + sketch.over[0] == 3


def test_sketches_merge_exactly_and_round_trip_without_pickles():
    rng = np.random.default_rng(3)
    a, b = rng.normal(5, 2, 3_000), rng.normal(6, 3, 1_000)
    grid = sk.Grid.for_values(a)
    merged = numeric(a, grid).merge(numeric(b, grid))
    whole = numeric(np.concatenate([a, b]), grid)
    np.testing.assert_array_equal(merged.counts, whole.counts)
    assert merged.n == whole.n and merged.mean == pytest.approx(whole.mean, rel=1e-12)
    assert merged.std == pytest.approx(np.std(np.concatenate([a, b])), rel=1e-12)
    cats = sk.CategoricalSketch().add(["a", "b", None, "a", 3.0], known=frozenset({"a", "b"}))
    assert cats.counts == {"a": 2, "b": 1, "3": 1} and cats.missing == 1 and cats.unknown == 1
    scores = sk.ScoreSketch().add(rng.random(100)).add(rng.random(50), rng.random(50) > 0.5)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **merged.to_arrays("x"), **cats.to_arrays("c"), **scores.to_arrays("s"))
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as stored:
        arrays = dict(stored)
    again = sk.NumericSketch.from_arrays(arrays, "x")
    np.testing.assert_array_equal(again.counts, merged.counts)
    assert (again.n, again.mean, again.m2, again.low, again.high) == (merged.n, merged.mean, merged.m2, merged.low,
                                                                      merged.high)
    assert sk.CategoricalSketch.from_arrays(arrays, "c") == cats
    back = sk.ScoreSketch.from_arrays(arrays, "s")
    np.testing.assert_array_equal(back.positives, scores.positives)


def test_rare_categories_beyond_the_cap_are_counted_together():
    values = [f"id{i}" for i in range(sk.MAX_CATEGORIES + 500)] + ["common"] * 10
    sketch = sk.CategoricalSketch().add(values)
    assert len(sketch.counts) == sk.MAX_CATEGORIES and sketch.counts["common"] == 10
    assert sketch.n == len(values)


def test_jensen_shannon_and_chi_square_equal_scipy_on_counts():
    rng = np.random.default_rng(4)
    ref = rng.choice(["a", "b", "c"], 5_000, p=[0.5, 0.3, 0.2])
    cur = rng.choice(["a", "b", "c"], 2_000, p=[0.4, 0.3, 0.3])
    r, c = sk.CategoricalSketch().add(ref), sk.CategoricalSketch().add(cur)
    ref_counts = np.array([(ref == k).sum() for k in "abc"], float)
    cur_counts = np.array([(cur == k).sum() for k in "abc"], float)
    assert ds.jensen_shannon(r, c) == pytest.approx(
        distance.jensenshannon(ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum()), abs=1e-12)
    expected = ref_counts / ref_counts.sum() * cur_counts.sum()
    assert ds.chi_square_p(r, c) == pytest.approx(stats.chisquare(cur_counts, expected).pvalue, rel=1e-9)
    assert ds.chi_square_p(r, sk.CategoricalSketch().add(["d"] * 10 + ["a"] * 10)) == 0.0  # unseen category


def test_psi_is_close_to_psi_on_exact_reference_deciles():
    rng = np.random.default_rng(5)
    ref, cur = rng.normal(0, 1, 50_000), rng.normal(0.4, 1.2, 10_000)
    grid = sk.Grid.for_values(ref)
    edges = np.quantile(ref, np.arange(1, 10) / 10)
    shares = [np.maximum(np.histogram(x, np.concatenate([[-np.inf], edges, [np.inf]]))[0] / len(x), ds.PSI_FLOOR)
              for x in (ref, cur)]
    exact = float(np.sum((shares[1] - shares[0]) * np.log(shares[1] / shares[0])))
    assert ds.psi(numeric(ref, grid), numeric(cur, grid)) == pytest.approx(exact, abs=0.005)
    assert ds.psi(numeric(ref, grid), numeric(rng.normal(0, 1, 10_000), grid)) < 0.01


@pytest.mark.parametrize("kind", ["spread", "confident", "ties"])
def test_roc_auc_from_score_bins_is_within_1e3_of_scikit_learn(kind):
    rng = np.random.default_rng(6)
    y = rng.random(20_000) < 0.3
    if kind == "spread":
        p = 1 / (1 + np.exp(-(rng.normal(0, 1.5, len(y)) + 1.2 * y)))
    elif kind == "confident":  # boosted trees: probabilities within 1e-6 of 0 and 1
        p = 1 / (1 + np.exp(-(rng.normal(0, 6, len(y)) + 8 * y)))
    else:  # a forest of few trees: many exact ties, 0 and 1 included
        p = np.round(np.clip(rng.normal(0.3 + 0.3 * y, 0.25), 0, 1), 1)
    scores = sk.ScoreSketch().add(p, y)
    assert ds.roc_auc(scores) == pytest.approx(roc_auc_score(y, p), abs=1e-3)


def test_latency_quantiles_are_within_one_percent():
    rng = np.random.default_rng(7)
    ms = rng.lognormal(0, 0.6, 10_000)
    counts = np.bincount(sk.latency_index(ms), minlength=sk.LATENCY_BINS)
    for q in (0.5, 0.99):
        assert sk.latency_quantile(counts, q) == pytest.approx(np.quantile(ms, q), rel=0.01)
