"""Placement is data: a node started with another shard count moves partitions between its
shards before it serves, and loses nothing (issue 21).

Before, a node started with `--shards 2`, written to, and restarted with `--shards 1`
listed 9 of 21 objects and answered 404 for the rest; objects written at one shard then
sat on the wrong shard once back at two. Here the shard count goes 2 → 1 → 3 with writes at
each step, a SIGKILL lands in the middle of one move, and at the end every acknowledged
object reads back identical and every listing is complete.
"""

import hashlib
import os
import random
import signal
import time

from conftest import GranaryServer, granary_binary_path
from helpers import KiB, MiB

BUCKET = "placement"


def digest(b):
    return hashlib.sha256(b).hexdigest()


def write_some(s3, written, tag, count, big=0):
    """`count` objects of assorted sizes (inline, one block, several), plus `big` bytes."""
    rng = random.Random(tag)
    for i in range(count):
        size = rng.choice([10, 2 * KiB, 50 * KiB, 700 * KiB, MiB + 3])
        key = f"{tag}/{i:03d}"
        body = os.urandom(size)
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        written[key] = digest(body)
    if big:
        body = os.urandom(big)
        s3.put_object(Bucket=BUCKET, Key=f"{tag}/big", Body=body)
        written[f"{tag}/big"] = digest(body)
    # A multipart object: parts live with the upload until the Complete.
    key = f"{tag}/multipart"
    parts = [os.urandom(5 * MiB), os.urandom(MiB + 1)]
    up = s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    done = [{"PartNumber": i + 1, "ETag": s3.upload_part(
        Bucket=BUCKET, Key=key, UploadId=up, PartNumber=i + 1, Body=p)["ETag"]}
        for i, p in enumerate(parts)]
    s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=up,
                                 MultipartUpload={"Parts": done})
    written[key] = digest(b"".join(parts))


def assert_complete(s3, written):
    listed = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        listed |= {o["Key"] for o in page.get("Contents", [])}
    assert listed == set(written), (sorted(set(written) - listed), sorted(listed - set(written)))
    # Small pages cross the merge of partitions and shards many times.
    paged = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=BUCKET, PaginationConfig={"PageSize": 7}) for o in page.get("Contents", [])]
    assert paged == sorted(written)
    for key, want in written.items():
        got = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert digest(got) == want, key


def shard_dir_names(server):
    return sorted(p.name for p in server.data_dir.iterdir() if p.name.startswith("shard-"))


def wait_for_log(server, text, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in server.log_path.read_text(errors="replace"):
            return True
        if server.proc.poll() is not None:
            return False
        time.sleep(0.01)
    return False


def test_changing_the_shard_count_moves_partitions_and_loses_nothing(tmp_path):
    server = GranaryServer(granary_binary_path(), tmp_path)
    written = {}
    try:
        server.start()
        s3 = server.client()
        s3.create_bucket(Bucket=BUCKET)
        write_some(s3, written, "at-2", 21, big=3 * MiB)
        # An upload left open moves with its parts, and completes after the moves.
        open_body = os.urandom(5 * MiB + 5)
        open_id = s3.create_multipart_upload(Bucket=BUCKET, Key="open")["UploadId"]
        open_etag = s3.upload_part(Bucket=BUCKET, Key="open", UploadId=open_id,
                                   PartNumber=1, Body=open_body)["ETag"]

        server.stop()
        server.shards = 1
        server.start()
        s3 = server.client()
        assert_complete(s3, written)
        # Once every partition left it, the second shard's directory is gone.
        assert shard_dir_names(server) == ["shard-0"]
        write_some(s3, written, "at-1", 15, big=20 * MiB)
        assert_complete(s3, written)

        # To three shards, killed while partitions move; the next start finishes.
        server.stop()
        server.shards = 3
        server.launch()
        assert wait_for_log(server, "moving partitions between shards"), "no move started"
        time.sleep(random.Random(3).uniform(0.0, 0.3))
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(30)
        log_text = server.log_path.read_text(errors="replace")
        print("killed during the move; moved before the kill:",
              log_text.count("partitions moved"))
        server.start()
        s3 = server.client()
        assert_complete(s3, written)
        write_some(s3, written, "at-3", 12)
        s3.complete_multipart_upload(
            Bucket=BUCKET, Key="open", UploadId=open_id,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": open_etag}]})
        written["open"] = digest(open_body)
        assert_complete(s3, written)

        # And back to two, asked to stop while partitions move (or just after: moves are
        # fast here): a stop ends the move
        # between two partitions, and the next start finishes it; nothing moves twice
        # into a wrong place.
        server.stop()
        server.shards = 2
        server.launch()
        assert wait_for_log(server, "moving partitions between shards"), "no move started"
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(30)
        server.start()
        assert_complete(server.client(), written)
        assert shard_dir_names(server) == ["shard-0", "shard-1"]
    finally:
        server.stop()
