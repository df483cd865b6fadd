// A scoring job's result plots: the threshold slider and the confusion matrix's counts / row %
// toggle, without Bokeh CustomJS (which would need 'unsafe-eval' under our CSP). Plain HTML
// controls drive the embedded Bokeh models, found by their stable names in Bokeh.documents:
//   src-confusion            the matrix cells (true, pred, count, row_total, row_share, text,
//                            intensity, text_color; "cell" = tn/fp/fn/tp for a binary matrix)
//   src-threshold-roc/-pr    the slider's marker on the ROC / precision-recall curves (x, y)
//   threshold-score          the dashed line (a Span) on the score distribution
// The threshold table (TP/FP/TN/FN at each threshold) comes from the JSON data block
// #threshold-table. Everything here handles numbers only; labels stay inside the sources.
(function () {
  "use strict";
  const tableEl = document.getElementById("threshold-table");
  const slider = document.getElementById("threshold");
  const modeInputs = document.querySelectorAll('input[name="cm-mode"]');
  if (!tableEl && !modeInputs.length) return;

  const table = tableEl ? JSON.parse(tableEl.textContent) : null;
  const state = { index: table ? table.index : 0, mode: "counts" };

  function findModel(name) {
    const docs = (window.Bokeh && window.Bokeh.documents) || [];
    for (const doc of docs) {
      const model = doc.get_model_by_name(name);
      if (model) return model;
    }
    return null;
  }

  // embed.js renders the plots asynchronously: wait (bounded) until the models exist.
  function whenModel(name, callback, waited) {
    const model = findModel(name);
    if (model) { callback(model); return; }
    if ((waited || 0) > 30000) return;
    window.setTimeout(() => whenModel(name, callback, (waited || 0) + 50), 50);
  }

  const grouped = (n) => Number(n).toLocaleString("en-US");
  const ratio = (a, b) => (b ? a / b : null);
  const four = (v) => (v === null ? "—" : v.toFixed(4));
  const textOn = (i) => (i > 0.55 ? "#ffffff" : "#1d2330");  // style.text_on

  // The same rule as viewer.plots.results.matrix_display.
  function matrixDisplay(data, counts, mode) {
    const trueCol = Array.from(data["true"]);
    const totals = new Map();
    trueCol.forEach((t, i) => totals.set(t, (totals.get(t) || 0) + counts[i]));
    const rowTotal = trueCol.map((t) => totals.get(t));
    const rowShare = counts.map((c, i) => (rowTotal[i] ? c / rowTotal[i] : 0));
    let intensity, text;
    if (mode === "row") {
      intensity = rowShare;
      text = rowShare.map((s, i) => (rowTotal[i] ? (s * 100).toFixed(1) + " %" : "—"));
    } else {
      const top = counts.reduce((a, b) => Math.max(a, b), 0);
      intensity = counts.map((c) => (top ? c / top : 0));
      text = counts.map(grouped);
    }
    const out = {};
    for (const key of Object.keys(data)) out[key] = data[key];
    Object.assign(out, { count: counts, row_total: rowTotal, row_share: rowShare, text: text,
                         intensity: intensity, text_color: intensity.map(textOn) });
    return out;
  }

  function atThreshold(i) {
    const tp = table.tp[i], fp = table.fp[i], tn = table.tn[i], fn = table.fn[i];
    const n = tp + fp + tn + fn;
    return {
      tp: tp, fp: fp, tn: tn, fn: fn, n: n,
      precision: ratio(tp, tp + fp), recall: ratio(tp, tp + fn), f1: ratio(2 * tp, 2 * tp + fp + fn),
      accuracy: ratio(tp + tn, n), specificity: ratio(tn, tn + fp), fpr: ratio(fp, fp + tn),
    };
  }

  function setText(key, value) {
    document.querySelectorAll('[data-at-threshold="' + key + '"]').forEach((el) => { el.textContent = value; });
  }

  function updateMatrix() {
    whenModel("src-confusion", (source) => {
      const data = source.data;
      let counts;
      if (table && data.cell) {
        const m = atThreshold(state.index);
        counts = Array.from(data.cell).map((c) => m[c]);
      } else {
        counts = Array.from(data.count);
      }
      source.data = matrixDisplay(data, counts, state.mode);
    });
  }

  function updateThreshold() {
    const m = atThreshold(state.index);
    const t = table.thresholds[state.index];
    setText("threshold", t.toFixed(2));
    ["precision", "recall", "f1", "accuracy", "specificity"].forEach((k) => setText(k, four(m[k])));
    setText("flagged", grouped(m.tp + m.fp));
    setText("flagged_share", m.n ? ((m.tp + m.fp) / m.n * 100).toFixed(1) + " %" : "—");
    if (slider) slider.setAttribute("aria-valuetext", t.toFixed(2));
    const saved = document.getElementById("save-threshold-value");  // the "save this threshold" form's value
    if (saved) saved.value = String(t);
    updateMatrix();
    const nan = (v) => (v === null ? NaN : v);
    whenModel("src-threshold-roc", (s) => { s.data = { x: [nan(m.fpr)], y: [nan(m.recall)] }; });
    whenModel("src-threshold-pr", (s) => { s.data = { x: [nan(m.recall)], y: [nan(m.precision)] }; });
    whenModel("threshold-score", (span) => { span.location = t; });
  }

  if (table && slider) {
    slider.max = String(table.thresholds.length - 1);
    slider.addEventListener("input", () => {
      state.index = Math.max(0, Math.min(table.thresholds.length - 1, parseInt(slider.value, 10) || 0));
      updateThreshold();
    });
    const start = parseInt(slider.value, 10);  // a reload may keep the slider where it was
    if (start >= 0 && start < table.thresholds.length) state.index = start;
    if (state.index !== table.index) updateThreshold();
  }
  modeInputs.forEach((input) => {
    if (input.checked) state.mode = input.value;
    input.addEventListener("change", () => {
      if (!input.checked) return;
      state.mode = input.value === "row" ? "row" : "counts";
      updateMatrix();
    });
  });
  if (state.mode !== "counts") updateMatrix();
})();
