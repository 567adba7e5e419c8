"""Lifecycle rules with boto3 and the AWS CLI, observed on a server whose lifecycle "day"
lasts one second (`--lifecycle-day-secs 1`, a documented test flag) and which scans every
second (`--lifecycle-scan-interval-s 1`): objects under an expiring prefix vanish, others
stay; incomplete multipart uploads under an abort rule are aborted, others stay."""

import datetime as dt
import os
import json
import subprocess
import sys
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from conftest import GranaryServer, clean_env, granary_binary_path
from helpers import REGION, error_code, wait_for


class FastLifecycleServer(GranaryServer):
    def command(self):
        return super().command() + ["--lifecycle-day-secs", "1",
                                    "--lifecycle-scan-interval-s", "1"]


@pytest.fixture(scope="module")
def fast(tmp_path_factory):
    srv = FastLifecycleServer(granary_binary_path(), tmp_path_factory.mktemp("lifecycle"))
    srv.start()
    yield srv
    srv.stop()


def keys(s3, bucket):
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def upload_keys(s3, bucket):
    return sorted(u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []))


def test_expiration_and_abort_rules_are_applied(fast):
    s3 = fast.client()
    bucket = "lifecycle-apply"
    s3.create_bucket(Bucket=bucket)
    for k in ["tmp/a", "tmp/b/c", "keep/a", "tmpx", "other"]:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    stale = s3.create_multipart_upload(Bucket=bucket, Key="uploads/stale")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="uploads/stale", UploadId=stale, PartNumber=1,
                   Body=b"x" * 1000)
    s3.create_multipart_upload(Bucket=bucket, Key="keep/upload")
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [
        {"ID": "expire-tmp", "Filter": {"Prefix": "tmp/"}, "Status": "Enabled",
         "Expiration": {"Days": 2}},
        {"ID": "abort", "Filter": {"Prefix": "uploads/"}, "Status": "Enabled",
         "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}},
        {"ID": "disabled", "Filter": {"Prefix": "keep/"}, "Status": "Disabled",
         "Expiration": {"Days": 1}},
    ]})
    wait_for(lambda: keys(s3, bucket) == ["keep/a", "other", "tmpx"], "expiry of tmp/")
    wait_for(lambda: upload_keys(s3, bucket) == ["keep/upload"], "abort of uploads/")
    with pytest.raises(ClientError) as e:
        s3.list_parts(Bucket=bucket, Key="uploads/stale", UploadId=stale)
    assert error_code(e) == "NoSuchUpload"
    # A new object under the prefix expires in its turn; the others stay.
    s3.put_object(Bucket=bucket, Key="tmp/new", Body=b"n")
    assert "tmp/new" in keys(s3, bucket)
    wait_for(lambda: "tmp/new" not in keys(s3, bucket), "expiry of tmp/new")
    assert keys(s3, bucket) == ["keep/a", "other", "tmpx"]
    assert "lifecycle pass" in fast.log_path.read_text(errors="replace")
    # The work shows in the metrics, summed over shards.
    import urllib.request

    url = f"http://127.0.0.1:{fast.admin_port}/metrics"
    text = urllib.request.urlopen(url, timeout=10).read().decode()

    def total(name):
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(name + "{"))

    assert total("granary_lifecycle_expired_objects_total") >= 3
    assert total("granary_lifecycle_aborted_uploads_total") >= 1
    assert total("granary_lifecycle_passes_total") >= 1


def test_legacy_prefix_and_dates(fast):
    s3 = fast.client()
    bucket = "lifecycle-legacy"
    s3.create_bucket(Bucket=bucket)
    for k in ["old/1", "old/2", "new/1"]:
        s3.put_object(Bucket=bucket, Key=k, Body=b"x")
    # The deprecated API sends the legacy <Prefix> element.
    s3.put_bucket_lifecycle(Bucket=bucket, LifecycleConfiguration={"Rules": [
        {"ID": "legacy", "Prefix": "old/", "Status": "Enabled", "Expiration": {"Days": 1}}]})
    got = s3.get_bucket_lifecycle(Bucket=bucket)["Rules"]
    assert got[0]["Prefix"] == "old/" and got[0]["Expiration"]["Days"] == 1
    wait_for(lambda: keys(s3, bucket) == ["new/1"], "expiry of old/ (legacy prefix)")
    # A date in the past expires at once; whole bucket (empty filter).
    midnight = dt.datetime.now(dt.timezone.utc).replace(hour=0, minute=0, second=0,
                                                         microsecond=0)
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [
        {"ID": "dated", "Filter": {}, "Status": "Enabled", "Expiration": {"Date": midnight}}]})
    wait_for(lambda: keys(s3, bucket) == [], "expiry by date")


def test_configuration_round_trip_and_errors(fast):
    s3 = fast.client()
    bucket = "lifecycle-config"
    s3.create_bucket(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert error_code(e) == "NoSuchLifecycleConfiguration"
    rules = [
        {"ID": "a", "Filter": {"Prefix": "logs/"}, "Status": "Enabled",
         "Expiration": {"Days": 30}},
        {"ID": "b", "Filter": {"And": {"Prefix": "tmp/"}}, "Status": "Enabled",
         "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}},
    ]
    s3.put_bucket_lifecycle_configuration(Bucket=bucket,
                                          LifecycleConfiguration={"Rules": rules})
    got = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert [(r["ID"], r["Filter"]["Prefix"], r["Status"]) for r in got] == [
        ("a", "logs/", "Enabled"), ("b", "tmp/", "Enabled")]
    assert got[0]["Expiration"]["Days"] == 30
    assert got[1]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 7
    # Objects under an expiration rule say when they expire (x-amz-expiration).
    put = s3.put_object(Bucket=bucket, Key="logs/x", Body=b"x")
    assert 'rule-id="a"' in put["Expiration"] and "expiry-date=" in put["Expiration"]
    head = s3.head_object(Bucket=bucket, Key="logs/x")
    assert head["Expiration"] == put["Expiration"]
    s3.put_object(Bucket=bucket, Key="other", Body=b"x")
    assert "Expiration" not in s3.head_object(Bucket=bucket, Key="other")
    # The AWS CLI sees the same.
    env = clean_env()
    env.update({"AWS_ACCESS_KEY_ID": fast.access_key, "AWS_SECRET_ACCESS_KEY": fast.secret_key,
                "AWS_DEFAULT_REGION": REGION})
    aws = Path(sys.executable).parent / "aws"
    out = subprocess.run([str(aws), "--endpoint-url", fast.endpoint, "s3api",
                          "get-bucket-lifecycle-configuration", "--bucket", bucket],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert [r["ID"] for r in json.loads(out.stdout)["Rules"]] == ["a", "b"]

    def code(rules):
        with pytest.raises(ClientError) as e:
            s3.put_bucket_lifecycle_configuration(Bucket=bucket,
                                                  LifecycleConfiguration={"Rules": rules})
        return error_code(e)

    assert code([{"ID": "t", "Filter": {"Tag": {"Key": "k", "Value": "v"}},
                  "Status": "Enabled", "Expiration": {"Days": 1}}]) == "NotImplemented"
    assert code([{"ID": "t", "Filter": {"Prefix": ""}, "Status": "Enabled",
                  "Transitions": [{"Days": 1, "StorageClass": "GLACIER"}]}]) == "NotImplemented"
    assert code([{"ID": "t", "Filter": {"Prefix": ""}, "Status": "Enabled",
                  "Expiration": {"Days": 0}}]) == "InvalidArgument"
    assert code([{"ID": "t", "Filter": {"Prefix": ""}, "Status": "Enabled",
                  "Expiration": {"Date": dt.datetime(2030, 1, 1, 12, tzinfo=dt.timezone.utc)}}]
                ) == "InvalidArgument"
    # A refused configuration leaves the stored one.
    assert len(s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]) == 2
    s3.delete_bucket_lifecycle(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert error_code(e) == "NoSuchLifecycleConfiguration"


def test_many_objects_and_large_ones_expire_in_batches(fast):
    """More objects than one batch of a shard's scan, and objects stored in blocks."""
    from concurrent.futures import ThreadPoolExecutor

    s3 = fast.client(max_pool_connections=16)
    bucket = "lifecycle-many"
    s3.create_bucket(Bucket=bucket)
    names = [f"bulk/{i:04}" for i in range(700)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=k.encode()), names))
    big = os.urandom(3 * 1024 * 1024 + 5)
    s3.put_object(Bucket=bucket, Key="bulk/big", Body=big)
    s3.put_object(Bucket=bucket, Key="stay/big", Body=big)
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [
        {"ID": "bulk", "Filter": {"Prefix": "bulk/"}, "Status": "Enabled",
         "Expiration": {"Days": 1}}]})

    def remaining():
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return [o["Key"] for p in pages for o in p.get("Contents", [])]

    wait_for(lambda: remaining() == ["stay/big"], "expiry of 701 objects")
    assert s3.get_object(Bucket=bucket, Key="stay/big")["Body"].read() == big
