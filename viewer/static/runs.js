// Runs table: say beside the "Compare selected" button why the ticked jobs cannot be compared
// (the server checks the same things; this only spares a round trip). Ticked order = baseline first.
// Several models on one dataset, or two jobs on two datasets (one model, January vs February).
(function () {
  const form = document.getElementById("compare-form");
  if (!form) return;
  const button = document.getElementById("compare-button");
  const hint = document.getElementById("compare-hint");
  const idle = hint.textContent;
  const boxes = Array.from(document.querySelectorAll('input[type=checkbox][form="compare-form"]'));
  const order = [];
  const MAX = 8;

  function reason(picked) {
    if (picked.length < 2) return null;
    if (picked.length > MAX) return `Compare at most ${MAX} jobs at a time; untick ${picked.length - MAX}.`;
    const first = picked[0].dataset;
    const datasets = new Set(picked.map((b) => b.dataset.dataset));
    if (datasets.size > 1 && picked.length > 2) {
      return `These ${picked.length} jobs were scored on ${datasets.size} different datasets: compare several models on one dataset, or one model on two datasets (tick two jobs).`;
    }
    for (const box of picked.slice(1)) {
      const d = box.dataset;
      if (d.target !== first.target) {
        return `${d.label} used target ${d.target || "(none)"}, ${first.label} ${first.target || "(none)"}: compare jobs scored against the same target.`;
      }
      if (d.task !== first.task) return `${d.label} is a ${d.task}, ${first.label} a ${first.task}: compare models of one kind.`;
      if (d.classes !== first.classes) return `${d.label} and ${first.label} predict different classes: their probabilities cannot be compared.`;
    }
    return null;
  }

  function update() {
    const picked = order.filter((b) => b.checked);
    const why = reason(picked);
    button.disabled = picked.length < 2 || why !== null;
    hint.classList.toggle("error", why !== null);
    if (why) hint.textContent = why;
    else if (picked.length === 2 && picked[0].dataset.dataset !== picked[1].dataset.dataset) {
      const [a, b] = picked.map((x) => x.dataset);
      const who = a.label === b.label ? `${a.label} on ` : "";
      hint.textContent = `Compares datasets: ${who}${a.datasetName || "the first dataset"} (baseline, the first ticked) vs ${b.datasetName || "the second"}.`;
    }
    else if (picked.length >= 2) hint.textContent = `Baseline: ${picked[0].dataset.label} (the first ticked).`;
    else hint.textContent = idle;
  }

  boxes.forEach((box) => box.addEventListener("change", () => {
    const at = order.indexOf(box);
    if (at >= 0) order.splice(at, 1);
    if (box.checked) order.push(box);
    update();
  }));
  // submit in the ticked order, so the first ticked is the baseline
  form.addEventListener("submit", (e) => {
    const picked = order.filter((b) => b.checked);
    if (picked.length < 2 || reason(picked)) { e.preventDefault(); update(); return; }
    e.preventDefault();
    const query = picked.map((b) => "jobs=" + encodeURIComponent(b.value)).join("&");
    window.location.assign(form.action + "?" + query);
  });
  update();
})();
