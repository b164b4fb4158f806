"""The running run's status and chart, fed to the browser as only what changed.

Gradio re-sends a `gr.Plot`'s whole figure on every update, and its front end deep-copies
and walks every value (and every output's progress state) of every event: at 6 optimizers x
5,000 steps, with a frame every quarter second, that held the browser's main thread for
seconds at a time and the page fell seconds behind the workers. So while a run trains, the
page's script (`FOLLOW_JS`) asks this server's own route (`ROUTE`, keyed by a secret token
per run, so a visitor reaches only their own run) for what changed, about five times a
second, outside Gradio's event machinery. An answer holds:

- `status`: the status as HTML, written into the status's `#live-status` block;
- `frame`: the chart, either *full*, `{"frame": id, "figure": {...}, "stable": {...}}`,
  drawn with `Plotly.react` when the chart in the browser is not this figure's (the first
  frame, a new display option, a curve blown up or stopped, the steps doubling, which
  doubles the decimation's buckets: anything but new points), or a *cut*, `{"frame": id, "cut": {meta: [k, xs, ys]}, "stable": {...}}`: each
  trace keeps its first k points and gets the new ones after them (`Plotly.redraw`);
- `done` once the run has ended and is kept (the page's own event then draws its last frame,
  table and downloads through `gr.Plot`), or `gone` for a token no session has.

The browser says what it holds with each request: the chart's frame id (`layout.meta.frame`)
and, per trace, how many of its points are final (`stable`, from `charts.decimate`; the
points after those are the unfinished last bucket and the head). So an answer that was lost
costs nothing: the next one starts from what the browser really has. The id is a hash of
everything in the figure but the traces' points, so any other change sends a full frame.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from typing import Any

from keras_adaptive_gui import charts

ROUTE = "/keras-adaptive/live/{feed}"  # what the page's script asks; `feed`: the run's secret token
POLL_MS = 200  # the pause between the answer to one request and the next request
CHART_SHARE = 0.4  # at most about this share of the browser's time goes to redrawing the chart
CHART_REST_MS = 1000  # and it rests at most this long after a redraw

# Started when Train hands the page a new feed token: asks the server what changed (`ROUTE`,
# saying what the chart holds), applies it, and asks again POLL_MS later, one request at a
# time (a slow browser or server gets fewer frames, never a queue of old ones). When the run
# has ended and is kept, it clicks the hidden "#live-finish" button: the page's own event then
# draws the last frame with the table and the downloads. A newer token ends the older loop.
# The chart is asked for only when the last redraw has rested 1/CHART_SHARE - 1 times its
# own cost (at most CHART_REST_MS): on a slow or busy machine the curves update less often
# (each redraw catching up with all that came meanwhile) and the status and the rest of the
# page stay quick.
FOLLOW_JS = (
    """
(feed) => {
  if (window.__kaFollow) { window.__kaFollow.stop = true; }
  if (!feed) { return; }
  const me = {stop: false};
  window.__kaFollow = me;
  const chart = () => document.querySelector('#plot .js-plotly-plot');
  let chartAfter = 0;  // performance.now() before which the chart rests
  const held = () => {
    const gd = chart();
    const frame = gd && gd.layout && gd.layout.meta ? gd.layout.meta.frame || '' : '';
    const stable = window.__kaLive && window.__kaLive.frame === frame ? window.__kaLive.stable : {};
    return JSON.stringify({frame: frame, stable: stable, chart: performance.now() >= chartAfter});
  };
  const draw = (msg) => {
    const gd = chart();
    if (!gd || !window.Plotly) { return; }
    if (msg.figure) {
      window.Plotly.react(gd, msg.figure.data, msg.figure.layout, {responsive: true});
    } else {
      if (!gd.data || !gd.layout || !gd.layout.meta || gd.layout.meta.frame !== msg.frame) { return; }
      let changed = false;
      for (const t of gd.data) {
        const c = t.meta === undefined ? null : msg.cut[t.meta];
        if (!c || c[0] > t.x.length) { continue; }
        t.x.splice(c[0]); t.y.splice(c[0]);
        for (let i = 0; i < c[1].length; i++) { t.x.push(c[1][i]); t.y.push(c[2][i]); }
        changed = true;
      }
      if (changed) { window.Plotly.redraw(gd); }
    }
    const cuts = (window.__kaLive ? window.__kaLive.cuts : 0) + (msg.figure ? 0 : 1);
    window.__kaLive = {frame: msg.frame, stable: msg.stable, cuts: cuts};  // cuts: the tests read it
  };
  const root = (window.gradio_config && window.gradio_config.root) || '';
  const url = root.replace(/\\/$/, '') + 'ROUTE'.replace('{feed}', encodeURIComponent(feed));
  const ask = async () => {
    if (me.stop) { return; }
    let msg = null;
    try {
      const answer = await fetch(url + '?have=' + encodeURIComponent(held()), {cache: 'no-store'});
      msg = answer.ok ? await answer.json() : null;
    } catch (error) { msg = null; }
    if (me.stop) { return; }
    if (msg) {
      const status = document.getElementById('live-status');
      if (msg.status !== undefined && status) { status.innerHTML = msg.status; }
      if (msg.frame) {
        const t0 = performance.now();
        draw(msg.frame);
        const cost = performance.now() - t0;
        chartAfter = performance.now() + Math.min(cost * (1 / CHART_SHARE - 1), CHART_REST_MS);
      }
      if (msg.gone) { me.stop = true; return; }
      if (msg.done) {
        me.stop = true;
        const finish = document.querySelector('#live-finish');
        if (finish) { finish.click(); }
        return;
      }
    }
    setTimeout(ask, POLL_MS);
  };
  ask();
}
""".replace("ROUTE", ROUTE)
    .replace("POLL_MS", str(POLL_MS))
    .replace("CHART_SHARE", str(CHART_SHARE))
    .replace("CHART_REST_MS", str(CHART_REST_MS))
)


def status_html(markdown: str) -> str:
    """The page's status (paragraphs, **bold**) as the HTML that FOLLOW_JS writes into the
    status's `#live-status` block; every other character is escaped."""
    paragraphs = []
    for paragraph in markdown.split("\n\n"):
        text = html.escape(paragraph).replace("\n", "<br>")
        paragraphs.append("<p>" + re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text) + "</p>")
    return "".join(paragraphs)


def status_block(markdown: str) -> str:
    """The status Markdown that FOLLOW_JS can update: an HTML block with the id it writes to."""
    return f'<div id="live-status">{status_html(markdown)}</div>'


def frame_id(fig: dict) -> str:
    """A hash of `fig` without its traces' points (x, y) and `stable` counts (their `bucket`
    sizes count: when the steps double, the decimation changes and the frame is new)."""
    shape = {
        "layout": {k: v for k, v in fig["layout"].items() if k != "meta"},
        "meta": {k: v for k, v in (fig["layout"].get("meta") or {}).items() if k != "frame"},
        "traces": [
            {k: v for k, v in t.items() if k not in ("x", "y", "stable")} if "meta" in t else t for t in fig["data"]
        ],
    }
    return hashlib.sha1(json.dumps(shape, sort_keys=True, allow_nan=False).encode()).hexdigest()[:16]


def held(have: str | None) -> tuple[str, dict, bool]:
    """What the browser's chart holds (FOLLOW_JS's `have`): its frame id, {trace meta: final
    points}, and whether it wants the chart now (or only the status)."""
    try:
        value = json.loads(have or "{}")
        frame, stable = str(value.get("frame") or ""), value.get("stable") or {}
        stable = {str(k): int(v) for k, v in stable.items()} if isinstance(stable, dict) else {}
        return frame, stable, value.get("chart", True) is not False
    except (ValueError, TypeError, AttributeError):
        return "", {}, True


def wants_chart(have: str | None) -> bool:
    return held(have)[2]


def frame(fig: dict, have: str | None) -> dict:
    """What to send for `fig` (a figure of `charts.figure`, its `stable` counts in
    it) to a browser that holds `have`: a cut frame if the browser's chart is this figure's
    but for points, else a full one."""
    fid = frame_id(fig)
    stable = charts.split_stable(fig)
    browser_frame, browser_stable, _ = held(have)
    if browser_frame != fid:
        fig["layout"].setdefault("meta", {})["frame"] = fid
        return {"frame": fid, "figure": fig, "stable": stable}
    cut: dict[str, Any] = {}
    for trace in fig["data"]:
        meta = trace.get("meta")
        if meta is None or meta not in stable:
            continue
        k = min(browser_stable.get(meta, 0), stable[meta])
        xs, ys = trace["x"][k:], trace["y"][k:]
        if k == browser_stable.get(meta, 0) and k == stable[meta] and not xs:
            continue
        cut[meta] = [k, xs, ys]
    return {"frame": fid, "cut": cut, "stable": stable}
