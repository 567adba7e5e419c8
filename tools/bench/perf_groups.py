#!/usr/bin/env python3
"""Groups a `perf record` profile of the server by where the CPU went (MD5, blake3, crc32c,
copies, kernel parts), as docs/bench/s3-end-to-end.md shows it.

    perf record -e cpu-clock -F 999 -g -p <granary pid> -o perf.data   # during a bench
    tools/bench/perf_groups.py perf.data
"""
import subprocess, re, collections, sys
out = subprocess.run(["perf","report","-i",sys.argv[1],"--no-children","--sort","symbol","--stdio","-g","none"],capture_output=True,text=True).stdout
cats = collections.OrderedDict([
 ("MD5 (md5-many lanes and single stream)", r"md5_many|fearless_simd"),
 ("blake3 (block names)", r"blake3"),
 ("crc32c (record chunks)", r"crc32c|crc_u64"),
 ("memcpy/memmove (user space copies)", r"memmove|memcpy"),
 ("memset (zeroing read buffers)", r"memset"),
 ("kernel: TCP receive copy", r"_copy_to_iter|_copy_from_iter|skb_copy|copy_user"),
 ("kernel: scheduling, wakeups, IPIs", r"finish_task_switch|_raw_spin_unlock|schedule|smp_call_function|native_write_msr|membarrier|try_to_wake"),
 ("kernel: other", r"^\[k\]"),
 ("other user space", r""),
])
tot = collections.Counter()
for line in out.splitlines():
    m = re.match(r"\s+([\d.]+)%\s+(\[[.k]\])\s+(.*)", line)
    if not m: continue
    pct, kind, sym = float(m.group(1)), m.group(2), m.group(3).strip()
    for c, pat in cats.items():
        if c == "kernel: other":
            if kind == "[k]": tot[c] += pct; break
            continue
        if c == "other user space" or re.search(pat, sym):
            tot[c] += pct; break
for c in cats:
    print(f"| {c} | {tot[c]:.1f} % |")
