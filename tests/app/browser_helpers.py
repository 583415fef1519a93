"""What the browser tests read from the served page, beyond plain locators.

Images and curves are drawn on canvases, so their content is read from the page's Bokeh
document (the data the browser received), found by figure title. Status, caption and
progress changes are recorded by tools.app_bench's MutationObserver (`record`), so a state that
lasts a few milliseconds (one streamed block) is still seen.
"""

from __future__ import annotations

import ast
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import Page, TimeoutError, expect

from tools.app_bench import record, wait_status

# Small, fast runs on the tiny zoo: 3 blocks of 2 frames each.
FAST = {"members": "3", "steps": "2", "sampler": "euler", "horizon": "6"}
TIMEOUT_MS = 30_000

# Per figure (by title prefix): for each renderer, its finite y values or image values.
FIGURE_DATA_JS = """
prefix => {
  const out = [];
  for (const m of Bokeh.documents[0].all_models) {
    const title = m.title && m.title.text;
    if (!m.renderers || typeof title !== 'string' || !title.startsWith(prefix)) continue;
    for (const r of m.renderers) {
      const data = r.data_source && r.data_source.data;
      if (!data) continue;
      const values = data.image ? Array.from(data.image[0] || []) : Array.from(data.y || []);
      out.push(values.filter(Number.isFinite));
    }
  }
  return out;
}
"""


def status(page: Page):
    """The status line (a locator, for `expect`)."""
    return page.locator(".ls-status div").first


def caption(page: Page):
    return page.locator(".ls-time-caption div").first


def open_app(page: Page, url: str, query: dict[str, str] | None = None) -> None:
    """Load the app (with `query`) and start recording status/caption/progress changes."""
    if query:
        url += "?" + "&".join(f"{key}={value}" for key, value in query.items())
    page.goto(url)
    expect(page.locator(".ls-run button")).to_be_visible(timeout=TIMEOUT_MS)
    record(page)


def expect_done(page: Page, label: str = "", timeout_ms: int = TIMEOUT_MS) -> None:
    """Wait for the run to finish (status "done: <n> frames of <label>…")."""
    expect(status(page)).to_have_text(
        re.compile(r"^done: \d+ frames of " + re.escape(label)), timeout=timeout_ms
    )


def recorded(page: Page, cls: str) -> list[str]:
    """The successive texts of `ls-status`, `ls-time-caption` or `ls-progress`."""
    return [text for _, name, text in page.evaluate("() => window.lsLog") if name == cls]


def figure_data(page: Page, title_prefix: str) -> list[list[float]]:
    return page.evaluate(FIGURE_DATA_JS, title_prefix)


def wait_figure(page: Page, title_prefix: str, points: int) -> list[list[float]]:
    """Wait until a renderer of the figure holds `points` finite values; return them all."""
    try:
        page.wait_for_function(
            f"prefix => ({FIGURE_DATA_JS})(prefix).some(v => v.length === {points})",
            arg=title_prefix,
            timeout=TIMEOUT_MS,
        )
    except TimeoutError as err:
        raise AssertionError(
            f"figure {title_prefix!r} never held {points} values: {figure_data(page, title_prefix)}"
        ) from err
    return figure_data(page, title_prefix)


def click_tab(page: Page, name: str) -> None:
    page.locator(".bk-tab", has_text=name).click()


def select(page: Page, css: str, label: str) -> None:
    page.locator(f"{css} select").select_option(label=label)


def wait_query(page: Page, **expected: str) -> None:
    """Wait until the server has written `expected` into the address bar: it then has
    processed the widget changes (and a locator on a menu that the change rebuilds,
    like the rates after a system change, sees the new one)."""
    page.wait_for_function(
        """expected => { const query = new URLSearchParams(location.search);
             return Object.entries(expected).every(([k, v]) => query.get(k) === v); }""",
        arg=expected,
        timeout=TIMEOUT_MS,
    )


def selected(page: Page, css: str) -> str:
    return page.locator(f"{css} select").input_value()


def run(page: Page, timeout_s: float = 30.0) -> str:
    """Click Run and wait for this run's final status ("done…", "cancelled…", "failed…")."""
    start(page)
    return wait_final(page, timeout_s)


# Picks an option of a Select (host class `cls`) and clicks Run in the same turn, so the
# click reaches the server while the change is still pending there.
SELECT_AND_CLICK_RUN_JS = """
([cls, label]) => {
  const select = window.lsFind(cls).shadowRoot.querySelector('select');
  const option = Array.from(select.options).find(o => o.text === label);
  if (!option) throw new Error('no option ' + label);
  select.value = option.value;
  select.dispatchEvent(new Event('input', {bubbles: true}));
  select.dispatchEvent(new Event('change', {bubbles: true}));
  window.lsFind('ls-run').shadowRoot.querySelector('button').click();
}
"""


def select_and_run(page: Page, cls: str, label: str, timeout_s: float = 30.0) -> str:
    """Choose `label` in the Select of class `cls` and click Run at once; the final status."""
    page.evaluate("() => { window.lsLog.length = 0; }")
    page.evaluate(SELECT_AND_CLICK_RUN_JS, [cls, label])
    return wait_final(page, timeout_s)


def wait_final(page: Page, timeout_s: float) -> str:
    """Wait for this run's final status ("done…", "cancelled…", "failed…")."""
    page.wait_for_function(
        "() => window.lsLog.some(e => e[1] === 'ls-status' && "
        "/^(done|cancelled|failed)/.test(e[2]))",
        timeout=timeout_s * 1000,
    )
    return wait_status(page, "", 1)


def start(page: Page) -> None:
    """Forget what was recorded so far and click Run."""
    page.evaluate("() => { window.lsLog.length = 0; }")
    page.locator(".ls-run button").click()


def query_of(url: str) -> dict[str, Any]:
    """The URL's query, values normalised: the app writes lists and booleans sometimes as
    JSON ("true", ["a"]) and sometimes as Python (True, ['a']); both read back the same."""
    values = {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}
    for key, value in values.items():
        if value in ("True", "False"):
            values[key] = value.lower()
        elif value.startswith("["):
            values[key] = ast.literal_eval(value)
    return values
