"""Smoke mode of the benchmark suite (tools/bench): every experiment runs for seconds, on
tiny sizes, against the session's server, so the tools never rot. It measures nothing:
it checks that each experiment completes without a failed request and that the result
documents (the run's, and `compare`'s) have the documented shape.

tools/test.sh builds the tool; GRANARY_BENCH_BIN points at another build.
"""

import base64
import json
import os
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from conftest import REPO, clean_env

S3_EXPERIMENTS = ["lat", "ttfb", "million", "mixed", "large"]


def bench_binary():
    path = Path(
        os.environ.get(
            "GRANARY_BENCH_BIN", REPO / "tools" / "bench" / "target" / "debug" / "granary-bench"
        )
    )
    if not path.exists():
        pytest.fail(
            f"granary-bench not found at {path}: "
            "cargo build --manifest-path tools/bench/Cargo.toml (tools/test.sh does)",
            pytrace=False,
        )
    return path


def run_bench(args, server, timeout=240):
    env = clean_env()
    env["AWS_ACCESS_KEY_ID"] = server.access_key
    env["AWS_SECRET_ACCESS_KEY"] = server.secret_key
    proc = subprocess.run(
        [str(bench_binary()), *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, (
        f"granary-bench {' '.join(map(str, args))} failed ({proc.returncode})\n"
        f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}"
    )
    return proc


def run_plot(results, charts):
    """tools/bench/plot.py on a results directory (named as run.sh names its files): the
    names of the charts it wrote, each as PNG and SVG."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "bench" / "plot.py"), str(results), str(charts)],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"plot.py failed\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    pngs = {p.stem for p in charts.glob("*.png") if p.stat().st_size > 0}
    svgs = {p.stem for p in charts.glob("*.svg") if p.stat().st_size > 0}
    assert pngs == svgs, (pngs, svgs)
    return pngs


def test_bench_all_smoke(server, tmp_path):
    out = tmp_path / "granary.json"
    proc = run_bench(
        ["all", "--smoke", "--endpoint", server.endpoint, "--label", "granary",
         "--json-out", out, "--raw-dir", tmp_path],
        server,
    )
    doc = json.loads(out.read_text())
    assert doc["tool"] == "granary-bench" and doc["schema"] == 1
    assert doc["label"] == "granary" and doc["smoke"] is True
    assert doc["machine"]["cores"] >= 1
    assert sorted(doc["experiments"]) == sorted(S3_EXPERIMENTS + ["raw"])

    for name in S3_EXPERIMENTS:
        exp = doc["experiments"][name]
        assert "error" not in exp, exp
        assert exp["rows"], name
        for row in exp["rows"]:
            if "count" in row:
                assert row["count"] > 0, (name, row)
            assert row["errors"] == 0, (name, row)
        # Every table is printed.
        assert f"## {name}" in proc.stdout

    lat = {r["op"]: r for r in doc["experiments"]["lat"]["rows"]}
    assert set(lat) == {"PutObject", "GetObject", "ListObjects", "ListBuckets", "DeleteObject"}
    assert all(r["p50_ms"] > 0 and r["p99_ms"] >= r["p50_ms"] for r in lat.values())

    ttfb = doc["experiments"]["ttfb"]
    for r in ttfb["rows"]:
        assert 0 < r["ttfb_p50_ms"] <= r["total_p50_ms"]

    million = doc["experiments"]["million"]
    w = million["workload"]
    assert len(million["rows"]) == w["batches"]
    assert million["summary"]["objects"] == w["batches"] * w["batch_size"]

    mixed = {r["op"]: r for r in doc["experiments"]["mixed"]["rows"]}
    assert mixed["total"]["count"] == sum(mixed[o]["count"] for o in ("GET", "STAT", "PUT", "DELETE"))
    assert all(mixed[o]["count"] > 0 for o in ("GET", "STAT", "PUT", "DELETE"))

    large = doc["experiments"]["large"]
    assert large["summary"]["put_mb_per_s"] > 0 and large["summary"]["get_mb_per_s"] > 0
    # Every GET returned the whole object.
    get = [r for r in large["rows"] if r["op"] == "GET"][0]
    assert get["bytes"] == large["workload"]["size"] * large["workload"]["count"]

    raw = doc["experiments"]["raw"]
    assert "error" not in raw, raw
    assert all(r["mb_per_s"] > 0 for r in raw["rows"])
    assert raw["loopback_gbit_1"] > 0 and raw["md5_gb_per_s"] > 0 and raw["sha256_gb_per_s"] > 0
    # The PUT limit: large's PUTs into a sink that receives and hashes, and one that only
    # receives; the same workload as large's.
    sink = raw["put_sink"]
    assert [r["hashes"] for r in sink["rows"]] == ["MD5", "no hash"]
    assert sink["mb_per_s"] > 0 and sink["no_hash_mb_per_s"] > 0
    assert sink["workload"]["size"] == large["workload"]["size"]
    # fio's file is removed.
    assert not list(tmp_path.glob("granary-bench-fio-*"))

    # The experiments clean up after themselves: none of their buckets is left.
    names = [b["Name"] for b in server.client().list_buckets()["Buckets"]]
    assert not [n for n in names if n.startswith("gb-")], names

    # compare reads two result files and writes ratios; against itself every ratio is 1.
    cmp_out = tmp_path / "compare.json"
    run_bench(["compare", out, out, "--json-out", cmp_out], server)
    cmp = json.loads(cmp_out.read_text())
    assert cmp["kind"] == "compare" and cmp["rows"]
    same = [r for r in cmp["rows"] if r["other_name"] == "granary" and "batch" not in r["what"]]
    assert same and all(abs(r["ratio"] - 1) < 1e-9 for r in same if r["ratio"] is not None)

    # plot.py draws every experiment of the run, and large's limit from compare's sink row.
    results = tmp_path / "results"
    results.mkdir()
    shutil.copy(out, results / "granary-1.json")
    shutil.copy(cmp_out, results / "compare.json")
    charts = run_plot(results, tmp_path / "charts")
    assert charts == set(S3_EXPERIMENTS)
    assert "limit: sink that receives + MD5" in (tmp_path / "charts" / "large.svg").read_text()


PAYLOAD_MODES = {
    "signed": ["--signed-payload"],
    "crc32": ["--checksum", "crc32"],
    "signed-crc32": ["--signed-payload", "--checksum", "crc32"],
}


@pytest.mark.parametrize("mode", PAYLOAD_MODES)
def test_bench_payload_modes_smoke(server, tmp_path, mode):
    """Signed payloads (SHA-256 of each body in the signature) and the checksum header real
    clients send (x-amz-checksum-crc32, signed) are accepted. With the checksum, the store
    verified each PUT's CRC32 and keeps it: HeadObject returns the one of the bytes GET
    returns."""
    flags = PAYLOAD_MODES[mode]
    out = tmp_path / "large.json"
    large, left = run_keeping_objects(
        server, ["large", "--smoke", *flags, "--json-out", out], out, "large", read_back=True
    )
    w = large["workload"]
    crc32 = "crc32" in flags
    assert w["signed_payload"] is ("--signed-payload" in flags)
    assert w["checksum"] == ("crc32" if crc32 else "none")
    assert w["hashes"] == "MD5" + (" + SHA-256" if w["signed_payload"] else "") + (
        " + CRC32" if crc32 else ""
    )
    assert all(r["errors"] == 0 for r in large["rows"])
    assert left
    for bucket, key, head, body in left:
        want = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
        assert head.get("ChecksumCRC32") == (want if crc32 else None), (bucket, key)


def run_keeping_objects(server, args, out, exp, read_back=False):
    """Runs the bench with --no-cleanup; returns the experiment's record and, for each object
    it left, (bucket, key, HeadObject with checksums asked for, body) (the last two with
    `read_back`, else None), and removes them."""
    s3 = server.client()
    before = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    run_bench([*args, "--no-cleanup", "--endpoint", server.endpoint], server)
    record = json.loads(out.read_text())["experiments"][exp]
    buckets = [b["Name"] for b in s3.list_buckets()["Buckets"] if b["Name"] not in before]
    left = []
    for bucket in buckets:  # removed even when the caller's checks fail
        keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
                for o in page.get("Contents", [])]
        for k in keys:
            head = body = None
            if read_back:
                head = s3.head_object(Bucket=bucket, Key=k, ChecksumMode="ENABLED")
                body = s3.get_object(Bucket=bucket, Key=k)["Body"].read()
            left.append((bucket, k, head, body))
            s3.delete_object(Bucket=bucket, Key=k)
        s3.delete_bucket(Bucket=bucket)
    assert len(buckets) == 1, buckets
    return record, left


def million_keys_left(server, tmp_path, flag, record_as):
    """Runs million's smoke mode with `flag`, keeping its objects; returns the run's record
    and the keys it left, and removes them."""
    out = tmp_path / f"{record_as}.json"
    record, left = run_keeping_objects(
        server,
        ["million", "--smoke", flag, "--record-as", record_as, "--json-out", out],
        out,
        record_as,
    )
    assert all(r["errors"] == 0 for r in record["rows"])
    return record, [key for _, key, _, _ in left]


def test_bench_million_same_keys_smoke(server, tmp_path):
    """million's control (--same-keys) rewrites one batch's keys in every batch: the store
    ends with one batch of objects, however many batches ran."""
    control, keys = million_keys_left(server, tmp_path, "--same-keys", "million_control")
    w = control["workload"]
    assert w["same_keys"] is True and w["batches"] > 1
    assert len(keys) == w["batch_size"]
    assert all(k.startswith("m/00000/") for k in keys)


def test_bench_million_random_keys_smoke(server, tmp_path):
    """--random-keys names every object by a hash of its number: as many distinct keys as
    objects written, spread over the key space instead of batch after batch."""
    rnd, keys = million_keys_left(server, tmp_path, "--random-keys", "million_random")
    w = rnd["workload"]
    assert w["random_keys"] is True and w["batches"] > 1
    assert len(keys) == len(set(keys)) == w["batches"] * w["batch_size"]
    assert all(k.startswith("r/") and len(k) == 18 for k in keys)
    # The first batch's keys are spread over the listing, not its first page.
    first_batch = {random_key(n) for n in range(w["batch_size"])}
    assert first_batch <= set(keys)
    assert set(sorted(keys)[: w["batch_size"]]) != first_batch
    # Run as both stores' million (run.sh's MILLION_FLAGS), compare names the key order
    # and sets the growth of the two side by side.
    doc = json.loads((tmp_path / "million_random.json").read_text())
    doc["experiments"] = {"million": doc["experiments"]["million_random"]}
    shared = tmp_path / "million.json"
    shared.write_text(json.dumps(doc))
    cmp_out = tmp_path / "compare.json"
    run_bench(["compare", shared, shared, "--json-out", cmp_out], server)
    rows = {r["what"]: r for r in json.loads(cmp_out.read_text())["rows"]}
    n = w["batches"] * w["batch_size"]
    total = rows[f"million ({n} objects, random keys) total s (ratio = peer/ours, speed-up)"]
    assert total["ours"] == total["other"] == rnd["summary"]["total_s"]
    trend = rows["million last eighth / first eighth of the batches, time"]
    assert trend["ours"] == trend["other"] == rnd["summary"]["last_eighth_over_first_eighth"]
    # A run of million alone (run.sh with RUNS=0) charts million only.
    results = tmp_path / "results"
    results.mkdir()
    shutil.copy(shared, results / "granary-million.json")
    assert run_plot(results, tmp_path / "charts") == {"million"}


def random_key(n):
    """million's key for object `n` under --random-keys (splitmix64's finalizer)."""
    mask = (1 << 64) - 1
    z = (n + 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return f"r/{z ^ (z >> 31):016x}"


def test_bench_noise_smoke(server, tmp_path):
    """noise (the machine's own spread: fixed memory-bound work, no store) runs without an
    endpoint's credentials and records every batch; compare sets million's spread beside it."""
    out = tmp_path / "noise.json"
    args = ["noise", "--smoke", "--json-out", out]
    proc = subprocess.run([str(bench_binary()), *map(str, args)], env=clean_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    noise = json.loads(out.read_text())["experiments"]["noise"]
    w, s = noise["workload"], noise["summary"]
    assert len(noise["rows"]) == w["batches"] and w["steps_per_batch"] > 0
    assert all(r["secs"] > 0 for r in noise["rows"])
    assert s["max_over_first"] >= 1 and s["max_over_median"] >= 1

    # A full million (here in smoke size) is judged beside it, and carries the target.
    million = tmp_path / "million.json"
    run_bench(["million", "--smoke", "--record-as", "million_full", "--endpoint",
               server.endpoint, "--json-out", million], server)
    full = json.loads(million.read_text())["experiments"]["million_full"]
    cmp_out = tmp_path / "compare.json"
    run_bench(["compare", f"{million},{out}", million, "--json-out", cmp_out], server)
    rows = {r["what"]: r for r in json.loads(cmp_out.read_text())["rows"]}
    n = full["workload"]["batches"] * full["workload"]["batch_size"]
    row = rows[f"million full ({n} objects) slowest batch / first"]
    assert row["other"] == s["max_over_first"] and row["other_name"] == "noise: fixed work"
    assert row["ours"] == full["summary"]["max_over_first"] and row["target"] == "≤ 1.100"
    assert row["pass"] == (row["ours"] <= 1.1)
    assert rows["million full slowest batch / median"]["other"] == s["max_over_median"]
