#!/usr/bin/env python3
"""Charts from a run of tools/bench/run.sh.

    tools/bench/plot.py RESULTS_DIR [CHART_DIR]      (CHART_DIR default docs/bench)

Reads granary-*.json, garage-*.json (the documented granary-bench schema) and
compare.json; writes lat, ttfb, million, mixed and large as PNG and SVG. Each figure is
the median over the runs, as in compare. Without matplotlib it makes tools/bench/.venv,
installs matplotlib there and runs again with it.
"""

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv"

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    if os.environ.get("GRANARY_PLOT_BOOTSTRAPPED"):
        sys.exit("matplotlib still missing after installing it into " + str(VENV))
    vpy = VENV / "bin" / "python"
    if not (vpy.exists() and subprocess.call([str(vpy), "-c", "import matplotlib"]) == 0):
        print(f"[plot] installing matplotlib into {VENV}", file=sys.stderr)
        subprocess.check_call([sys.executable, "-m", "venv", str(VENV)])
        subprocess.check_call([str(VENV / "bin" / "pip"), "install", "-q", "matplotlib>=3.7,<4"])
    os.environ["GRANARY_PLOT_BOOTSTRAPPED"] = "1"
    os.execv(str(VENV / "bin" / "python"), [str(VENV / "bin" / "python"), __file__, *sys.argv[1:]])

COLORS = {"granary": "#2b7bba", "garage": "#e3842b", "limit": "#888888"}
# million's series of Granary alone (run.sh), beside the two stores' "million".
MILLION_ALONE = ("million_full", "million_random", "million_control")


def load(results, label):
    docs = []
    for p in sorted(results.glob(f"{label}-*.json")):
        docs.append(json.loads(p.read_text()))
    return docs


def exps(docs, name):
    return [d["experiments"][name] for d in docs if name in d.get("experiments", {})
            and "error" not in d["experiments"][name]]


def med(values):
    v = [x for x in values if isinstance(x, (int, float))]
    return statistics.median(v) if v else float("nan")


def row(exp, key, val):
    for r in exp.get("rows", []):
        if r.get(key) == val:
            return r
    return {}


def size_label(b):
    if b >= 1 << 20:
        m = b / (1 << 20)
        return f"{m:g} MiB"
    if b >= 1024:
        return f"{b / 1024:g} KiB"
    return f"{b} B"


def save(fig, out, name):
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(out / f"{name}.{ext}", dpi=110)
    plt.close(fig)
    print(f"[plot] {out / name}.png/.svg")


def fmt_value(v):
    if v != v:  # NaN
        return ""
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def bars(ax, groups, series, ylabel, title, log=False):
    """groups: x labels; series: [(label, color, [values])]."""
    n = len(series)
    width = 0.8 / n
    for i, (label, color, values) in enumerate(series):
        values = [float("nan") if v is None else v for v in values]
        xs = [g + (i - (n - 1) / 2) * width for g in range(len(groups))]
        b = ax.bar(xs, values, width, label=label, color=color)
        ax.bar_label(b, labels=[fmt_value(v) for v in values], fontsize=7, padding=1)
    ax.set_xticks(range(len(groups)), groups, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if log:
        ax.set_yscale("log")
    ax.legend(fontsize=8)


def plot_lat(stores, out):
    ops = ["PutObject", "GetObject", "ListObjects", "ListBuckets", "DeleteObject"]
    netsim = any(exps(d, "lat_netsim") for d in stores.values())
    panels = 3 if netsim else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4))
    for ax, q in zip(axes, ["p50_ms", "p99_ms"]):
        series = []
        for label, docs in stores.items():
            e = exps(docs, "lat")
            series.append((label, COLORS[label], [med(row(x, "op", op).get(q) for x in e) for op in ops]))
        bars(ax, ops, series, "ms (log scale)", f"lat on loopback: one request at a time, {q[:3]}",
             log=True)
    if netsim:
        series = []
        for label, docs in stores.items():
            e = exps(docs, "lat_netsim")
            series.append((label, COLORS[label],
                           [med(row(x, "op", op).get("p50_ms") / x["rtt_ms"] for x in e
                                if row(x, "op", op)) for op in ops]))
        bars(axes[2], ops, series, "p50 / round trip",
             "lat with a 50 ms round trip (netsim): p50 in round trips")
    save(fig, out, "lat")


def plot_ttfb(stores, out):
    panels = [("ttfb", "loopback"), ("ttfb_netsim", "5 Mbit/s link (netsim)")]
    panels = [p for p in panels if any(exps(d, p[0]) for d in stores.values())]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (name, title) in zip(axes[0], panels):
        sizes = []
        for docs in stores.values():
            for e in exps(docs, name):
                sizes = [r["size"] for r in e["rows"]]
                break
        series = []
        for label, docs in stores.items():
            e = exps(docs, name)
            series.append((f"{label} first byte", COLORS[label],
                           [med(row(x, "size", s).get("ttfb_p50_ms") for x in e) for s in sizes]))
        bars(ax, [size_label(s) for s in sizes], series, "ms",
             f"GetObject time to first byte, {title}")
    save(fig, out, "ttfb")


def plot_million(stores, out):
    if any(exps(docs, n) for docs in stores.values() for n in MILLION_ALONE + ("noise",)):
        fig, (ax, rel) = plt.subplots(1, 2, figsize=(13, 4),
                                      gridspec_kw={"width_ratios": [3, 2]})
    else:  # the two stores' million only: no series of Granary's alone to set apart
        fig, ax = plt.subplots(figsize=(9, 4))
        rel = None
    # Right: Granary's series over their own first batch, beside the target's band.
    def relative(e, label, **style):
        ys = [r["secs"] for r in e["rows"]]
        rel.plot(range(len(ys)), [y / ys[0] for y in ys], label=label, lw=0.8, **style)
    for label, docs in stores.items():
        for e in exps(docs, "million"):
            xs = [r["batch"] for r in e["rows"]]
            ys = [r["secs"] for r in e["rows"]]
            ax.plot(xs, ys, label=label, color=COLORS[label], lw=1.2)
            w = e["workload"]
            keys = ", keys in random order" if w.get("random_keys") else ""
            ax.set_title(f"million: batches of {w['batch_size']} objects of "
                         f"{w['size']} B, concurrency {w['concurrency']}{keys}", fontsize=10)
        for e in exps(docs, "million_full"):
            xs = [r["batch"] for r in e["rows"]]
            ys = [r["secs"] for r in e["rows"]]
            n = e["workload"]["batches"] * e["workload"]["batch_size"]
            ax.plot(xs, ys, label=f"{label}, {n:,} objects, fresh data dir", color=COLORS[label],
                    lw=0.8, ls="--")
            relative(e, f"{label}, {n:,} objects", color=COLORS[label], ls="--")
        for e in exps(docs, "million_random"):
            xs = [r["batch"] for r in e["rows"]]
            ys = [r["secs"] for r in e["rows"]]
            n = e["workload"]["batches"] * e["workload"]["batch_size"]
            ax.plot(xs, ys, label=f"{label}, {n:,} objects, keys in random order",
                    color="#7b3294", lw=0.8)
            relative(e, f"{label}, random keys", color="#7b3294")
        for e in exps(docs, "million_control"):
            xs = [r["batch"] for r in e["rows"]]
            ys = [r["secs"] for r in e["rows"]]
            n = e["workload"]["batch_size"]
            ax.plot(xs, ys, label=f"{label}, control: the same {n:,} keys rewritten",
                    color="gray", lw=0.8, ls=":")
            relative(e, "control (same keys)", color="gray", ls=":")
        for e in exps(docs, "noise"):
            xs = [r["batch"] for r in e["rows"]]
            ys = [r["secs"] for r in e["rows"]]
            ax.plot(xs, ys, label="the machine: fixed memory-bound work, no store (noise)",
                    color="black", lw=0.6, ls="-.")
            relative(e, "the machine (noise)", color="black", ls="-.")
    ax.set_xlabel("batch")
    ax.set_ylabel("seconds per batch (log scale)")
    ax.set_yscale("log")
    ax.set_ylim(bottom=None)
    ax.legend(fontsize=8)
    if rel is not None:
        rel.axhspan(0.9, 1.1, color="green", alpha=0.08, label="within 10 % of the first")
        rel.axhline(1.1, color="green", lw=0.6)
        rel.set_title("each series over its own first batch", fontsize=10)
        rel.set_xlabel("batch")
        rel.set_ylabel("batch time / first batch")
        rel.legend(fontsize=7)
    save(fig, out, "million")


def plot_mixed(stores, out):
    ops = ["GET", "STAT", "PUT", "DELETE", "total"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (q, ylabel, log) in zip(axes, [("ops_per_s", "operations per second", False),
                                           ("p99_ms", "p99 latency, ms (log scale)", True)]):
        series = []
        w = None
        for label, docs in stores.items():
            e = exps(docs, "mixed")
            if e:
                w = e[0]["workload"]
            series.append((label, COLORS[label], [med(row(x, "op", op).get(q) for x in e) for op in ops]))
        title = "mixed"
        if w:
            title += f": {size_label(w['size'])} objects, concurrency {w['concurrency']}, {w['mix']}"
        bars(ax, ops, series, ylabel, title, log=log)
    save(fig, out, "mixed")


def plot_large(stores, out, results):
    cmp_path = results / "compare.json"
    limits = {}
    if cmp_path.exists():
        for r in json.loads(cmp_path.read_text())["rows"]:
            # The target's PUT limit: the same PUTs into a sink that only receives and
            # hashes (compare's "vs a sink" row).
            if r["what"].startswith("large PUT MB/s vs a sink"):
                limits["PUT"] = r["other"]
            if r["what"].startswith("large GET MB/s vs fio"):
                limits["GET"] = r["other"]
    series = []
    w = None
    for label, docs in stores.items():
        e = exps(docs, "large")
        if e:
            w = e[0]["workload"]
        series.append((label, COLORS[label], [med(x["summary"]["put_mb_per_s"] for x in e),
                                              med(x["summary"]["get_mb_per_s"] for x in e)]))
    if limits:
        # What the PUTs required the sink to hash (older files name only signing).
        hashes = (w or {}).get("hashes") or ("MD5 + SHA-256" if w and w.get("signed_payload")
                                             else "MD5")
        series.append((f"limit: sink that receives + {hashes} / fio read", COLORS["limit"],
                       [limits.get("PUT", float("nan")), limits.get("GET", float("nan"))]))
    fig, ax = plt.subplots(figsize=(7, 4))
    title = "large objects"
    if w:
        title += f": {size_label(w['size'])}, concurrency {w['concurrency']}"
    bars(ax, ["PUT", "GET"], series, "MB/s", title)
    save(fig, out, "large")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    results = Path(sys.argv[1])
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else HERE.parent.parent / "docs" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    stores = {label: load(results, label) for label in ("granary", "garage")}
    stores = {k: v for k, v in stores.items() if v}
    if not stores:
        sys.exit(f"no granary-*.json or garage-*.json in {results}")
    # A partial run (run.sh with RUNS=0, or MILLION_BATCHES=0) charts what it has.
    def ran(*names):
        return any(exps(docs, n) for docs in stores.values() for n in names)
    if ran("lat"):
        plot_lat(stores, out)
    if ran("ttfb", "ttfb_netsim"):
        plot_ttfb(stores, out)
    if ran("million", *MILLION_ALONE):
        plot_million(stores, out)
    if ran("mixed"):
        plot_mixed(stores, out)
    if ran("large"):
        plot_large(stores, out, results)


if __name__ == "__main__":
    main()
