"""Small helpers to drive the page in Chromium and read what it shows."""

from __future__ import annotations

import re
import time

import pytest

# Debian's Chromium, started as this machine needs (Playwright must never download a browser);
# the browser tests (conftest.py) and benchmarks/gui_lag.py both launch it so.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DEFAULT_TIMEOUT = 120.0


def open_page(browser, url: str):
    context = browser.new_context(viewport={"width": 1500, "height": 1150})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(url)
    page.wait_for_selector("#train")
    page.wait_for_selector("#plot .js-plotly-plot")
    return page


def set_number(page, elem_id: str, value) -> None:
    field = page.locator(f"#{elem_id} input")
    field.fill(str(value))
    field.press("Tab")


def set_text(page, elem_id: str, value: str) -> None:
    field = page.locator(f"#{elem_id} input, #{elem_id} textarea").first
    field.fill(value)
    field.press("Tab")


def choose(page, elem_id: str, value: str) -> None:
    """Pick `value` in a dropdown the way a person does: type to filter, press Enter."""
    field = page.locator(f"#{elem_id} input")
    field.click()
    field.fill(value)
    field.press("Enter")
    deadline = time.monotonic() + 5
    while field.input_value() != value:
        if time.monotonic() > deadline:
            pytest.fail(f"dropdown #{elem_id} shows {field.input_value()!r}, wanted {value!r}")
        time.sleep(0.05)
    page.wait_for_timeout(300)  # let the widgets of the chosen optimizer update


def wait_value(page, selector: str, prefix: str, timeout: float = 20.0) -> str:
    """Wait until the input at `selector` shows a value starting with `prefix`."""
    deadline = time.monotonic() + timeout
    while True:
        value = page.locator(selector).input_value()
        if value.startswith(prefix):
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{selector} shows {value!r}, never {prefix!r}...")
        time.sleep(0.1)


def choose_radio(page, elem_id: str, value: str) -> None:
    page.click(f'#{elem_id} [data-testid="{value}-radio-label"]')


def status(page) -> str:
    return page.locator("#status").inner_text()


def wait_status(page, pattern: str, timeout: float = DEFAULT_TIMEOUT) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = status(page)
        if re.search(pattern, text):
            return text
        if time.monotonic() > deadline:
            pytest.fail(f"status never matched {pattern!r} in {timeout:g} s; it says: {text!r}")
        time.sleep(0.2)


PLOT = "#plot .js-plotly-plot"


def legend(page, timeout: float = 10.0) -> list[str]:
    """The legend entries of the chart as the browser drew them (waiting for a drawn legend)."""
    deadline = time.monotonic() + timeout
    while True:
        labels = page.eval_on_selector_all(
            f"{PLOT} .legend .traces .legendtext", "els => els.map(e => e.textContent.trim())"
        )
        if labels or time.monotonic() > deadline:
            return labels
        time.sleep(0.1)


def trace(page, meta: str) -> dict:
    """The chart's trace whose meta is `meta` (e.g. "loss-0"), as the browser holds it:
    {"x", "y", "visible", "name"}; {} if there is none."""
    return page.evaluate(
        """([sel, meta]) => { const gd = document.querySelector(sel);
             const t = gd && gd.data ? gd.data.find(t => t.meta === meta) : null;
             return t ? {x: Array.from(t.x || []), y: Array.from(t.y || []), visible: t.visible ?? true,
                         name: t.name} : {}; }""",
        [PLOT, meta],
    )


def curve_points(page, meta: str) -> int:
    """How many drawn (non-gap) points the trace `meta` has (0 if it is not there)."""
    return len([v for v in trace(page, meta).get("y", []) if v is not None])


def layout(page) -> dict:
    return page.evaluate(
        "sel => { const gd = document.querySelector(sel); return gd ? JSON.parse(JSON.stringify(gd.layout)) : {}; }",
        PLOT,
    )


def wait_curves(page, metas: list, min_points: int, timeout: float = DEFAULT_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while True:
        counts = {m: curve_points(page, m) for m in metas}
        if all(n >= min_points for n in counts.values()):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"curves {counts} never reached {min_points} points; status: {status(page)!r}")
        time.sleep(0.2)


def hover_texts(page, meta: str, index: int) -> list[str]:
    """Move the mouse, in a few small steps as a person does, onto point `index` of trace `meta`
    (where plotly.js drew it); the texts of the hover labels that appear."""
    where = page.evaluate(
        """([sel, meta, index]) => { const gd = document.querySelector(sel);
             const t = gd.data.find(t => t.meta === meta);
             const xa = gd._fullLayout[(t.xaxis || 'x').replace('x', 'xaxis')];
             const ya = gd._fullLayout[(t.yaxis || 'y').replace('y', 'yaxis')];
             const box = gd.getBoundingClientRect();
             return [box.left + xa._offset + xa.c2p(t.x[index]), box.top + ya._offset + ya.c2p(t.y[index])]; }""",
        [PLOT, meta, index],
    )
    x, y = where
    for k in range(5, 0, -1):
        page.mouse.move(x - 3 * k, y - 2 * k)
        page.wait_for_timeout(40)
    page.mouse.move(x, y)
    page.wait_for_timeout(300)
    return page.eval_on_selector_all(f"{PLOT} .hoverlayer text", "els => els.map(e => e.textContent)")


def click_legend(page, label: str) -> None:
    entries = page.locator(f"{PLOT} .legend .traces")
    for i in range(entries.count()):
        if entries.nth(i).locator(".legendtext").text_content().strip() == label:
            entries.nth(i).locator(".legendtoggle").click()
            page.wait_for_timeout(300)
            return
    pytest.fail(f"no legend entry {label!r} in {legend(page)}")


def summary(page) -> list[list[str]]:
    return page.eval_on_selector_all(
        "#summary [role=row].virtual-row",
        "rows => rows.map(r => Array.from(r.querySelectorAll('[role=gridcell]')).map(c => c.innerText.trim()))",
    )


def colour_pixels(png_path: str, hex_colour: str, tolerance: int = 40) -> int:
    """Pixels of the screenshot close to `hex_colour`."""
    import numpy as np
    from PIL import Image

    image = np.asarray(Image.open(png_path).convert("RGB")).astype(int)
    target = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(image - target).sum(axis=-1) < tolerance).sum())
