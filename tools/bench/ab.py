"""The report of tools/bench/ab.sh: each figure's pairwise ratios (B/A and the A/A control
A2/A, one pair per round) and their medians, as a Markdown table.

    python3 tools/bench/ab.py OUT_DIR
"""

import glob
import json
import re
import statistics
import sys
from pathlib import Path


def figures(doc):
    """The figures of one result document: name → value (higher is better)."""
    out = {}
    for name, exp in doc.get("experiments", {}).items():
        if "error" in exp:
            continue
        if name == "large":
            out["large PUT MB/s"] = exp["summary"]["put_mb_per_s"]
            out["large GET MB/s"] = exp["summary"]["get_mb_per_s"]
        elif name == "mixed":
            ops = sum(r.get("ops_per_s") or 0 for r in exp["rows"] if r.get("op") != "total")
            out["mixed ops/s"] = ops
        elif name == "million":
            random = exp.get("workload", {}).get("random_keys")
            label = "million, random keys" if random else "million"
            out[f"{label} objects/s"] = exp["summary"]["objects_per_s"]
    return out


def load(out_dir):
    """side → round → figures."""
    runs = {}
    for path in glob.glob(str(Path(out_dir) / "*.json")):
        m = re.match(r"([\w-]+)-(a2|a|b)-(\d+)\.json$", Path(path).name)
        if not m:
            continue
        _, side, rnd = m.groups()
        runs.setdefault(side, {}).setdefault(int(rnd), {}).update(
            figures(json.loads(Path(path).read_text())))
    return runs


def main(out_dir):
    runs = load(out_dir)
    names = sorted({n for side in runs.values() for r in side.values() for n in r})
    print("| figure | A (median) | B (median) | B/A per round | median B/A | "
          "A2/A per round (control) | median A2/A |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in names:
        rounds = sorted(runs.get("a", {}))
        pairs = [(runs["a"][r].get(name), runs.get("b", {}).get(r, {}).get(name),
                  runs.get("a2", {}).get(r, {}).get(name)) for r in rounds]
        pairs = [p for p in pairs if p[0]]
        ab = [b / a for a, b, _ in pairs if b]
        aa = [c / a for a, _, c in pairs if c]
        med = lambda v: f"{statistics.median(v):.3f}" if v else "-"  # noqa: E731
        print(f"| {name} | {statistics.median([p[0] for p in pairs]):.1f} | "
              f"{statistics.median([p[1] for p in pairs if p[1]]):.1f} | "
              f"{' '.join(f'{x:.2f}' for x in ab)} | **{med(ab)}** | "
              f"{' '.join(f'{x:.2f}' for x in aa)} | {med(aa)} |")


if __name__ == "__main__":
    main(sys.argv[1])
