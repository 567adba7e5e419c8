#!/usr/bin/env python3
"""million, batch by batch, beside what the server did in each batch.

    tools/bench/million_commits.py [BATCHES]      (default 40)

Starts a release Granary on a fresh data directory (loopback ports 39211-39213), runs
`granary-bench million --batches BATCHES` against it, and at the end of every batch (as the
tool prints the batch's line) reads the server's /metrics and its threads' context switches.
Prints one row per batch (time, server CPU, LMDB commits, inserts per commit, seconds spent
committing, voluntary and involuntary context switches) and how batch time and server CPU
correlate with each. docs/bench/s3-end-to-end.md ("Where Granary is behind") cites its output.
"""

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GRANARY = os.path.join(ROOT, "target/release/granary")
BENCH = os.path.join(ROOT, "tools/bench/target/release/granary-bench")
KEY, SECRET = "GKbenchkey0000000001", "benchsecretbenchsecretbenchsecret0001"
METRICS = "http://127.0.0.1:39212/metrics"
COUNTERS = [
    "granary_meta_commits_total",
    "granary_meta_commit_ops_total",
    "granary_meta_commit_seconds_total",
]


def counter(text, name):
    """The sum of a counter over its label sets (one per shard)."""
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


def context_switches(pid):
    vol = invol = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            status = open(f"/proc/{pid}/task/{tid}/status").read()
        except OSError:
            continue  # the thread ended
        vol += int(re.search(r"^voluntary_ctxt_switches:\s+(\d+)", status, re.M).group(1))
        invol += int(re.search(r"^nonvoluntary_ctxt_switches:\s+(\d+)", status, re.M).group(1))
    return vol, invol


def snapshot(pid):
    text = urllib.request.urlopen(METRICS).read().decode()
    return [counter(text, c) for c in COUNTERS] + list(context_switches(pid))


def correlation(a, b):
    ma, mb = statistics.mean(a), statistics.mean(b)
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b)) / len(a)
    return cov / (statistics.pstdev(a) * statistics.pstdev(b))


def main():
    batches = sys.argv[1] if len(sys.argv) > 1 else "40"
    data = tempfile.mkdtemp(dir="/var/tmp", prefix="granary-commits.")
    env = dict(os.environ, GRANARY_ROOT_ACCESS_KEY_ID=KEY, GRANARY_ROOT_SECRET_ACCESS_KEY=SECRET)
    server = subprocess.Popen(
        [GRANARY, "server", "--data-dir", data, "--s3-addr", "127.0.0.1:39211",
         "--admin-addr", "127.0.0.1:39212", "--web-addr", "127.0.0.1:39213"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    rows = []
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(METRICS)
                break
            except OSError:
                time.sleep(0.1)
        client = subprocess.Popen(
            [BENCH, "million", "--endpoint", "http://127.0.0.1:39211", "--batches", batches,
             "--server-pid", str(server.pid)],
            stdout=subprocess.PIPE, text=True,
            env=dict(os.environ, AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET))
        prev = snapshot(server.pid)
        for line in client.stdout:
            m = re.match(r"batch\s+\d+:\s+([\d.]+) s.*server CPU ([\d.]+)", line)
            if not m:
                continue
            now = snapshot(server.pid)
            rows.append([float(m.group(1)), float(m.group(2))]
                        + [b - a for a, b in zip(prev, now)])
            prev = now
        client.wait()
    finally:
        server.terminate()
        server.wait()
        subprocess.run(["rm", "-rf", data], check=False)
    print("secs  cpu_s commits ins/commit commit_s  vcs  ivcs")
    for secs, cpu, commits, ops, commit_s, vcs, ivcs in rows:
        print(f"{secs:.3f} {cpu:5.2f} {commits:7.0f} {ops / max(commits, 1):10.1f} "
              f"{commit_s:8.3f} {vcs:5.0f} {ivcs:5.0f}")
    cols = list(zip(*rows))
    for i, name in [(2, "commits"), (4, "commit seconds"), (5, "voluntary switches"),
                    (6, "involuntary switches")]:
        print(f"r(batch time, {name}) = {correlation(cols[0], cols[i]):.2f}   "
              f"r(server CPU, {name}) = {correlation(cols[1], cols[i]):.2f}")


if __name__ == "__main__":
    main()
