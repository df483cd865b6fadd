// Render every Bokeh json_item on the page. Items sit in <script type="application/json"> blocks
// (data, never executed), so the page needs no inline script and the CSP stays 'self'.
(function () {
  function renderAll(root) {
    (root || document).querySelectorAll("script[type='application/json'][data-bokeh-target]").forEach((el) => {
      const target = el.getAttribute("data-bokeh-target");
      if (document.getElementById(target).dataset.rendered) return;
      document.getElementById(target).dataset.rendered = "1";
      Bokeh.embed.embed_item(JSON.parse(el.textContent), target);
    });
  }
  window.viewerRenderPlots = renderAll;
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", () => renderAll());
  else renderAll();
})();
