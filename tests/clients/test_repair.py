"""`granary repair refcounts` on the data directory a kill -9 left in the middle of an upload.

The upload's first blocks were written and counted, its object never committed: their
counts are leaked (nothing references them, GC never frees them). The repair, run on the
stopped node, finds exactly those blocks, sets their counts, and the node's GC then frees
them, while every object, copy, multipart object and open multipart upload stays whole.
"""

import hashlib
import json
import os
import socket

from conftest import GranaryServer, granary_binary_path
from helpers import MiB, wait_for
from test_http_wire import signed_put
from test_operations import cli, run_granary

BUCKET = "repair"
LEAKED_BLOCKS = 3


def repair(server, *extra):
    return run_granary("repair", "refcounts", "--data-dir", str(server.data_dir), *extra,
                       timeout=120)


def stats(server):
    return [s["storage"] for s in json.loads(cli(server, "stats", extra=["--json"]))]


def digest(b):
    return hashlib.sha256(b).hexdigest()


def test_repair_frees_what_a_killed_upload_leaked_and_keeps_every_object(tmp_path):
    server = GranaryServer(granary_binary_path(), tmp_path)
    server.extra_args = ["--block-gc-delay-s", "0"]
    server.start()
    try:
        s3 = server.client()
        s3.create_bucket(Bucket=BUCKET)
        bodies = {
            "inline": os.urandom(5000),
            "one-block": os.urandom(MiB - 3),
            "blocks": os.urandom(3 * MiB + 7),
        }
        for key, body in bodies.items():
            s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        s3.copy_object(Bucket=BUCKET, Key="copy", CopySource={"Bucket": BUCKET, "Key": "blocks"})
        bodies["copy"] = bodies["blocks"]
        parts = [os.urandom(5 * MiB + 1), os.urandom(MiB + 2)]
        up = s3.create_multipart_upload(Bucket=BUCKET, Key="multipart")["UploadId"]
        done = [{"PartNumber": i + 1, "ETag": s3.upload_part(
            Bucket=BUCKET, Key="multipart", UploadId=up, PartNumber=i + 1, Body=p)["ETag"]}
            for i, p in enumerate(parts)]
        s3.complete_multipart_upload(Bucket=BUCKET, Key="multipart", UploadId=up,
                                     MultipartUpload={"Parts": done})
        bodies["multipart"] = b"".join(parts)
        open_part = os.urandom(5 * MiB + 3)
        open_id = s3.create_multipart_upload(Bucket=BUCKET, Key="open")["UploadId"]
        open_etag = s3.upload_part(Bucket=BUCKET, Key="open", UploadId=open_id, PartNumber=1,
                                   Body=open_part)["ETag"]

        # The leak: a PUT of 8 MiB whose body stops after 3 MiB and a byte. Its three
        # full blocks are written; then the node is killed before the object commits.
        written = lambda: sum(s["data_batch_blocks"] for s in stats(server))  # noqa: E731
        before = written()
        body = os.urandom(8 * MiB)
        sock = socket.create_connection(("127.0.0.1", server.s3_port), timeout=15)
        sock.sendall(signed_put(server, BUCKET, "killed", body))
        sock.sendall(body[:LEAKED_BLOCKS * MiB + 1])
        wait_for(lambda: written() >= before + LEAKED_BLOCKS, "the killed upload's blocks")

        # While the node runs, the repair refuses its data directory.
        busy = repair(server)
        assert busy.returncode != 0 and "in use by another process" in busy.stderr, busy.stderr

        server.proc.kill()
        server.proc.wait(30)
        sock.close()

        report = repair(server)
        print(report.stdout)
        assert report.returncode == 0, report.stderr
        assert f"leaked: {LEAKED_BLOCKS} blocks" in report.stdout, report.stdout
        assert "short: 0 blocks" in report.stdout and "missing: 0 blocks" in report.stdout
        assert "run again with --fix" in report.stdout, report.stdout
        fixed = repair(server, "--fix")
        assert fixed.returncode == 0, fixed.stderr
        assert f"set {LEAKED_BLOCKS} counts" in fixed.stdout, fixed.stdout
        again = repair(server)
        assert again.returncode == 0 and "consistent" in again.stdout, again.stdout

        server.start()
        blocks_before_gc = sum(s["blocks"] for s in stats(server))
        cli(server, "gc")
        wait_for(lambda: sum(s["blocks"] for s in stats(server))
                 == blocks_before_gc - LEAKED_BLOCKS, "GC of the leaked blocks")

        s3 = server.client()
        for key, want in bodies.items():
            got = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
            assert digest(got) == digest(want), key
        s3.complete_multipart_upload(
            Bucket=BUCKET, Key="open", UploadId=open_id,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": open_etag}]})
        got = s3.get_object(Bucket=BUCKET, Key="open")["Body"].read()
        assert digest(got) == digest(open_part)
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
        assert keys == set(bodies) | {"open"}
    finally:
        server.stop()
