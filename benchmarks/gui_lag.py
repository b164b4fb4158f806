"""How far the page's display lags behind the workers, and how long Train takes to draw.

    python -m benchmarks.gui_lag                      # lag: 6 optimizers x 5,000 steps, a second session training too
    python -m benchmarks.gui_lag --first-curve        # Train to first curve, cold then warm, per backend; 2-D redraw
    options: --backend jax --optimizers 6 --epochs 20 --steps-per-epoch 250 --no-second-session

The page is served in this process (`page.build`, as `keras-adaptive-gui` serves it) and
driven by headless Chromium. Lag: every 0.1 s the benchmark reads the step the status shows
in the browser, and the step the chart's least advanced loss curve has reached (its last
point, as the browser holds it); the engine logs when each worker message was sent
(time.time()) and the furthest step in it, so the worker's own step at that moment is known.
Lag in steps is the worker's step (its last message sent by then) minus the shown step
(status and chart each); lag in seconds is how long the worker has been ahead of the display:
now minus when it sent the first step past the one shown (0 while it has sent nothing newer).
A worker sends what it did every 0.15 s (`worker.FLUSH_SECONDS`): up to that much more comes
on top of these figures. Same machine, same clock.
"""

from __future__ import annotations

import argparse
import bisect
import os
import re
import socket
import statistics
import tempfile
import time

from tests.gui.ui import CHROMIUM, CHROMIUM_ARGS  # the browser tests' launch, kept in one place


def _serve(results: str):
    from keras_adaptive.datasets import sample_path
    from keras_adaptive_gui import engine, page

    comparisons = []  # every comparison started, in order
    start = engine.Comparison.start

    def register(self):
        comparisons.append(self)
        return start(self)

    engine.Comparison.start = register
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = page.build(sample_path(), "MNIST sample", limits=engine.Limits(max_workers=8), results_dir=results)
    demo.queue(default_concurrency_limit=16)
    page.launch(demo, block=False, server_name="127.0.0.1", server_port=port)
    return f"http://127.0.0.1:{port}/", comparisons, demo


def _page(browser, url):
    context = browser.new_context(viewport={"width": 1500, "height": 1150})
    p = context.new_page()
    p.set_default_timeout(60_000)
    p.goto(url)
    p.wait_for_selector("#plot .js-plotly-plot")
    return p


def _fill(p, elem_id, value):
    field = p.locator(f"#{elem_id} input, #{elem_id} textarea").first
    field.fill(str(value))
    field.press("Tab")


def _choose(p, elem_id, value):
    field = p.locator(f"#{elem_id} input")
    field.click()
    field.fill(value)
    field.press("Enter")
    p.wait_for_timeout(300)


def _setup(p, backend, optimizers, epochs, steps):
    names = ["sgd", "adam", "rmsprop", "adagrad", "nadam", "adamw"][:optimizers]
    for i, name in enumerate(names, 1):
        _choose(p, f"opt{i}-name", name)
    _fill(p, "epochs", epochs)
    _fill(p, "steps-per-epoch", steps)
    p.click(f'#backend [data-testid="{backend}-radio-label"]')


def total_steps(p) -> int:
    m = re.search(r"all (\d+) steps|\((\d+) steps on|Stopped at step (\d+)", p.inner_text("#status"))
    return int(next(g for g in m.groups() if g)) if m else 0


_SHOWN = """() => { const m = document.querySelector('#status').innerText.match(/step (\\d+) of/);
    const gd = document.querySelector('#plot .js-plotly-plot');
    const heads = (gd && gd.data ? gd.data : []).filter(t => /^loss-\\d+$/.test(t.meta || '') && t.x && t.x.length)
        .map(t => t.x[t.x.length - 1]);
    return [m ? Number(m[1]) : null, heads.length ? Math.min(...heads) : null]; }"""


def _shown_steps(p) -> tuple:
    """(the step the status shows, the step the chart's least advanced loss curve has reached)."""
    return tuple(p.evaluate(_SHOWN))


def _lags(samples: list, log: list, end: float) -> tuple[list, list, list]:
    """On a grid of 0.1 s from the first shown step to `end`: what the page showed then is
    the last sample before (a page too busy to answer the benchmark shows nothing newer
    either: that time counts as lag). Lag in steps: the worker's step (its last message by
    then) minus the shown one; in seconds: how long the worker has been ahead of the display,
    since it sent the first step past the shown one (0 if it has sent nothing newer, e.g.
    while it evaluates an epoch)."""
    walls, steps = [w for w, _ in log], [s for _, s in log]
    times = [t for t, _ in samples]
    lag_steps, lag_s, where = [], [], []
    t = next((t for t, shown in samples if shown), None) or end
    while t <= end:
        shown = samples[bisect.bisect_right(times, t) - 1][1] or 0
        k = bisect.bisect_right(walls, t) - 1
        if k >= 0:
            lag_steps.append(max(0, steps[k] - shown))
            j = bisect.bisect_right(steps, shown)
            lag_s.append(max(0.0, t - walls[j]) if j <= k else 0.0)
            where.append((t - walls[0], shown))
        t += 0.1
    return lag_steps, lag_s, where


def _report(what: str, lag_steps: list, lag_s: list, where: list, verbose: bool) -> None:
    q = statistics.quantiles(lag_s, n=20) if len(lag_s) > 20 else [max(lag_s or [0])] * 19
    worst = max(range(len(lag_s)), key=lag_s.__getitem__)
    print(
        f"  {what}: seconds median {statistics.median(lag_s):.2f}, 95th percentile {q[18]:.2f}, "
        f"max {max(lag_s):.2f} (at {where[worst][0]:.1f} s, step {where[worst][1]} shown); "
        f"steps median {statistics.median(lag_steps):.0f}, max {max(lag_steps)}"
    )
    if verbose:
        for (at, shown), seconds, behind in zip(where, lag_s, lag_steps):
            print(f"    {at:7.2f} s  shown {shown:5d}  behind {behind:4d} steps, {seconds:5.2f} s")


def lag(args) -> None:
    from playwright.sync_api import sync_playwright

    url, comparisons, demo = _serve(tempfile.mkdtemp(prefix="gui-lag-"))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        main = _page(browser, url)
        _setup(main, args.backend, args.optimizers, args.epochs, args.steps_per_epoch)
        other = None
        if args.second_session:
            other = _page(browser, url)
            _setup(other, args.backend, args.optimizers, args.epochs, args.steps_per_epoch)
            other.click("#train")
        main.click("#train")
        status_samples, chart_samples = [], []  # (time.time(), step shown)
        while "Finished" not in main.inner_text("#status") and "Stopped" not in main.inner_text("#status"):
            status_step, chart_step = _shown_steps(main)
            now = time.time()
            if status_step is not None:
                status_samples.append((now, status_step))
                chart_samples.append((now, chart_step or 0))
            elif args.verbose:
                print("    status without a step:", main.inner_text("#status")[:200].replace("\n", " "))
            time.sleep(0.1)
        comparison = comparisons[-1]  # the main session's (the other one started first)
        end = time.time()
        total = total_steps(main)  # "Finished" is on the screen now, with the last frame
        status_samples.append((end, total))
        chart_samples.append((end, _shown_steps(main)[1] or 0))
        render_ms = main.evaluate("""() => { const gd = document.querySelector('#plot .js-plotly-plot');
            const t0 = performance.now(); window.Plotly.react(gd, gd.data, gd.layout); return performance.now() - t0; }""")
        print(f"one whole chart redraw in the browser (Plotly.react of the last frame): {render_ms:.0f} ms")
        gaps = [b[0] - a[0] for a, b in zip(status_samples, status_samples[1:])]
        print(f"{len(status_samples)} samples of the page; the longest it took to answer: {max(gaps):.2f} s")
        if other is not None:
            while "Finished" not in other.inner_text("#status"):
                time.sleep(0.5)
        browser.close()
    demo.close()
    log = comparison.wall_log
    print(
        f"lag on a 0.1 s grid ({args.optimizers} optimizers x {args.epochs * args.steps_per_epoch} steps on "
        f"{args.backend}{', a second session training' if args.second_session else ''}; worker rate "
        f"{log[-1][1] / (log[-1][0] - log[0][0]):.0f} steps/s):"
    )
    _report("status", *_lags(status_samples, log, end), args.verbose)
    _report("chart ", *_lags(chart_samples, log, end), args.verbose)


_TITLE = "() => { const gd = document.querySelector('#plot .js-plotly-plot'); return gd && gd.layout && gd.layout.title ? gd.layout.title.text || '' : ''; }"
_NEW_CURVE = """old => { const gd = document.querySelector('#plot .js-plotly-plot');
    if (!gd || !gd.layout || !gd.layout.title || gd.layout.title.text === old) return false;
    const t = gd.data ? gd.data.find(t => t.meta === 'loss-0') : null;
    return !!(t && t.y && t.y.length > 0); }"""
_NEW_FINISHED = """old => { const gd = document.querySelector('#plot .js-plotly-plot');
    return !!(gd && gd.layout && gd.layout.title && gd.layout.title.text !== old
              && document.querySelector('#status').innerText.includes('Finished')); }"""


def _train_until(p, condition: str) -> float:
    """Press Train; seconds until `condition` holds for a chart of the new run (its title names the run)."""
    old = p.evaluate(_TITLE)
    p.click("#train")
    t0 = time.monotonic()
    p.wait_for_function(condition, arg=old, timeout=180_000, polling=50)
    return time.monotonic() - t0


def first_curve(args) -> None:
    """Per backend: Train right after choosing it (the worker the page started for it may still be
    importing Keras: the first Train of a visit), then the same Train again after `--idle` seconds
    (a warm persistent worker that kept its built and compiled models). With
    KERAS_ADAPTIVE_WARM_WORKERS=0 every Train starts a fresh process (cold)."""
    from playwright.sync_api import sync_playwright

    url, comparisons, demo = _serve(tempfile.mkdtemp(prefix="gui-lag-"))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        p = _page(browser, url)
        _fill(p, "epochs", 1)
        _fill(p, "steps-per-epoch", 20)
        for backend in args.backends.split(","):
            p.click(f'#backend [data-testid="{backend}-radio-label"]')
            times = []
            for k in range(2):
                if k:
                    time.sleep(args.idle)
                times.append(_train_until(p, _NEW_CURVE))
                p.wait_for_function(
                    "() => document.querySelector('#status').innerText.includes('Finished')", timeout=120_000
                )
            print(
                f"{backend}: Train to first curve {times[0]:.1f} s (right after choosing the backend), "
                f"{times[1]:.1f} s (again after {args.idle:g} s)"
            )
        # 2-D: change a learning rate, press Train, see the new paths drawn to the end.
        _choose(p, "task", "quadratic")
        _fill(p, "steps-2d", 300)
        for lr in ("0.01", "0.02", "0.03"):
            time.sleep(args.idle)
            _fill(p, "opt1-learning_rate", lr)
            seconds = _train_until(p, _NEW_FINISHED)
            print(
                f"2-D quadratic on {args.backends.split(',')[-1]}, 300 steps, learning rate {lr}: "
                f"Train to the finished paths {seconds:.1f} s"
            )
        browser.close()
    demo.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--first-curve", action="store_true")
    parser.add_argument("--backend", default=os.environ.get("KERAS_BACKEND", "jax"))
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--optimizers", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--steps-per-epoch", type=int, default=250)
    parser.add_argument("--idle", type=float, default=15.0, help="--first-curve: seconds between Trains")
    parser.add_argument("--verbose", action="store_true", help="print every sample")
    parser.add_argument("--no-second-session", dest="second_session", action="store_false")
    args = parser.parse_args()
    (first_curve if args.first_curve else lag)(args)


if __name__ == "__main__":
    main()
