"""One browser context per test, with everything that went wrong in it recorded.

``UI.check()`` fails the test on a console error, an uncaught exception, a dialog (alert, confirm,
prompt) or a request to anything but the live server. A test that expects one (a 404 page logs
"Failed to load resource") says so with ``allow(pattern)``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

# What the Bokeh documents on the page hold: per GlyphRenderer its glyph type, name and the
# length of every column of its data source. BokehJS 3 keeps CDS data in a Map or a plain object
# depending on the version; both are handled.
BOKEH_SUMMARY = """() => {
  if (!window.Bokeh || !Bokeh.documents) return null;
  const columns = (data) => {
    const out = {};
    const entries = data instanceof Map ? [...data.entries()] : Object.entries(data);
    for (const [k, v] of entries) out[k] = v == null ? null : (v.length ?? null);
    return out;
  };
  return Bokeh.documents.map((doc) => {
    const renderers = [];
    const sources = [];
    for (const m of doc.all_models) {
      const type = m.constructor.__name__ || m.type;
      if (type === "GlyphRenderer") {
        renderers.push({glyph: m.glyph.constructor.__name__ || m.glyph.type, name: m.name,
                        visible: m.visible, columns: columns(m.data_source.data)});
      } else if (type === "ColumnDataSource") {
        sources.push({name: m.name, columns: columns(m.data)});
      }
    }
    return {roots: doc.roots().map((r) => r.constructor.__name__), renderers, sources};
  });
}"""

# Every plot embedded on the page has drawn: at least one Bokeh document per json_item block (or
# as many as the caller expects), and every root of every document has a view that finished
# rendering (BokehJS keeps the root views in Bokeh.index).
PLOTS_READY = """(expected) => {
  if (!window.Bokeh || !Bokeh.documents || !Bokeh.index) return false;
  const blocks = document.querySelectorAll("script[type='application/json'][data-bokeh-target]").length;
  const want = expected ?? blocks;
  if (Bokeh.documents.length < want) return false;
  const views = [...(Bokeh.index.roots ?? Bokeh.index)];
  const roots = Bokeh.documents.flatMap((doc) => doc.roots());
  return roots.length > 0 && roots.every((model) => views.some((view) => view.model === model
    && (typeof view.has_finished !== "function" || view.has_finished())));
}"""

# One named data source's columns as plain lists (None when no document has that name).
SOURCE = """(name) => {
  for (const doc of (window.Bokeh && Bokeh.documents) || []) {
    const model = doc.get_model_by_name(name);
    if (!model) continue;
    const data = model.data;
    const entries = data instanceof Map ? [...data.entries()] : Object.entries(data);
    return Object.fromEntries(entries.map(([k, v]) => [k, Array.from(v)]));
  }
  return null;
}"""

# Every element a string of user data could have turned into (searched in the page and in every
# open shadow root, where BokehJS draws its tooltips and widgets).
INJECTED = """() => {
  const found = [];
  const walk = (root) => {
    for (const el of root.querySelectorAll("*")) {
      const tag = el.tagName.toLowerCase();
      if (tag === "img" && el.getAttribute("src") === "x") found.push("img src=x");
      if (tag === "svg" && el.hasAttribute("onload")) found.push("svg onload");
      for (const a of el.getAttributeNames()) if (a.startsWith("on")) found.push(tag + " " + a);
      if (tag === "script" && (el.type || "text/javascript") !== "application/json"
          && /__xss/.test(el.textContent)) found.push("script " + el.textContent.slice(0, 60));
      if (el.shadowRoot) walk(el.shadowRoot);
    }
  };
  walk(document);
  return found;
}"""

# Visible text of the page including open shadow roots (tooltips, widgets).
ALL_TEXT = """() => {
  const parts = [];
  const walk = (root) => {
    for (const el of root.querySelectorAll("*")) {
      if (el.shadowRoot) { parts.push(el.shadowRoot.textContent || ""); walk(el.shadowRoot); }
    }
  };
  parts.push(document.body.innerText);
  walk(document);
  return parts.join("\\n");
}"""


class UI:
    def __init__(self, browser, base_url: str, screenshots: Path, *, bypass_csp: bool = False,
                 storage_state: dict | None = None):
        self.base_url = base_url
        self.screenshots = screenshots
        self.problems: list[str] = []
        self.allowed: list[re.Pattern] = []
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=bypass_csp,
                                           base_url=base_url, storage_state=storage_state)
        self.context.set_default_timeout(30_000)
        self.page = self.context.new_page()
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        self.page.on("dialog", self._dialog)
        self.page.on("request", self._request)

    # --- what went wrong -------------------------------------------------------------------------

    def _console(self, message) -> None:
        if message.type in ("error", "assert"):
            self.problems.append(f"console {message.type}: {message.text} ({message.location.get('url', '')})")

    def _dialog(self, dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        self.problems.append(f"dialog {dialog.type}: {dialog.message}")
        dialog.dismiss()

    def _request(self, request) -> None:
        url = request.url
        self.requests.append(url)
        if not (url.startswith(self.base_url + "/") or url == self.base_url
                or url.startswith(("data:", "blob:", "about:"))):
            self.problems.append(f"request outside the app: {request.method} {url}")

    def allow(self, pattern: str) -> None:
        """Expect problems matching ``pattern`` (a regular expression)."""
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [p for p in self.problems if not any(a.search(p) for a in self.allowed)]

    def check(self) -> None:
        bad = self.unexpected()
        if bad:
            pytest.fail("the browser reported:\n  " + "\n  ".join(bad), pytrace=False)

    def close(self) -> None:
        self.context.close()

    # --- driving ---------------------------------------------------------------------------------

    def login(self, username: str, password: str) -> None:
        page = self.page
        page.goto("/login")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", password)
        with page.expect_navigation():
            page.click("button[type=submit]")
        assert page.url == self.base_url + "/", f"login as {username} landed on {page.url}"

    def goto(self, path: str, status: int = 200):
        response = self.page.goto(path, wait_until="load")
        assert response is not None and response.status == status, \
            f"GET {path}: {response.status if response else 'no response'}"
        return response

    def wait_for_plots(self, expected: int | None = None) -> None:
        """Wait until BokehJS has built and drawn every plot (``expected`` documents, else one per
        embedded json_item)."""
        self.page.wait_for_function(PLOTS_READY, arg=expected)
        self.page.locator("canvas").first.wait_for(state="attached")

    def bokeh(self) -> list[dict]:
        return self.page.evaluate(BOKEH_SUMMARY)

    def renderers(self) -> list[dict]:
        return [r for doc in (self.bokeh() or []) for r in doc["renderers"]]

    def source(self, name: str) -> dict[str, list] | None:
        return self.page.evaluate(SOURCE, name)

    def canvases(self) -> int:
        return self.page.locator("canvas").count()

    def text(self) -> str:
        return self.page.evaluate(ALL_TEXT)

    def injected(self) -> list[str]:
        return self.page.evaluate(INJECTED)

    def hover_plots(self, steps: int = 6) -> None:
        """Move the mouse over a grid of points on every plot, so every hover tool shows tooltips."""
        page = self.page
        for plot in page.locator("div.plot").all():  # one per embedded json_item (templates/_bokeh.html)
            plot.scroll_into_view_if_needed()
            box = plot.bounding_box()
            assert box and box["width"] > 50 and box["height"] > 50, f"plot {plot.get_attribute('id')} is not drawn"
            for i in range(1, steps):
                for j in range(1, steps):
                    page.mouse.move(box["x"] + box["width"] * i / steps, box["y"] + box["height"] * j / steps)
        page.mouse.move(0, 0)

    def screenshot(self, name: str) -> Path:
        self.screenshots.mkdir(parents=True, exist_ok=True)
        path = self.screenshots / name
        self.page.screenshot(path=str(path), full_page=True)
        return path
