"""Everything acknowledged before a restart is there after it, byte for byte."""

import hashlib
import os

import pytest

from helpers import MiB, error_code
from botocore.exceptions import ClientError

SIZES = [0, 1, 3071, 3072, 3073, MiB - 1, MiB, MiB + 1, 9 * MiB]


@pytest.mark.slow
def test_restart_keeps_buckets_objects_metadata_and_open_uploads(server, bucket):
    s3 = server.client()
    objects = {f"obj/{size}": os.urandom(size) for size in SIZES}
    for key, data in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=data)
    s3.put_object(Bucket=bucket, Key="meta", Body=b"m", ContentType="text/x-kept",
                  Metadata={"kept": "yes"})
    s3.put_object(Bucket=bucket, Key="overwritten", Body=b"first")
    s3.put_object(Bucket=bucket, Key="overwritten", Body=b"second")
    s3.put_object(Bucket=bucket, Key="deleted", Body=b"x")
    s3.delete_object(Bucket=bucket, Key="deleted")

    # A completed multipart object...
    parts = [os.urandom(5 * MiB), os.urandom(1000)]
    uid = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    etags = [s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=n, Body=d)["ETag"]
             for n, d in enumerate(parts, 1)]
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]},
    )
    objects["mp"] = b"".join(parts)

    # ...and one still in progress when the server goes down.
    open_parts = [os.urandom(5 * MiB), os.urandom(777)]
    open_uid = s3.create_multipart_upload(Bucket=bucket, Key="open")["UploadId"]
    e1 = s3.upload_part(Bucket=bucket, Key="open", UploadId=open_uid, PartNumber=1,
                        Body=open_parts[0])["ETag"]

    empty_bucket = bucket[:50] + "-empty"
    s3.create_bucket(Bucket=empty_bucket)
    before = {o["Key"]: (o["ETag"], o["Size"])
              for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}

    server.restart()
    s3 = server.client()

    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert bucket in names and empty_bucket in names
    s3.delete_bucket(Bucket=empty_bucket)

    after = {o["Key"]: (o["ETag"], o["Size"])
             for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert after == before
    for key, data in objects.items():
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == hashlib.sha256(data).hexdigest(), key
    assert s3.head_object(Bucket=bucket, Key="mp")["ETag"] == done["ETag"]
    head = s3.head_object(Bucket=bucket, Key="meta")
    assert head["ContentType"] == "text/x-kept" and head["Metadata"] == {"kept": "yes"}
    assert s3.get_object(Bucket=bucket, Key="overwritten")["Body"].read() == b"second"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="deleted")
    assert error_code(e) == "NoSuchKey"

    # The upload that was open carries on where it stopped.
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [("open", open_uid)]
    listed = s3.list_parts(Bucket=bucket, Key="open", UploadId=open_uid)["Parts"]
    assert [(p["PartNumber"], p["ETag"]) for p in listed] == [(1, e1)]
    e2 = s3.upload_part(Bucket=bucket, Key="open", UploadId=open_uid, PartNumber=2,
                        Body=open_parts[1])["ETag"]
    s3.complete_multipart_upload(
        Bucket=bucket, Key="open", UploadId=open_uid,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]},
    )
    assert s3.get_object(Bucket=bucket, Key="open")["Body"].read() == b"".join(open_parts)


def test_restart_then_aws_cli_reads_what_boto3_wrote(server, s3, aws, bucket, tmp_path):
    data = os.urandom(2 * MiB + 5)
    s3.put_object(Bucket=bucket, Key="x/y", Body=data)
    server.restart()
    out = tmp_path / "y"
    aws("s3", "cp", "--only-show-errors", f"s3://{bucket}/x/y", out)
    assert out.read_bytes() == data


def test_second_server_on_the_same_data_dir_is_refused(server, bucket):
    """A second `granary server` on a data directory in use (say a manual run beside the
    systemd unit) must not start: two processes appending to the same segments would
    corrupt them. It exits with a clear error naming the holder; the first keeps serving."""
    import subprocess
    from conftest import GranaryServer, clean_env

    second = GranaryServer(server.binary, server.workdir / "second")
    second.data_dir = server.data_dir
    env = clean_env()
    env["GRANARY_ROOT_ACCESS_KEY_ID"] = server.access_key
    env["GRANARY_ROOT_SECRET_ACCESS_KEY"] = server.secret_key
    out = subprocess.run(second.command(), env=env, capture_output=True, text=True,
                         timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode != 0, out.stderr[-2000:]
    assert "in use by another process" in out.stderr, out.stderr[-2000:]
    assert f"(pid {server.proc.pid})" in out.stderr, out.stderr[-2000:]
    s3 = server.client()
    s3.put_object(Bucket=bucket, Key="still-here", Body=b"yes")
    assert s3.get_object(Bucket=bucket, Key="still-here")["Body"].read() == b"yes"
