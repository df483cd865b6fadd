"""Mergeable summaries of a column over a window: what the monitoring pages draw from.

Every sketch is exact in what it counts and can be merged (two windows' sum) and stored as a few
numpy arrays (``to_arrays`` / ``from_arrays``; ``numpy.savez`` without pickles). None keeps rows.

- ``Grid``: a fixed, fine grid for one numeric column, uniform in ``asinh((x - center) / scale)``
  (``STEP`` wide): bins are ``STEP * scale`` wide near the center and grow with distance, so
  the same ``BINS`` bins cover values from ``center +- 700 * scale`` at about the same relative
  precision. Values beyond go to two overflow bins that keep their count and sum. The grid is
  fixed once per model and column (``Grid.for_values``), so any reference can be binned onto it
  later and compared with windows already summarised.
- ``NumericSketch``: counts per grid bin, overflow bins, missing values (NaN and infinities),
  and exact moments (count, mean, sum of squared deviations, merged by Chan's formula).
- ``CategoricalSketch``: counts per category (text), missing values.
- ``ScoreSketch``: a binary classifier's positive-class probabilities on ``SCORE_BINS`` bins
  uniform in the logit, plus exact bins for 0 and 1, optionally split by label (ROC AUC and
  calibration from the joined labels).
- ``LatencySketch``: request latencies on a log grid (1 % wide bins) for p50/p99.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

STEP = 0.005     # bin width in asinh units: 0.5 % of the scale near the center
HALF_SPAN = 7.25  # asinh(7.25 units) ~ 700 scales from the center
BINS = int(round(2 * HALF_SPAN / STEP))  # 2,900
MAX_CATEGORIES = 2_000  # kept per column and window; rarer ones are counted under OTHER
OTHER = "\x00other"
SCORE_BINS = 16_384
SCORE_LOGIT = 16.0  # logits within +-16 (probabilities 1e-7 .. 1 - 1e-7) get bins; beyond, the end bins
LATENCY_FACTOR = 1.01
LATENCY_MIN_MS = 0.01
LATENCY_BINS = int(math.ceil(math.log(1e7) / math.log(LATENCY_FACTOR)))  # 0.01 ms .. 100 s


@dataclass(frozen=True)
class Grid:
    center: float
    scale: float

    @classmethod
    def for_values(cls, values: np.ndarray) -> "Grid":
        """A grid centred on the values' median with their spread as scale (a robust one: the
        interquartile range / 1.349, else the standard deviation, else 1)."""
        finite = values[np.isfinite(values)]
        if not len(finite):
            return cls(0.0, 1.0)
        center = float(np.median(finite))
        q1, q3 = np.percentile(finite, [25, 75])
        scale = float((q3 - q1) / 1.349) or float(np.std(finite)) or max(abs(center) * 1e-3, 1e-9)
        return cls(center, scale)

    def index(self, values: np.ndarray) -> np.ndarray:
        """Each finite value's bin: -1 below the grid, BINS above."""
        u = np.arcsinh((values - self.center) / self.scale)
        return np.clip(np.floor((u + HALF_SPAN) / STEP), -1, BINS).astype(np.int64)

    def edges(self) -> np.ndarray:
        """The BINS + 1 bin edges in the column's units."""
        return self.center + self.scale * np.sinh(-HALF_SPAN + STEP * np.arange(BINS + 1))

    def to_list(self) -> list[float]:
        return [self.center, self.scale]


@dataclass
class NumericSketch:
    grid: Grid
    counts: np.ndarray = field(default_factory=lambda: np.zeros(BINS, dtype=np.int64))
    under: np.ndarray = field(default_factory=lambda: np.zeros(2))  # count, sum
    over: np.ndarray = field(default_factory=lambda: np.zeros(2))
    missing: int = 0
    n: int = 0          # finite values
    mean: float = 0.0
    m2: float = 0.0     # sum of squared deviations from the mean
    low: float = math.inf
    high: float = -math.inf

    def add(self, values: np.ndarray) -> "NumericSketch":
        values = np.asarray(values, dtype=np.float64)
        finite = np.isfinite(values)
        self.missing += int(len(values) - finite.sum())
        values = values[finite]
        if not len(values):
            return self
        index = self.grid.index(values)
        inside = (index >= 0) & (index < BINS)
        self.counts += np.bincount(index[inside], minlength=BINS)
        for bucket, where in ((self.under, index < 0), (self.over, index >= BINS)):
            if where.any():
                bucket += (where.sum(), values[where].sum())
        self._moments(len(values), float(values.mean()), float(((values - values.mean()) ** 2).sum()))
        self.low, self.high = min(self.low, float(values.min())), max(self.high, float(values.max()))
        return self

    def _moments(self, n: int, mean: float, m2: float) -> None:
        if not n:
            return
        total = self.n + n
        delta = mean - self.mean
        self.m2 += m2 + delta * delta * self.n * n / total
        self.mean += delta * n / total
        self.n = total

    def merge(self, other: "NumericSketch") -> "NumericSketch":
        self.counts += other.counts
        self.under += other.under
        self.over += other.over
        self.missing += other.missing
        self._moments(other.n, other.mean, other.m2)
        self.low, self.high = min(self.low, other.low), max(self.high, other.high)
        return self

    @property
    def std(self) -> float:
        """The population standard deviation (numpy's default, as Evidently normalises)."""
        return math.sqrt(self.m2 / self.n) if self.n else 0.0

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        """The sketch as weighted points: each bin's midpoint, and each overflow bin's mean."""
        edges = self.grid.edges()
        middle = (edges[:-1] + edges[1:]) / 2
        keep = self.counts > 0
        values, weights = [middle[keep]], [self.counts[keep].astype(np.float64)]
        for count, total in (self.under, self.over):
            if count:
                values.append(np.array([total / count]))
                weights.append(np.array([count]))
        return np.concatenate(values), np.concatenate(weights)

    def cumulative(self) -> np.ndarray:
        """Counts at or below each inner edge (BINS + 1 values, the under bin included)."""
        return np.concatenate([[self.under[0]], self.under[0] + np.cumsum(self.counts)])

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        nonzero = np.flatnonzero(self.counts)
        return {f"{prefix}.grid": np.array(self.grid.to_list()), f"{prefix}.bins": nonzero.astype(np.int32),
                f"{prefix}.counts": self.counts[nonzero],
                f"{prefix}.stats": np.array([*self.under, *self.over, self.missing, self.n, self.mean, self.m2,
                                             self.low, self.high])}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> "NumericSketch":
        sketch = cls(Grid(*arrays[f"{prefix}.grid"].tolist()))
        sketch.counts[arrays[f"{prefix}.bins"]] = arrays[f"{prefix}.counts"]
        s = arrays[f"{prefix}.stats"]
        sketch.under, sketch.over = s[0:2].copy(), s[2:4].copy()
        sketch.missing, sketch.n = int(s[4]), int(s[5])
        sketch.mean, sketch.m2, sketch.low, sketch.high = float(s[6]), float(s[7]), float(s[8]), float(s[9])
        return sketch


def label_text(value: Any) -> str:
    """A category or class as text, the one form the log, sketches and labels compare: 3.0 and 3
    are one category typed two ways."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass
class CategoricalSketch:
    counts: dict[str, int] = field(default_factory=dict)
    missing: int = 0
    unknown: int = 0  # values outside the categories the model learnt (``known``)

    def add(self, values: Any, known: frozenset[str] | None = None) -> "CategoricalSketch":
        array = np.asarray(values, dtype=object)
        missing = np.array([v is None or (isinstance(v, float) and v != v) for v in array], dtype=bool)
        self.missing += int(missing.sum())
        present = array[~missing]
        if len(present):
            labels, counts = np.unique(np.array([label_text(v) for v in present], dtype=object), return_counts=True)
            for label, count in zip(labels.tolist(), counts.tolist()):
                self.counts[label] = self.counts.get(label, 0) + count
                if known is not None and label not in known:
                    self.unknown += count
            self._trim()
        return self

    def _trim(self) -> None:
        if len(self.counts) > MAX_CATEGORIES:
            ranked = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
            kept = dict(ranked[:MAX_CATEGORIES - 1])
            kept[OTHER] = kept.get(OTHER, 0) + sum(c for _, c in ranked[MAX_CATEGORIES - 1:])
            self.counts = kept

    def merge(self, other: "CategoricalSketch") -> "CategoricalSketch":
        for label, count in other.counts.items():
            self.counts[label] = self.counts.get(label, 0) + count
        self.missing += other.missing
        self.unknown += other.unknown
        self._trim()
        return self

    @property
    def n(self) -> int:
        return sum(self.counts.values())

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        labels = list(self.counts)
        return {f"{prefix}.labels": np.array(labels, dtype=str) if labels else np.zeros(0, dtype="<U1"),
                f"{prefix}.counts": np.array([self.counts[k] for k in labels], dtype=np.int64),
                f"{prefix}.stats": np.array([self.missing, self.unknown], dtype=np.int64)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> "CategoricalSketch":
        labels, counts = arrays[f"{prefix}.labels"].tolist(), arrays[f"{prefix}.counts"].tolist()
        missing, unknown = arrays[f"{prefix}.stats"].tolist()
        return cls(dict(zip(labels, counts)), int(missing), int(unknown))


def score_index(p: np.ndarray) -> np.ndarray:
    """Bins of probabilities: 0 for exactly 0, SCORE_BINS + 1 for exactly 1, uniform in the logit
    between (``SCORE_LOGIT`` either way) otherwise."""
    p = np.asarray(p, dtype=np.float64)
    with np.errstate(divide="ignore"):
        logit = np.log(p) - np.log1p(-p)
    inner = np.clip(np.floor((logit + SCORE_LOGIT) / (2 * SCORE_LOGIT) * SCORE_BINS), 0, SCORE_BINS - 1) + 1
    return np.where(p <= 0, 0, np.where(p >= 1, SCORE_BINS + 1, inner)).astype(np.int64)


@dataclass
class ScoreSketch:
    """Positive-class probabilities per score bin: all rows, and for labelled rows by label,
    with the sum of probabilities per bin (calibration)."""

    rows: np.ndarray = field(default_factory=lambda: np.zeros(SCORE_BINS + 2, dtype=np.int64))
    positives: np.ndarray = field(default_factory=lambda: np.zeros(SCORE_BINS + 2, dtype=np.int64))
    negatives: np.ndarray = field(default_factory=lambda: np.zeros(SCORE_BINS + 2, dtype=np.int64))

    def add(self, p: np.ndarray, labels: np.ndarray | None = None) -> "ScoreSketch":
        p = np.asarray(p, dtype=np.float64)
        p = p[np.isfinite(p)] if labels is None else p
        index = score_index(p)
        if labels is None:
            self.rows += np.bincount(index, minlength=SCORE_BINS + 2)
        else:
            labels = np.asarray(labels, dtype=bool)
            self.positives += np.bincount(index[labels], minlength=SCORE_BINS + 2)
            self.negatives += np.bincount(index[~labels], minlength=SCORE_BINS + 2)
        return self

    def merge(self, other: "ScoreSketch") -> "ScoreSketch":
        self.rows += other.rows
        self.positives += other.positives
        self.negatives += other.negatives
        return self

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}.{name}": getattr(self, name) for name in ("rows", "positives", "negatives")}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> "ScoreSketch":
        return cls(*(arrays[f"{prefix}.{name}"].copy() for name in ("rows", "positives", "negatives")))


def latency_index(ms: np.ndarray) -> np.ndarray:
    ms = np.maximum(np.asarray(ms, dtype=np.float64), LATENCY_MIN_MS)
    return np.clip(np.floor(np.log(ms / LATENCY_MIN_MS) / math.log(LATENCY_FACTOR)), 0, LATENCY_BINS - 1) \
        .astype(np.int64)


def latency_quantile(counts: np.ndarray, q: float) -> float | None:
    """The q-quantile of latencies counted on the log grid (the bin's geometric middle; 0.5 %)."""
    total = counts.sum()
    if not total:
        return None
    index = int(np.searchsorted(np.cumsum(counts), q * total, side="left"))
    return float(LATENCY_MIN_MS * LATENCY_FACTOR ** (index + 0.5))
