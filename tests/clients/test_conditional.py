"""Conditional requests with boto3: If-Match / If-None-Match / If-Modified-Since /
If-Unmodified-Since on GET and HEAD (304 and 412, S3's precedence rules), the
x-amz-copy-source-if-* conditions of CopyObject and UploadPartCopy, and conditional
writes (If-None-Match: *, If-Match) on PutObject and CompleteMultipartUpload, including
races of many concurrent writers."""

import datetime as dt
import threading

import pytest
from botocore.exceptions import ClientError

from helpers import MiB, error_code, error_code_of, unique

PAST = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
FUTURE = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=365)


def status_and_code(call):
    try:
        call()
    except ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"], error_code_of(e)
    return 200, None


@pytest.fixture
def obj(s3, bucket):
    key = unique("cond")
    etag = s3.put_object(Bucket=bucket, Key=key, Body=b"conditional body")["ETag"]
    modified = s3.head_object(Bucket=bucket, Key=key)["LastModified"]
    return key, etag, modified


@pytest.mark.parametrize("op", ["get_object", "head_object"])
def test_get_and_head_conditions(s3, bucket, obj, op):
    key, etag, modified = obj
    call = getattr(s3, op)

    def status(**conditions):
        return status_and_code(lambda: call(Bucket=bucket, Key=key, **conditions))[0]

    assert status() == 200
    assert status(IfMatch=etag) == 200
    assert status(IfMatch=etag.strip('"')) == 200
    assert status(IfMatch="*") == 200
    assert status(IfMatch='"0123456789abcdef0123456789abcdef"') == 412
    assert status(IfNoneMatch=etag) == 304
    assert status(IfNoneMatch="*") == 304
    assert status(IfNoneMatch='"other"') == 200
    assert status(IfModifiedSince=PAST) == 200
    assert status(IfModifiedSince=modified) == 304
    assert status(IfModifiedSince=FUTURE) == 304
    assert status(IfUnmodifiedSince=FUTURE) == 200
    assert status(IfUnmodifiedSince=modified) == 200
    assert status(IfUnmodifiedSince=PAST) == 412
    # Precedence as S3 documents it.
    assert status(IfMatch=etag, IfUnmodifiedSince=PAST) == 200
    assert status(IfNoneMatch=etag, IfModifiedSince=PAST) == 304
    assert status(IfNoneMatch='"other"', IfModifiedSince=FUTURE) == 200
    assert status(IfMatch='"other"', IfNoneMatch=etag) == 412
    assert status(IfMatch='"other"', IfModifiedSince=PAST) == 412


def test_not_modified_carries_the_validators_and_412_is_xml(s3, bucket, obj):
    key, etag, _ = obj
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key=key, IfNoneMatch=etag)
    headers = e.value.response["ResponseMetadata"]["HTTPHeaders"]
    assert headers["etag"] == etag
    assert "last-modified" in headers
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key=key, IfMatch='"nope"')
    assert error_code(e) == "PreconditionFailed"


def test_copy_source_conditions(s3, bucket, obj):
    key, etag, modified = obj

    def copy(**conditions):
        return status_and_code(lambda: s3.copy_object(
            Bucket=bucket, Key=unique("copy"), CopySource=f"{bucket}/{key}", **conditions))

    ok, failed = (200, None), (412, "PreconditionFailed")
    assert copy(CopySourceIfMatch=etag) == ok
    assert copy(CopySourceIfMatch='"other"') == failed
    assert copy(CopySourceIfNoneMatch='"other"') == ok
    assert copy(CopySourceIfNoneMatch=etag) == failed
    assert copy(CopySourceIfModifiedSince=PAST) == ok
    assert copy(CopySourceIfModifiedSince=FUTURE) == failed
    assert copy(CopySourceIfUnmodifiedSince=FUTURE) == ok
    assert copy(CopySourceIfUnmodifiedSince=PAST) == failed
    # S3's precedence: If-Match true + If-Unmodified-Since false → copied;
    # If-None-Match false + If-Modified-Since true → 412.
    assert copy(CopySourceIfMatch=etag, CopySourceIfUnmodifiedSince=PAST) == ok
    assert copy(CopySourceIfNoneMatch=etag, CopySourceIfModifiedSince=PAST) == failed


def test_upload_part_copy_source_conditions(s3, bucket, obj):
    key, etag, _ = obj
    dest = unique("dest")
    up = s3.create_multipart_upload(Bucket=bucket, Key=dest)["UploadId"]

    def part_copy(**conditions):
        return status_and_code(lambda: s3.upload_part_copy(
            Bucket=bucket, Key=dest, UploadId=up, PartNumber=1,
            CopySource=f"{bucket}/{key}", **conditions))

    assert part_copy(CopySourceIfMatch='"other"') == (412, "PreconditionFailed")
    assert part_copy(CopySourceIfNoneMatch=etag) == (412, "PreconditionFailed")
    assert part_copy(CopySourceIfUnmodifiedSince=PAST) == (412, "PreconditionFailed")
    assert part_copy(CopySourceIfModifiedSince=FUTURE) == (412, "PreconditionFailed")
    assert part_copy(CopySourceIfMatch=etag) == (200, None)
    assert s3.list_parts(Bucket=bucket, Key=dest, UploadId=up)["Parts"][0]["ETag"] == etag
    s3.abort_multipart_upload(Bucket=bucket, Key=dest, UploadId=up)


def test_conditional_puts(s3, bucket):
    key = unique("cp")
    first = s3.put_object(Bucket=bucket, Key=key, Body=b"one", IfNoneMatch="*")["ETag"]
    assert status_and_code(lambda: s3.put_object(
        Bucket=bucket, Key=key, Body=b"two", IfNoneMatch="*")) == (412, "PreconditionFailed")
    assert status_and_code(lambda: s3.put_object(
        Bucket=bucket, Key=key, Body=b"two", IfMatch='"0123456789abcdef0123456789abcdef"')
    ) == (412, "PreconditionFailed")
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"one"
    second = s3.put_object(Bucket=bucket, Key=key, Body=b"two", IfMatch=first)["ETag"]
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"two"
    # The ETag that matched is gone now.
    assert status_and_code(lambda: s3.put_object(
        Bucket=bucket, Key=key, Body=b"three", IfMatch=first))[0] == 412
    s3.put_object(Bucket=bucket, Key=key, Body=b"three", IfMatch=second)
    # If-Match on a key that does not exist: 404, as S3.
    assert status_and_code(lambda: s3.put_object(
        Bucket=bucket, Key=unique("absent"), Body=b"x", IfMatch=first)) == (404, "NoSuchKey")


def race(writers, put):
    """Runs `put(i)` in `writers` threads started together; returns their outcomes."""
    barrier = threading.Barrier(writers)
    outcomes = [None] * writers

    def run(i):
        barrier.wait()
        outcomes[i] = status_and_code(lambda: put(i))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return outcomes


def test_if_none_match_race_has_exactly_one_winner(server, bucket):
    clients = [server.client(retries=0, max_pool_connections=4) for _ in range(16)]
    for round_ in range(8):
        key = unique(f"race{round_}")
        outcomes = race(16, lambda i: clients[i].put_object(
            Bucket=bucket, Key=key, Body=f"writer {i}".encode(), IfNoneMatch="*"))
        winners = [i for i, o in enumerate(outcomes) if o == (200, None)]
        losers = [o for o in outcomes if o != (200, None)]
        assert len(winners) == 1, outcomes
        assert all(o in [(412, "PreconditionFailed"), (409, "ConditionalRequestConflict")]
                   for o in losers), outcomes
        body = clients[0].get_object(Bucket=bucket, Key=key)["Body"].read()
        assert body == f"writer {winners[0]}".encode()


def test_if_match_race_and_unconditional_writers(server, bucket):
    """Writers holding the same ETag race with If-Match: one wins. Unconditional writers
    mixed in may come first (then no conditional writer wins), never a second winner."""
    clients = [server.client(retries=0, max_pool_connections=4) for _ in range(16)]
    for round_ in range(5):
        key = unique(f"mrace{round_}")
        etag = clients[0].put_object(Bucket=bucket, Key=key, Body=b"base")["ETag"]
        outcomes = race(16, lambda i: clients[i].put_object(
            Bucket=bucket, Key=key, Body=f"writer {i}".encode(),
            **({"IfMatch": etag} if i % 4 else {})))
        conditional = [o for i, o in enumerate(outcomes) if i % 4]
        unconditional = [o for i, o in enumerate(outcomes) if not i % 4]
        assert all(o == (200, None) for o in unconditional), outcomes
        assert sum(o == (200, None) for o in conditional) <= 1, outcomes
        assert all(o in [(200, None), (412, "PreconditionFailed")] for o in conditional)


def test_complete_multipart_upload_conditions(s3, bucket):
    key = unique("mpu")

    def upload():
        up = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=1,
                              Body=b"p" * MiB)["ETag"]
        return up, {"Parts": [{"PartNumber": 1, "ETag": etag}]}

    up, parts = upload()
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up, MultipartUpload=parts,
                                 IfNoneMatch="*")
    up, parts = upload()
    assert status_and_code(lambda: s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=up, MultipartUpload=parts, IfNoneMatch="*")
    ) == (412, "PreconditionFailed")
    assert status_and_code(lambda: s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=up, MultipartUpload=parts, IfMatch='"nope"')
    ) == (412, "PreconditionFailed")
    # The upload survives a failed condition and completes with the right one.
    current = s3.head_object(Bucket=bucket, Key=key)["ETag"]
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up, MultipartUpload=parts,
                                 IfMatch=current)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"p" * MiB
