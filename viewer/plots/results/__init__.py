"""The plots of a finished scoring job, drawn from its stored aggregates (``viewer.core.metrics``).

``result_plots(aggregates)`` returns one ``PlotSpec`` per plot the aggregates allow: a stable
``key``, a title, the "exact / aggregated" caption, the plot's data as a table (for its CSV
download) and ``draw()``, which builds the bokeh model only when a page asks for it (the CSV route
needs only the table). Everything comes from the bounded aggregates, so the size of a page does
not grow with the number of rows scored.

Names the page's script (``viewer/static/results.js``) and browser tests rely on:

* every plot's root model is named ``fig-<key>`` and its main data source ``src-<key>``;
* the confusion matrix cells (``src-confusion``) have the columns ``true``, ``pred``, ``count``,
  ``row_total``, ``row_share``, ``text``, ``intensity``, ``text_color`` (and ``cell`` = tn/fp/fn/tp
  for a binary matrix driven by the threshold slider); ``matrix_display`` is the one rule both
  Python and the script follow to fill the display columns;
* the threshold markers: ``src-threshold-roc``, ``src-threshold-pr`` (columns ``x``, ``y``) and
  the vertical line ``threshold-score`` (a ``Span``) on the score distribution.

User data (class labels, the target's name) goes only into data-source columns, categorical
factors and text properties (axis and legend labels), which BokehJS draws as text. Hover tooltips
are fixed ``(label, "@field")`` pairs, and BokehJS escapes field values; no CustomJS anywhere.

The builders live in modules of this package, one topic each:

* ``common``: ``PlotSpec``, the limits, label and figure helpers, the one-series histogram;
* ``confusion``: the confusion matrices, ``matrix_display`` and the threshold numbers
  (``threshold_payload``, ``threshold_numbers``);
* ``binary``: ROC and precision-recall curves, calibration, score distribution, gain and lift;
* ``classes``: one-vs-rest ROC curves, per-class bars, predicted shares, probability histograms;
* ``regression``: predicted vs actual, residuals, error by decile;
* ``page``: ``result_plots`` (which plots, in which order), ``plot_table``, ``unavailable_notes``.

Curves (line, hover points, hover tool, threshold marker) are drawn by ``viewer.plots.curves``,
which the compare page uses too.
"""

from __future__ import annotations

from .common import MAX_DENSE_MATRIX, MAX_LEGEND, MAX_MATRIX_TEXT, MISSING_LABEL, PlotSpec
from .confusion import matrix_display, threshold_numbers, threshold_payload
from .page import UNAVAILABLE_NAMES, plot_table, result_plots, unavailable_notes

__all__ = ["PlotSpec", "matrix_display", "plot_table", "result_plots", "threshold_numbers", "threshold_payload",
           "unavailable_notes"]
