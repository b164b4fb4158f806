"""`keras-adaptive-gui`: serve the comparison page.

This module stays light at import (no gradio, no keras): worker processes are started
with `spawn`, which re-imports the main module, and this is the main module of the
console script.
"""

from __future__ import annotations

import argparse
import os
import signal
from collections.abc import Sequence


def resolve_mnist(path: str | None, download: bool = True) -> tuple[str, str]:
    """The MNIST file the workers will read, and a sentence saying what it is.

    `path` if given; else the full set through `keras.datasets` (its cache, or a download
    when `download`); else the sample shipped with keras_adaptive.
    """
    from keras_adaptive import datasets

    data = datasets.load_mnist(path, download=download)
    if path:
        return os.path.abspath(path), f"{data.source} ({len(data.x_train):,} train / {len(data.x_test):,} test images)"
    if data.source == datasets.SAMPLE_DESCRIPTION:
        return datasets.sample_path(), data.source + " — no full MNIST found (use --mnist PATH)"
    home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    cached = os.path.join(home, "datasets", "mnist.npz")
    return cached, f"{data.source} ({len(data.x_train):,} train / {len(data.x_test):,} test images)"


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="keras-adaptive-gui", description="Compare keras_adaptive optimizers live in the browser."
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1, this machine only)"
    )
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--mnist", metavar="PATH", help="an MNIST .npz in the keras.datasets layout")
    parser.add_argument("--no-download", action="store_true", help="do not try to download MNIST")
    parser.add_argument(
        "--backend",
        default=os.environ.get("KERAS_BACKEND", "tensorflow"),
        help="backend selected when the page opens (default: $KERAS_BACKEND or tensorflow)",
    )
    parser.add_argument(
        "--results", default="results", metavar="DIR", help="folder for the visitors' run bundles (default results/)"
    )
    parser.add_argument(
        "--max-workers", type=int, default=None, help="worker processes at once over all sessions (default 4)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.mnist and not os.path.isfile(args.mnist):
        raise SystemExit(f"--mnist {args.mnist!r}: no such file.")
    from keras_adaptive_gui import engine, page

    limits = engine.LIMITS
    if args.max_workers is not None:
        if args.max_workers < 1:
            raise SystemExit("--max-workers must be at least 1.")
        limits = engine.Limits(max_workers=args.max_workers)
    mnist_path, source = resolve_mnist(args.mnist, download=not args.no_download)
    demo = page.build(mnist_path, source, default_backend=args.backend, limits=limits, results_dir=args.results)
    demo.queue(default_concurrency_limit=16)
    print(f"keras-adaptive-gui: data: {source}", flush=True)
    # SIGTERM ends the server like Ctrl-C, so the worker processes are ended with it.
    signal.signal(signal.SIGTERM, _interrupt)
    page.launch(demo, server_name=args.host, server_port=args.port, footer_links=["gradio"], show_error=True)


if __name__ == "__main__":
    main()
