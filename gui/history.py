"""Run history: every run kept as a run bundle (`engine.Comparison.save_bundle`: config.json
and records.csv) in a results folder, one folder per visitor.

    <results>/visitors/<visitor id>/<run id>/{config.json, records.csv}

A visitor is a browser: its id is a random 32-hex-digit string kept in that browser's
localStorage (encrypted with this results folder's own secret, so it survives a server
restart), and only ids of that form and run ids of `engine.is_run_id`'s form ever reach a
path. A visitor lists, opens and deletes only the bundles in its own folder.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
import threading

from keras_adaptive_gui import engine

_VISITOR = re.compile(r"^[0-9a-f]{32}$")
MAX_BUNDLE_BYTES = 50_000_000


def new_visitor_id() -> str:
    return secrets.token_hex(16)


def is_visitor_id(text: object) -> bool:
    return isinstance(text, str) and bool(_VISITOR.match(text))


class Store:
    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self._cache: dict[tuple[str, str], engine.Comparison] = {}
        self._lock = threading.Lock()

    def secret(self) -> str:
        """This results folder's secret for the browsers' visitor ids (made once, kept in the folder)."""
        path = os.path.join(self.root, ".visitor-secret")
        os.makedirs(self.root, exist_ok=True)
        if not os.path.exists(path):
            with open(path, "w") as f:
                f.write(secrets.token_hex(16))
            os.chmod(path, 0o600)
        with open(path) as f:
            return f.read().strip()

    def folder(self, visitor: str) -> str:
        if not is_visitor_id(visitor):
            raise ValueError("This browser has no visitor id yet: reload the page.")
        return os.path.join(self.root, "visitors", visitor)

    def save(self, visitor: str, comparison: engine.Comparison) -> str:
        folder = self.folder(visitor) if is_visitor_id(visitor) else os.path.join(self.root, "unclaimed")
        return comparison.save_bundle(folder)

    def run_ids(self, visitor: str) -> list[str]:
        if not is_visitor_id(visitor):
            return []
        folder = self.folder(visitor)
        if not os.path.isdir(folder):
            return []
        return sorted((r for r in os.listdir(folder) if engine.is_run_id(r)), reverse=True)

    def load(self, visitor: str, run_id: str) -> engine.Comparison | None:
        if not (is_visitor_id(visitor) and engine.is_run_id(run_id)):
            return None
        key = (visitor, run_id)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        path = os.path.join(self.folder(visitor), run_id)
        if not os.path.isdir(path):
            return None
        try:
            comparison = engine.load_bundle(path)
        except ValueError:
            return None
        with self._lock:
            self._cache[key] = comparison
        return comparison

    def choices(self, visitor: str) -> list[tuple[str, str]]:
        """(label, run id) of the visitor's runs, newest first."""
        out = []
        for run_id in self.run_ids(visitor):
            c = self.load(visitor, run_id)
            if c is None:
                continue
            labels = ", ".join(o.label for o in c.config.optimizers)
            outcome = "stopped" if c.stopped and not c.finished_before_stop() else "finished"
            out.append(
                (f"{c.created[5:16]} · {c.config.task} · {labels} · {', '.join(c.config.backends)} ({outcome})", run_id)
            )
        return out

    def delete(self, visitor: str, run_id: str) -> bool:
        if not (is_visitor_id(visitor) and engine.is_run_id(run_id)):
            return False
        path = os.path.join(self.folder(visitor), run_id)
        if not os.path.isdir(path):
            return False
        shutil.rmtree(path, ignore_errors=True)
        with self._lock:
            self._cache.pop((visitor, run_id), None)
        return True

    def open(self, visitor: str, paths: list) -> str:
        """Copy an uploaded bundle (its config.json and records.csv) into the visitor's folder
        and return its run id; ValueError says what is wrong with the files."""
        by_name = {}
        for path in paths or []:
            path = str(path)
            if os.path.getsize(path) > MAX_BUNDLE_BYTES:
                raise ValueError(f"{os.path.basename(path)} is larger than {MAX_BUNDLE_BYTES // 1_000_000} MB.")
            name = (
                engine.CONFIG_FILE if path.endswith(".json") else engine.RECORDS_FILE if path.endswith(".csv") else None
            )
            if name is None:
                raise ValueError(f"{os.path.basename(path)} is neither a config.json nor a records.csv.")
            by_name[name] = path
        missing = {engine.CONFIG_FILE, engine.RECORDS_FILE} - set(by_name)
        if missing:
            raise ValueError(
                f"A run bundle is two files, config.json and records.csv: {' and '.join(sorted(missing))} missing."
            )
        with tempfile.TemporaryDirectory() as scratch:
            for name, path in by_name.items():
                shutil.copyfile(path, os.path.join(scratch, name))
            comparison = engine.load_bundle(scratch)  # ValueError if it cannot be read
            run_id = comparison.run_id if engine.is_run_id(comparison.run_id) else engine.new_run_id()
            target = os.path.join(self.folder(visitor), run_id)
            os.makedirs(target, exist_ok=True)
            for name in by_name:
                shutil.copyfile(os.path.join(scratch, name), os.path.join(target, name))
        return run_id
