"""Turn the workers' JSON into the markdown tables and a flat CSV.

python -m benchmarks.report benchmarks/results/<run>/     # reprint a past run
"""

from __future__ import annotations

import csv
import json
import os
import sys

PARAM_BYTES = 4  # float32

IMPLS_TORCH = ("torch_foreach", "torch_fused")


def load(directory: str) -> dict:
    runs = {}
    for name in sorted(os.listdir(directory)):
        if name.endswith(".json") and name != "summary.json":
            with open(os.path.join(directory, name)) as f:
                data = json.load(f)
            runs[data["environment"]["backend"]] = data
    return runs


def _index(records):
    return {(r["bench"], r["size"], r["row"], r["impl"]): r for r in records}


def derive(runs: dict) -> list:
    """Per (backend, bench, size, row): keras_adaptive's time, its ratios and its bound."""
    out = []
    for backend, data in runs.items():
        idx = _index(data["records"])
        order = {"1M": 0, "16M": 1, "mlp": 2, "lstm": 3}
        keys = sorted({(b, s, r) for (b, s, r, _) in idx}, key=lambda k: (k[0], order.get(k[1], 9), k[2]))
        for bench, size, row in keys:
            ka = idx.get((bench, size, row, "keras_adaptive"))
            if ka is None:
                continue
            ker = idx.get((bench, size, row, "keras"))
            d = {
                "backend": backend,
                "bench": bench,
                "size": size,
                "row": row,
                "label": ka["label"],
                "ka_ms": ka["median_ms"],
                "keras_ms": ker["median_ms"] if ker else None,
                "ka_first_ms": ka["first_call_ms"],
                "keras_first_ms": ker["first_call_ms"] if ker else None,
                "torch_path": ka.get("torch_path"),
            }
            d["ratio_vs_keras"] = d["ka_ms"] / d["keras_ms"] if d["keras_ms"] else None
            if bench == "apply":
                peers = {
                    i: idx[(bench, size, row, i)]["median_ms"]
                    for i in IMPLS_TORCH + ("optax",)
                    if (bench, size, row, i) in idx
                }
                d.update({f"{i}_ms": t for i, t in peers.items()})
                torch_times = [peers[i] for i in IMPLS_TORCH if i in peers]
                d["best_torch_ms"] = min(torch_times) if torch_times else None
                d["ratio_vs_best_torch"] = d["ka_ms"] / d["best_torch_ms"] if torch_times else None
                d["ratio_vs_optax"] = d["ka_ms"] / peers["optax"] if "optax" in peers else None
                bws = [
                    idx[(bench, size, row, i)]["bandwidth_GBps"]
                    for i in ("bandwidth_numpy", "bandwidth_native")
                    if (bench, size, row, i) in idx
                ]
                bw = max(bws) if bws else None
                slot_bytes = ka.get("slot_bytes", 0)
                moved = 3 * ka["params"] * PARAM_BYTES + 2 * slot_bytes
                d.update(
                    {
                        "params": ka["params"],
                        "state_bytes": ka.get("state_bytes"),
                        "slot_bytes": slot_bytes,
                        "slots_per_weight": slot_bytes / (ka["params"] * PARAM_BYTES),
                        "keras_slots_per_weight": (ker or {}).get("slot_bytes", 0) / (ka["params"] * PARAM_BYTES),
                        "bytes_moved": moved,
                        "bandwidth_GBps": bw,
                        "ka_peak_extra_MB": (ka.get("peak_extra_bytes") or 0) / 2**20,
                        "keras_peak_extra_MB": ((ker or {}).get("peak_extra_bytes") or 0) / 2**20,
                        "ka_faults": ka.get("minor_faults_per_step"),
                        "keras_faults": (ker or {}).get("minor_faults_per_step"),
                    }
                )
                if bw:
                    d["bound_ms"] = moved / (bw * 1e9) * 1e3
                    d["ka_x_bound"] = d["ka_ms"] / d["bound_ms"]
                    d["ka_fraction_of_bound"] = d["bound_ms"] / d["ka_ms"]
                    for i in IMPLS_TORCH + ("optax", "keras"):
                        t = peers.get(i) if i != "keras" else d["keras_ms"]
                        if t:
                            d[f"{i}_fraction_of_bound"] = d["bound_ms"] / t
            out.append(d)
    return out


def _f(x, digits=2):
    if x is None:
        return ""
    if isinstance(x, str):
        return x
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.{digits}f}"


def markdown(runs: dict) -> str:
    rows = derive(runs)
    lines = []
    for backend in runs:
        env = runs[backend]["environment"]
        lines.append(
            f"### {backend}" + ("" if runs[backend].get("complete", True) else " (interrupted run: partial)") + "\n"
        )
        versions = ", ".join(f"{k} {env[k]}" for k in ("keras", "torch", "jax", "optax", "tensorflow") if k in env)
        lines.append(
            f"{versions}; {env.get('cpu')}, {env.get('cpus')} CPUs; load average "
            f"{' '.join(runs[backend].get('loadavg_start', []))} at start, "
            f"{' '.join(runs[backend].get('loadavg_end', []))} at end; "
            f"malloc env {env.get('malloc_env') or 'default'}; "
            f"{env.get('torch_threads', env.get('threads')) or 'default'} intra-op threads."
        )
        others = [r["others_cpu"] for r in runs[backend]["records"] if r.get("others_cpu") is not None]
        if others:
            others.sort()
            lines.append(
                f"Other processes used a median {others[len(others) // 2]:.2f} CPUs during the timed rounds "
                f"(max {others[-1]:.2f}).\n"
            )
        apply_rows = [d for d in rows if d["backend"] == backend and d["bench"] == "apply"]
        if apply_rows:
            peer_cols = []
            if backend == "torch":
                peer_cols = [
                    ("torch foreach", "torch_foreach_ms"),
                    ("torch fused", "torch_fused_ms"),
                    ("ka / best torch", "ratio_vs_best_torch"),
                ]
            if backend == "jax":
                peer_cols = [("optax", "optax_ms"), ("ka / optax", "ratio_vs_optax")]
            head = (
                ["size", "optimizer", "keras_adaptive ms", "Keras ms", "ka / Keras"]
                + [c for c, _ in peer_cols]
                + [
                    "bound ms",
                    "ka x bound",
                    "slots/weight (Keras)",
                    "peak extra MB ka / Keras",
                    "first call ms ka / Keras",
                ]
            )
            if backend == "torch":
                head.append("torch path")
            lines.append("| " + " | ".join(head) + " |")
            lines.append("|" + "---|" * len(head))
            for d in apply_rows:
                cells = [d["size"], d["label"], _f(d["ka_ms"]), _f(d["keras_ms"]), _f(d["ratio_vs_keras"])]
                cells += [_f(d.get(k)) for _, k in peer_cols]
                cells += [
                    _f(d.get("bound_ms")),
                    _f(d.get("ka_x_bound")),
                    f"{d['slots_per_weight']:.0f} ({d['keras_slots_per_weight']:.0f})",
                    f"{d['ka_peak_extra_MB']:.0f} / {d['keras_peak_extra_MB']:.0f}",
                    f"{_f(d['ka_first_ms'], 0)} / {_f(d['keras_first_ms'], 0)}",
                ]
                if backend == "torch":
                    cells.append(d.get("torch_path") or "")
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
        fit_rows = [d for d in rows if d["backend"] == backend and d["bench"] == "fit"]
        if fit_rows:
            lines.append(
                "| model.fit step | optimizer | keras_adaptive ms | Keras ms | ka / Keras | first epoch s ka / Keras |"
            )
            lines.append("|---|---|---|---|---|---|")
            for d in fit_rows:
                lines.append(
                    f"| {d['size']} | {d['label']} | {_f(d['ka_ms'])} | {_f(d['keras_ms'])} | "
                    f"{_f(d['ratio_vs_keras'])} | {d['ka_first_ms'] / 1e3:.1f} / {d['keras_first_ms'] / 1e3:.1f} |"
                )
            lines.append("")
        bw = [r for r in runs[backend]["records"] if r["impl"].startswith("bandwidth") and r["size"] == "16M"]
        if bw:
            vals = ", ".join(f"{r['impl'].split('_')[1]} {r['bandwidth_GBps']:.1f}" for r in bw)
            lines.append(f"In-place bandwidth probes (GB/s) interleaved with the 16M groups: {vals}.\n")
    return "\n".join(lines)


def write_csv(runs: dict, path: str) -> None:
    records = [r for data in runs.values() for r in data["records"]]
    fields = sorted({k for r in records for k in r})
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(records)


def main(argv=None) -> None:
    directory = (argv or sys.argv[1:])[0]
    runs = load(directory)
    print(markdown(runs))


if __name__ == "__main__":
    main()
