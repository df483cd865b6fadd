// The job page follows its job without reloading: it polls the session-authenticated
// /jobs/<id>/status.json (jobs.serialize_job) every second and updates the progress bar and
// numbers; when the job reaches a final state it reloads the page once to show the results.
(function () {
  const root = document.getElementById("job");
  if (!root) return;
  const FINAL = ["done", "error", "cancelled"];
  const url = root.dataset.statusUrl;
  if (!url || FINAL.includes(root.dataset.state)) return;

  const field = (name) => root.querySelector('[data-field="' + name + '"]');
  const set = (name, text) => { const el = field(name); if (el) el.textContent = text; };
  const grouped = (n) => Math.round(n).toLocaleString("en-US");
  // The same wording as format_duration in viewer/web/jobs.py.
  const duration = (seconds) => {
    if (seconds === null || seconds === undefined) return "—";
    const s = Math.max(0, Math.round(seconds));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    const pad = (x) => String(x).padStart(2, "0");
    if (h) return h + " h " + pad(m) + " min";
    if (m) return m + " min " + pad(r) + " s";
    return r + " s";
  };

  let failures = 0;
  let reloading = false;

  function render(job) {
    const state = field("state");
    if (state) { state.textContent = job.state; state.className = "state state-" + job.state; }
    const p = job.progress || {};
    const fraction = p.fraction !== null && p.fraction !== undefined ? p.fraction : (job.state === "done" ? 1 : null);
    const pct = fraction === null ? 0 : Math.min(100, fraction * 100);
    const bar = field("bar");
    if (bar) {
      bar.classList.toggle("indeterminate", fraction === null && !FINAL.includes(job.state));
      bar.setAttribute("aria-valuenow", String(Math.round(pct)));
      const fill = bar.querySelector(".progress-fill");
      if (fill) fill.style.width = pct.toFixed(2) + "%";
    }
    set("done", grouped(p.done || 0));
    if (p.total !== null && p.total !== undefined) set("total", grouped(p.total));
    set("percent", Math.round(pct));
    set("throughput", job.rows_per_second === null ? "—" : grouped(job.rows_per_second) + " rows/s");
    set("elapsed", duration(job.elapsed_seconds));
    set("remaining", duration(job.remaining_seconds));
    if (job.started_at) set("started", job.started_at.replace("T", " ").slice(0, 19) + " UTC");
    const hint = document.getElementById("live-hint");
    if (hint && job.state === "running") hint.textContent = "Running… This page updates by itself.";
  }

  function poll() {
    fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
      .then((response) => {
        if (response.status === 401 || response.redirected) {
          reloading = true; window.location.reload(); throw new Error("logged out");
        }
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then((job) => {
        failures = 0;
        render(job);
        if (FINAL.includes(job.state)) {
          if (!reloading) { reloading = true; window.location.reload(); }
          return;
        }
        window.setTimeout(poll, 1000);
      })
      .catch(() => {
        if (reloading) return;
        failures += 1;  // back off while the server is away, then keep trying
        window.setTimeout(poll, Math.min(1000 * 2 ** failures, 15000));
      });
  }

  window.setTimeout(poll, 1000);
})();
