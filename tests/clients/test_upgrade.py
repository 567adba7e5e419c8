"""Upgrades (issue 21): a data directory written by the last release of metadata format 1
is migrated at first start, and one of a format this build does not know is refused with
a clear message, never misread.

The format-1 directory is `fixtures/format1-datadir.tar.gz`, made by that release's binary
(`fixtures/make_format1.py` says how): objects of every kind at two shards, then more at one
shard, which format 1 could not survive (it hid the odd partitions). After the upgrade every
object reads back identical and is listed, bucket settings and keys work, and the upload
left open completes.
"""

import hashlib
import json
import subprocess
import tarfile
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from conftest import GranaryServer, granary_binary_path

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "format1-datadir.tar.gz"


def unpack(tmp_path):
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(tmp_path, filter="data")
    return json.loads((tmp_path / "manifest.json").read_text())


def listed(s3, bucket):
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


@pytest.mark.parametrize("shards", [2, 3])
def test_a_format_1_directory_is_migrated_with_every_object(tmp_path, shards):
    manifest = unpack(tmp_path)
    server = GranaryServer(granary_binary_path(), tmp_path)
    server.access_key, server.secret_key = manifest["access_key"], manifest["secret_key"]
    server.shards = shards
    try:
        server.start()
        log = server.log_path.read_text(errors="replace")
        assert "migrating a data directory written by an earlier release" in log, log[-2000:]
        s3 = server.client()
        want = manifest["objects"]
        for bucket in ("photos", "site"):
            expected = sorted(k.split("/", 1)[1] for k in want if k.startswith(bucket + "/"))
            assert listed(s3, bucket) == expected, bucket
        for name, digest in want.items():
            bucket, key = name.split("/", 1)
            got = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            assert hashlib.sha256(got).hexdigest() == digest, name
        tags = s3.get_bucket_tagging(Bucket="site")["TagSet"]
        assert tags == [{"Key": "team", "Value": "web"}]
        assert s3.get_bucket_cors(Bucket="site")["CORSRules"][0]["AllowedOrigins"] == \
            ["https://example.com"]
        assert s3.get_bucket_website(Bucket="site")["IndexDocument"]["Suffix"] == "index.html"
        up = manifest["open_upload"]
        s3.complete_multipart_upload(
            Bucket="photos", Key=up["key"], UploadId=up["upload_id"],
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": up["etag"]}]})
        got = s3.get_object(Bucket="photos", Key=up["key"])["Body"].read()
        assert hashlib.sha256(got).hexdigest() == up["sha256"]
        # Writes and deletes go on as usual; a restart needs no second migration.
        s3.put_object(Bucket="photos", Key="after-upgrade", Body=b"new")
        s3.delete_object(Bucket="photos", Key="big")
        server.restart()
        log = server.log_path.read_text(errors="replace")
        assert log.count("migrating a data directory written by an earlier release") == 1
        s3 = server.client()
        assert s3.get_object(Bucket="photos", Key="after-upgrade")["Body"].read() == b"new"
        with pytest.raises(ClientError):
            s3.head_object(Bucket="photos", Key="big")
        # The repair finds every block held as the rows say.
        server.stop()
        report = subprocess.run(
            [str(granary_binary_path()), "repair", "refcounts", "--data-dir",
             str(server.data_dir)], capture_output=True, text=True, timeout=120)
        assert report.returncode == 0, report.stderr
        assert "short: 0 blocks" in report.stdout and "missing: 0 blocks" in report.stdout, \
            report.stdout
    finally:
        server.stop()


def test_a_directory_of_an_unknown_format_is_refused(tmp_path):
    server = GranaryServer(granary_binary_path(), tmp_path)
    server.start()
    server.stop()
    node_file = server.data_dir / "node.json"
    node = json.loads(node_file.read_text())
    node["format"] = 99
    node_file.write_text(json.dumps(node))
    result = subprocess.run(server.command(), capture_output=True, text=True, timeout=30,
                            cwd=server.workdir)
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert "format 99" in out and "written by another release" in out, out
