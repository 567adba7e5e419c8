"""boto3 with its default settings (flexible checksums on) against granary."""

import base64
import hashlib
import os
import subprocess
import time
import urllib.error
import urllib.request
import zlib
from datetime import datetime, timedelta, timezone

import botocore.auth
import pytest
import requests
from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from helpers import KiB, MiB, REGION, crc32c, crc64nvme, error_code


def md5_hex(data):
    return hashlib.md5(data).hexdigest()


# ----------------------------------------------------------------- objects


# Around the inline threshold (3 KiB), where a body stops going through a vector and is read
# straight into block buffers (64 KiB), and around the 1 MiB block size.
@pytest.mark.parametrize("size", [0, 1, 3 * KiB - 1, 3 * KiB, 3 * KiB + 1, 64 * KiB - 1, 64 * KiB,
                                  64 * KiB + 1, MiB - 1, MiB, MiB + 1, 2 * MiB + 4097])
def test_put_get_round_trips_bytes_and_etag_is_md5(s3, bucket, size):
    data = os.urandom(size)
    put = s3.put_object(Bucket=bucket, Key=f"obj-{size}", Body=data)
    assert put["ETag"] == f'"{md5_hex(data)}"'

    got = s3.get_object(Bucket=bucket, Key=f"obj-{size}")
    body = got["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    assert got["ContentLength"] == size
    assert got["ETag"] == put["ETag"]


def test_put_stores_and_returns_content_headers_and_user_metadata(s3, bucket):
    expires = datetime(2031, 2, 3, 4, 5, 6, tzinfo=timezone.utc)
    s3.put_object(
        Bucket=bucket, Key="meta", Body=b"hello",
        ContentType="text/x-granary", ContentEncoding="identity",
        ContentDisposition='inline; filename="meta.txt"', CacheControl="no-cache",
        Expires=expires, Metadata={"Project": "granary", "n": "1"},
    )
    for resp in (s3.head_object(Bucket=bucket, Key="meta"), s3.get_object(Bucket=bucket, Key="meta")):
        assert resp["ContentType"] == "text/x-granary"
        assert resp["ContentEncoding"] == "identity"
        assert resp["ContentDisposition"] == 'inline; filename="meta.txt"'
        assert resp["CacheControl"] == "no-cache"
        assert resp["ResponseMetadata"]["HTTPHeaders"]["expires"] == "Mon, 03 Feb 2031 04:05:06 GMT"
        assert resp["Metadata"] == {"project": "granary", "n": "1"}


def test_get_response_overrides_set_the_returned_headers(s3, bucket):
    s3.put_object(Bucket=bucket, Key="o", Body=b"data", ContentType="text/plain")
    got = s3.get_object(
        Bucket=bucket, Key="o",
        ResponseContentType="application/x-override",
        ResponseContentDisposition="attachment; filename=x",
        ResponseCacheControl="max-age=5",
    )
    assert got["ContentType"] == "application/x-override"
    assert got["ContentDisposition"] == "attachment; filename=x"
    assert got["CacheControl"] == "max-age=5"
    assert got["Body"].read() == b"data"


@pytest.mark.parametrize("algorithm", ["CRC32", "SHA1", "SHA256"])
def test_put_with_each_checksum_algorithm_is_accepted(s3, bucket, algorithm):
    data = os.urandom(100_000)
    s3.put_object(Bucket=bucket, Key=algorithm, Body=data, ChecksumAlgorithm=algorithm)
    got = s3.get_object(Bucket=bucket, Key=algorithm, ChecksumMode="ENABLED")
    assert got["Body"].read() == data


@pytest.mark.parametrize("algorithm", ["CRC32C", "CRC64NVME"])
def test_put_with_precomputed_crc32c_or_crc64nvme_is_accepted(s3, bucket, algorithm):
    # botocore computes these two only with awscrt installed; users who have it send the
    # same header, so pass the value computed here.
    data = os.urandom(20_000)
    if algorithm == "CRC32C":
        value = crc32c(data).to_bytes(4, "big")
    else:
        value = crc64nvme(data).to_bytes(8, "big")
    s3.put_object(Bucket=bucket, Key=algorithm, Body=data,
                  **{f"Checksum{algorithm}": base64.b64encode(value).decode()})
    assert s3.get_object(Bucket=bucket, Key=algorithm)["Body"].read() == data

    wrong = base64.b64encode(bytes(len(value))).decode()
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key=algorithm + "-bad", Body=data,
                      **{f"Checksum{algorithm}": wrong})
    assert error_code(e) == "BadDigest"


def test_wrong_content_md5_is_rejected_with_bad_digest(s3, bucket):
    wrong = base64.b64encode(hashlib.md5(b"something else").digest()).decode()
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="bad", Body=b"payload", ContentMD5=wrong)
    assert error_code(e) == "BadDigest"
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="bad")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_wrong_crc32_checksum_is_rejected_with_bad_digest(s3, bucket):
    data = b"payload whose checksum is wrong"
    bad_crc = base64.b64encode((zlib.crc32(data) ^ 1).to_bytes(4, "big")).decode()
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="bad", Body=data, ChecksumCRC32=bad_crc)
    assert error_code(e) == "BadDigest"


def test_delete_object_then_get_is_no_such_key(s3, bucket):
    s3.put_object(Bucket=bucket, Key="gone", Body=b"x")
    s3.delete_object(Bucket=bucket, Key="gone")
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="gone")
    assert error_code(e) == "NoSuchKey"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    # Deleting again is not an error.
    s3.delete_object(Bucket=bucket, Key="gone")


def test_get_range_and_part_number(s3, bucket):
    data = os.urandom(10_000)
    s3.put_object(Bucket=bucket, Key="r", Body=data)
    assert s3.get_object(Bucket=bucket, Key="r", Range="bytes=-5")["Body"].read() == data[-5:]
    assert s3.get_object(Bucket=bucket, Key="r", Range="bytes=5-")["Body"].read() == data[5:]
    got = s3.get_object(Bucket=bucket, Key="r", Range="bytes=100-199")
    assert got["Body"].read() == data[100:200]
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="r", Range="bytes=20000-20001")
    assert error_code(e) == "InvalidRange"
    # A single-part object is its own part 1.
    assert s3.get_object(Bucket=bucket, Key="r", PartNumber=1)["Body"].read() == data


# ----------------------------------------------------------------- buckets


def test_bucket_lifecycle_and_its_error_codes(s3, server):
    name = f"lifecycle-{os.urandom(4).hex()}"
    s3.create_bucket(Bucket=name)
    assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.head_bucket(Bucket=name)
    loc = s3.get_bucket_location(Bucket=name)["LocationConstraint"]
    assert loc in (None, "", REGION)

    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket=name)
    assert error_code(e) == "BucketAlreadyOwnedByYou"

    s3.put_object(Bucket=name, Key="k", Body=b"x")
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket=name)
    assert error_code(e) == "BucketNotEmpty"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409

    s3.delete_object(Bucket=name, Key="k")
    s3.delete_bucket(Bucket=name)
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]

    for call in (
        lambda: s3.list_objects_v2(Bucket=name),
        lambda: s3.put_object(Bucket=name, Key="k", Body=b"x"),
        lambda: s3.get_object(Bucket=name, Key="k"),
        lambda: s3.delete_bucket(Bucket=name),
    ):
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e) == "NoSuchBucket"
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_list_object_versions_answers_for_an_unversioned_bucket(s3, bucket):
    s3.put_object(Bucket=bucket, Key="v", Body=b"x")
    res = s3.list_object_versions(Bucket=bucket)
    assert [v["Key"] for v in res.get("Versions", [])] == ["v"]


# ----------------------------------------------------------------- listing

LIST_KEYS = sorted(
    ["a/1", "a/2", "a/b/3", "a/b/4", "b/5", "c", "d/e/f/6", "space key", "plus+key",
     "unicodé/ü", "percent%20key", "x" * 300]
    + [f"page/{i:03d}" for i in range(25)]
)


@pytest.fixture
def listing_bucket(s3, bucket):
    for key in LIST_KEYS:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    return bucket


def collect_v2(s3, **kw):
    keys, prefixes, pages, token = [], [], 0, None
    while True:
        args = dict(kw, ContinuationToken=token) if token else kw
        res = s3.list_objects_v2(**args)
        pages += 1
        keys += [o["Key"] for o in res.get("Contents", [])]
        prefixes += [p["Prefix"] for p in res.get("CommonPrefixes", [])]
        assert res["KeyCount"] == len(res.get("Contents", [])) + len(res.get("CommonPrefixes", []))
        if not res["IsTruncated"]:
            assert "NextContinuationToken" not in res
            return keys, prefixes, pages
        token = res["NextContinuationToken"]
        assert pages < 1000


def collect_v1(s3, **kw):
    keys, prefixes, pages, marker = [], [], 0, None
    while True:
        args = dict(kw, Marker=marker) if marker else kw
        res = s3.list_objects(**args)
        pages += 1
        contents = [o["Key"] for o in res.get("Contents", [])]
        common = [p["Prefix"] for p in res.get("CommonPrefixes", [])]
        keys += contents
        prefixes += common
        if not res["IsTruncated"]:
            return keys, prefixes, pages
        # With a delimiter S3 gives NextMarker; without, the last key is the marker.
        marker = res.get("NextMarker") or contents[-1]
        assert pages < 1000


def test_list_v2_returns_all_keys_in_order(s3, listing_bucket):
    keys, prefixes, pages = collect_v2(s3, Bucket=listing_bucket)
    assert keys == LIST_KEYS and prefixes == [] and pages == 1


def test_list_v2_pages_with_continuation_tokens(s3, listing_bucket):
    keys, _, pages = collect_v2(s3, Bucket=listing_bucket, MaxKeys=4)
    assert keys == LIST_KEYS
    assert pages == -(-len(LIST_KEYS) // 4)


def test_list_v2_prefix_delimiter_and_start_after(s3, listing_bucket):
    keys, prefixes, _ = collect_v2(s3, Bucket=listing_bucket, Delimiter="/")
    assert keys == [k for k in LIST_KEYS if "/" not in k]
    assert prefixes == sorted({k.split("/")[0] + "/" for k in LIST_KEYS if "/" in k})

    keys, prefixes, _ = collect_v2(s3, Bucket=listing_bucket, Prefix="a/", Delimiter="/")
    assert keys == ["a/1", "a/2"] and prefixes == ["a/b/"]

    # Prefixes and keys together count against MaxKeys, and paging keeps them apart.
    keys, prefixes, _ = collect_v2(s3, Bucket=listing_bucket, Delimiter="/", MaxKeys=1)
    assert keys == [k for k in LIST_KEYS if "/" not in k]
    assert prefixes == sorted({k.split("/")[0] + "/" for k in LIST_KEYS if "/" in k})

    res = s3.list_objects_v2(Bucket=listing_bucket, StartAfter="page/020")
    assert [o["Key"] for o in res["Contents"]] == [k for k in LIST_KEYS if k > "page/020"]

    res = s3.list_objects_v2(Bucket=listing_bucket, Prefix="nothing-here")
    assert res["KeyCount"] == 0 and "Contents" not in res


def test_list_v1_pages_with_markers_prefix_and_delimiter(s3, listing_bucket):
    keys, prefixes, pages = collect_v1(s3, Bucket=listing_bucket, MaxKeys=5)
    assert keys == LIST_KEYS and pages == -(-len(LIST_KEYS) // 5)

    keys, prefixes, _ = collect_v1(s3, Bucket=listing_bucket, Delimiter="/", MaxKeys=2)
    assert keys == [k for k in LIST_KEYS if "/" not in k]
    assert prefixes == sorted({k.split("/")[0] + "/" for k in LIST_KEYS if "/" in k})

    keys, prefixes, _ = collect_v1(s3, Bucket=listing_bucket, Prefix="page/", MaxKeys=10)
    assert keys == [k for k in LIST_KEYS if k.startswith("page/")]

    res = s3.list_objects(Bucket=listing_bucket, Marker="page/020")
    assert [o["Key"] for o in res["Contents"]] == [k for k in LIST_KEYS if k > "page/020"]


def test_list_paginators_see_every_key(s3, listing_bucket):
    for op in ("list_objects", "list_objects_v2"):
        pages = s3.get_paginator(op).paginate(
            Bucket=listing_bucket, PaginationConfig={"PageSize": 7}
        )
        assert [o["Key"] for p in pages for o in p.get("Contents", [])] == LIST_KEYS, op


# ----------------------------------------------------------------- multipart


def test_multipart_upload_create_upload_list_complete(s3, bucket):
    parts_data = [os.urandom(5 * MiB), os.urandom(5 * MiB), os.urandom(1234)]
    mpu = s3.create_multipart_upload(Bucket=bucket, Key="mp", ContentType="application/x-mp",
                                     Metadata={"m": "p"})
    uid = mpu["UploadId"]

    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [("mp", uid)]

    etags = []
    for n, data in enumerate(parts_data, start=1):
        r = s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=n, Body=data)
        assert r["ETag"] == f'"{md5_hex(data)}"'
        etags.append(r["ETag"])

    listed = s3.list_parts(Bucket=bucket, Key="mp", UploadId=uid)["Parts"]
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed] == [
        (n, etags[n - 1], len(parts_data[n - 1])) for n in (1, 2, 3)
    ]

    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]},
    )
    expected = hashlib.md5(b"".join(hashlib.md5(d).digest() for d in parts_data)).hexdigest()
    assert done["ETag"] == f'"{expected}-3"'

    got = s3.get_object(Bucket=bucket, Key="mp")
    whole = b"".join(parts_data)
    assert hashlib.sha256(got["Body"].read()).digest() == hashlib.sha256(whole).digest()
    assert got["ETag"] == done["ETag"]
    assert got["ContentType"] == "application/x-mp"
    assert got["Metadata"] == {"m": "p"}
    assert s3.get_object(Bucket=bucket, Key="mp", PartNumber=2)["Body"].read() == parts_data[1]
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_multipart_upload_abort_forgets_the_upload(s3, bucket):
    uid = s3.create_multipart_upload(Bucket=bucket, Key="ab")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="ab", UploadId=uid, PartNumber=1, Body=b"x" * 1000)
    s3.abort_multipart_upload(Bucket=bucket, Key="ab", UploadId=uid)

    with pytest.raises(ClientError) as e:
        s3.list_parts(Bucket=bucket, Key="ab", UploadId=uid)
    assert error_code(e) == "NoSuchUpload"
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="ab", UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"x"'}]},
        )
    assert error_code(e) == "NoSuchUpload"
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="ab")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_multipart_complete_rejects_bad_part_lists(s3, bucket):
    uid = s3.create_multipart_upload(Bucket=bucket, Key="bad")["UploadId"]
    e1 = s3.upload_part(Bucket=bucket, Key="bad", UploadId=uid, PartNumber=1,
                        Body=os.urandom(5 * MiB))["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key="bad", UploadId=uid, PartNumber=2,
                        Body=os.urandom(5 * MiB))["ETag"]

    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="bad", UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]},
        )
    assert error_code(e) == "InvalidPartOrder"

    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="bad", UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1},
                                       {"PartNumber": 2, "ETag": '"0123456789abcdef0123456789abcdef"'}]},
        )
    assert error_code(e) == "InvalidPart"

    # The upload survives failed completions and can still be finished.
    s3.complete_multipart_upload(
        Bucket=bucket, Key="bad", UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]},
    )
    assert s3.head_object(Bucket=bucket, Key="bad")["ContentLength"] == 10 * MiB


def test_upload_file_transfer_manager_multipart_round_trip(s3, bucket, tmp_path):
    from boto3.s3.transfer import TransferConfig

    src = tmp_path / "src"
    src.write_bytes(os.urandom(12 * MiB + 7))
    cfg = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    s3.upload_file(str(src), bucket, "tm", Config=cfg)
    assert s3.head_object(Bucket=bucket, Key="tm")["ETag"].endswith('-3"')
    dst = tmp_path / "dst"
    s3.download_file(bucket, "tm", str(dst), Config=cfg)
    assert dst.read_bytes() == src.read_bytes()


# ----------------------------------------------------------------- signatures


@pytest.fixture
def presigner(server):
    """boto3 set up for SigV4 presigned URLs, as S3-compatible stores document it."""
    return server.client(signature_version="s3v4")


def test_presigned_get_works_with_requests_and_urllib(s3, presigner, bucket):
    data = os.urandom(70_000)
    s3.put_object(Bucket=bucket, Key="dir/pre signed+key", Body=data)
    url = presigner.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "dir/pre signed+key"}, ExpiresIn=600
    )
    assert "X-Amz-Signature=" in url
    r = requests.get(url, timeout=30)
    assert r.status_code == 200 and r.content == data
    with urllib.request.urlopen(url, timeout=30) as resp:
        assert resp.status == 200 and resp.read() == data


def test_presigned_get_fetched_with_curl(s3, presigner, bucket, tmp_path):
    data = os.urandom(5000)
    s3.put_object(Bucket=bucket, Key="c", Body=data)
    url = presigner.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "c"})
    out = tmp_path / "out"
    subprocess.run(["curl", "-sSf", "-o", str(out), url], check=True, timeout=60)
    assert out.read_bytes() == data


def test_presigned_get_from_boto3_default_config_works(s3, bucket):
    # boto3's default presigner in us-east-1 still emits SigV2 query URLs
    # (AWSAccessKeyId/Signature/Expires): what a user gets without any configuration.
    s3.put_object(Bucket=bucket, Key="d", Body=b"default presign")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "d"})
    r = requests.get(url, timeout=30)
    assert r.status_code == 200, r.text
    assert r.content == b"default presign"


def test_presigned_get_with_response_override(s3, presigner, bucket):
    s3.put_object(Bucket=bucket, Key="o", Body=b"abc")
    url = presigner.generate_presigned_url(
        "get_object",
        Params={"Bucket": bucket, "Key": "o", "ResponseContentDisposition": "attachment; filename=o.txt"},
        ExpiresIn=60,
    )
    r = requests.get(url, timeout=30)
    assert r.status_code == 200 and r.content == b"abc"
    assert r.headers["Content-Disposition"] == "attachment; filename=o.txt"


def test_presigned_put_uploads(s3, presigner, bucket):
    url = presigner.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "pp"},
                                           ExpiresIn=60)
    r = requests.put(url, data=b"via presigned put", timeout=30)
    assert r.status_code == 200, r.text
    assert s3.get_object(Bucket=bucket, Key="pp")["Body"].read() == b"via presigned put"


def assert_s3_error(resp, status, code):
    assert resp.status_code == status, resp.text
    assert f"<Code>{code}</Code>" in resp.text, resp.text


def test_expired_presigned_url_is_access_denied(s3, presigner, bucket):
    s3.put_object(Bucket=bucket, Key="e", Body=b"x")
    url = presigner.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "e"}, ExpiresIn=1)
    time.sleep(2.5)
    assert_s3_error(requests.get(url, timeout=30), 403, "AccessDenied")


def test_presigned_url_signed_in_the_past_is_access_denied(server, bucket, s3, monkeypatch):
    s3.put_object(Bucket=bucket, Key="e", Body=b"x")
    # Sign as if it were two hours ago: a one-hour URL that expired an hour ago.
    past = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(hours=2)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: past)
    req = AWSRequest(method="GET", url=f"{server.endpoint}/{bucket}/e")
    S3SigV4QueryAuth(Credentials(server.access_key, server.secret_key), "s3", REGION,
                     expires=3600).add_auth(req)
    monkeypatch.undo()
    assert f"X-Amz-Date={past:%Y%m%dT%H%M%SZ}" in req.url
    assert_s3_error(requests.get(req.url, timeout=30), 403, "AccessDenied")


def test_presigned_url_with_tampered_signature_is_rejected(s3, presigner, bucket):
    s3.put_object(Bucket=bucket, Key="t", Body=b"x")
    url = presigner.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "t"}, ExpiresIn=60)
    tampered = url.replace(f"/{bucket}/t?", f"/{bucket}/other?")
    assert_s3_error(requests.get(tampered, timeout=30), 403, "SignatureDoesNotMatch")


def test_wrong_secret_is_signature_does_not_match(server, bucket):
    bad = server.client(secret_key="not-the-secret-" + "x" * 25, retries=0)
    for call in (
        lambda: bad.list_buckets(),
        lambda: bad.put_object(Bucket=bucket, Key="k", Body=b"x"),
        lambda: bad.get_object(Bucket=bucket, Key="k"),
        lambda: bad.list_objects_v2(Bucket=bucket),
    ):
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e) == "SignatureDoesNotMatch"
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_unknown_access_key_is_invalid_access_key_id(server, bucket):
    bad = server.client(access_key="GKNOTAKEY0000000000", retries=0)
    with pytest.raises(ClientError) as e:
        bad.list_objects_v2(Bucket=bucket)
    assert error_code(e) == "InvalidAccessKeyId"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_unsigned_request_is_access_denied(server, bucket, s3):
    s3.put_object(Bucket=bucket, Key="private", Body=b"secret")
    assert_s3_error(requests.get(f"{server.endpoint}/{bucket}/private", timeout=30), 403, "AccessDenied")
    assert_s3_error(requests.get(f"{server.endpoint}/", timeout=30), 403, "AccessDenied")


def test_request_signed_with_a_skewed_clock_is_request_time_too_skewed(server, monkeypatch):
    skewed = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(minutes=20)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: skewed)
    with pytest.raises(ClientError) as e:
        server.client(retries=0).list_buckets()
    assert error_code(e) == "RequestTimeTooSkewed"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
