// Tabs: links with data-tab show the form with the matching data-pane.
document.querySelectorAll("[data-tab]").forEach((tab) => tab.addEventListener("click", (e) => {
  e.preventDefault();
  document.querySelectorAll("[data-tab]").forEach((t) => t.classList.toggle("active", t === tab));
  document.querySelectorAll("[data-pane]").forEach((p) => p.classList.toggle("hidden", p.dataset.pane !== tab.dataset.tab));
}));
