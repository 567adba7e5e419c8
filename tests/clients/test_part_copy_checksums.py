"""UploadPartCopy (whole sources and x-amz-copy-source-range), checksums stored per
object and per part and returned with ChecksumMode=ENABLED (single and composite),
GetObjectAttributes, and GetBucketVersioning (boto3 and the AWS CLI)."""

import base64
import hashlib
import json
import os
import zlib

import pytest
from botocore.exceptions import ClientError

from helpers import MiB, error_code, unique


def b64(data):
    return base64.b64encode(data).decode()


def crc32_b64(data):
    return b64(zlib.crc32(data).to_bytes(4, "big"))


def sha256_b64(data):
    return b64(hashlib.sha256(data).digest())


def multipart_etag(parts):
    md5s = b"".join(hashlib.md5(p).digest() for p in parts)
    return f'"{hashlib.md5(md5s).hexdigest()}-{len(parts)}"'


def test_upload_part_copy_with_ranges_assembles_byte_for_byte(s3, bucket):
    big = os.urandom(13 * MiB + 12345)
    small = os.urandom(1000)  # inline-sized source
    s3.put_object(Bucket=bucket, Key="big", Body=big)
    s3.put_object(Bucket=bucket, Key="small", Body=small)
    key = unique("assembled")
    up = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    # Ranges that do not fall on block boundaries, a whole object, and a slice of an
    # inline object as the last part.
    pieces = [
        ("big", f"bytes=3-{3 + 5 * MiB + 77 - 1}", big[3:3 + 5 * MiB + 77]),
        ("big", None, big),
        ("big", f"bytes={len(big) - 6 * MiB}-{len(big) - 1}", big[len(big) - 6 * MiB:]),
        ("small", "bytes=10-509", small[10:510]),
    ]
    parts = []
    for number, (source, rng, expected) in enumerate(pieces, start=1):
        args = {"CopySourceRange": rng} if rng else {}
        r = s3.upload_part_copy(Bucket=bucket, Key=key, UploadId=up, PartNumber=number,
                                CopySource={"Bucket": bucket, "Key": source}, **args)
        etag = r["CopyPartResult"]["ETag"]
        assert etag == f'"{hashlib.md5(expected).hexdigest()}"'
        parts.append({"PartNumber": number, "ETag": etag})
    listed = s3.list_parts(Bucket=bucket, Key=key, UploadId=up)["Parts"]
    assert [p["Size"] for p in listed] == [len(p[2]) for p in pieces]
    done = s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up,
                                        MultipartUpload={"Parts": parts})
    expected = b"".join(p[2] for p in pieces)
    assert done["ETag"] == multipart_etag([p[2] for p in pieces])
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert len(body) == len(expected) and body == expected
    # Reading part 3 alone gives exactly its bytes.
    part3 = s3.get_object(Bucket=bucket, Key=key, PartNumber=3)["Body"].read()
    assert part3 == pieces[2][2]


def test_upload_part_copy_range_errors(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"0123456789")
    up = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]

    def code(rng):
        with pytest.raises(ClientError) as e:
            s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=up, PartNumber=1,
                                CopySource=f"{bucket}/src", CopySourceRange=rng)
        return error_code(e), e.value.response["ResponseMetadata"]["HTTPStatusCode"]

    assert code("bytes=5-2") == ("InvalidArgument", 400)
    assert code("bytes=5-") == ("InvalidArgument", 400)
    assert code("5-6") == ("InvalidArgument", 400)
    assert code("bytes=0-10") == ("InvalidRange", 416)
    assert code("bytes=10-10") == ("InvalidRange", 416)
    with pytest.raises(ClientError) as e:
        s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=up, PartNumber=1,
                            CopySource=f"{bucket}/missing")
    assert error_code(e) == "NoSuchKey"
    with pytest.raises(ClientError) as e:
        s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId="nope", PartNumber=1,
                            CopySource=f"{bucket}/src")
    assert error_code(e) == "NoSuchUpload"
    r = s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=up, PartNumber=1,
                            CopySource=f"{bucket}/src", CopySourceRange="bytes=2-4")
    assert r["CopyPartResult"]["ETag"] == f'"{hashlib.md5(b"234").hexdigest()}"'
    s3.abort_multipart_upload(Bucket=bucket, Key="dst", UploadId=up)


def sha1_b64(data):
    return b64(hashlib.sha1(data).digest())


@pytest.mark.parametrize("algorithm,digest", [("CRC32", crc32_b64), ("SHA256", sha256_b64),
                                              ("SHA1", sha1_b64)])
def test_checksum_mode_returns_the_stored_checksum(s3, bucket, algorithm, digest):
    data = os.urandom(2 * MiB + 3)
    key = unique("ck")
    put = s3.put_object(Bucket=bucket, Key=key, Body=data, ChecksumAlgorithm=algorithm)
    field = f"Checksum{algorithm}"
    assert put[field] == digest(data)
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert head[field] == digest(data)
    assert head["ChecksumType"] == "FULL_OBJECT"
    got = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert got[field] == digest(data)
    assert got["Body"].read() == data
    # Without the mode, no checksum header.
    assert field not in s3.head_object(Bucket=bucket, Key=key)
    small = unique("small")
    s3.put_object(Bucket=bucket, Key=small, Body=b"tiny", ChecksumAlgorithm=algorithm)
    assert s3.head_object(Bucket=bucket, Key=small, ChecksumMode="ENABLED")[field] == \
        digest(b"tiny")


def composite(algorithm, parts):
    raw = b"".join(
        zlib.crc32(p).to_bytes(4, "big") if algorithm == "CRC32" else hashlib.sha256(p).digest()
        for p in parts)
    whole = zlib.crc32(raw).to_bytes(4, "big") if algorithm == "CRC32" else \
        hashlib.sha256(raw).digest()
    return f"{b64(whole)}-{len(parts)}"


@pytest.mark.parametrize("algorithm", ["SHA256", "CRC32"])
def test_multipart_composite_checksum_and_object_attributes(s3, bucket, algorithm):
    key = unique("mpck")
    parts_data = [os.urandom(5 * MiB), os.urandom(5 * MiB), os.urandom(1234)]
    field = f"Checksum{algorithm}"
    up = s3.create_multipart_upload(Bucket=bucket, Key=key,
                                    ChecksumAlgorithm=algorithm)["UploadId"]
    parts = []
    for n, data in enumerate(parts_data, start=1):
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=n, Body=data,
                           ChecksumAlgorithm=algorithm)
        parts.append({"PartNumber": n, "ETag": r["ETag"], field: r[field]})
    done = s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up,
                                        MultipartUpload={"Parts": parts})
    want = composite(algorithm, parts_data)
    assert done[field] == want
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert (head[field], head["ChecksumType"]) == (want, "COMPOSITE")
    got = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert got[field] == want
    assert got["Body"].read() == b"".join(parts_data)
    # A part read returns that part's checksum.
    part2 = s3.get_object(Bucket=bucket, Key=key, PartNumber=2, ChecksumMode="ENABLED")
    assert part2[field] == parts[1][field]
    assert part2["Body"].read() == parts_data[1]

    attrs = s3.get_object_attributes(
        Bucket=bucket, Key=key,
        ObjectAttributes=["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"])
    assert attrs["ETag"] == multipart_etag(parts_data).strip('"')
    assert attrs["Checksum"][field] == want
    assert attrs["Checksum"]["ChecksumType"] == "COMPOSITE"
    assert attrs["StorageClass"] == "STANDARD"
    assert attrs["ObjectSize"] == sum(map(len, parts_data))
    op = attrs["ObjectParts"]
    assert op["TotalPartsCount"] == 3 and op["IsTruncated"] is False
    assert [(p["PartNumber"], p["Size"], p[field]) for p in op["Parts"]] == [
        (n, len(d), c[field]) for n, (d, c) in enumerate(zip(parts_data, parts), start=1)]
    # Paged parts.
    page = s3.get_object_attributes(Bucket=bucket, Key=key, ObjectAttributes=["ObjectParts"],
                                    MaxParts=2)["ObjectParts"]
    assert [p["PartNumber"] for p in page["Parts"]] == [1, 2] and page["IsTruncated"]
    nxt = s3.get_object_attributes(Bucket=bucket, Key=key, ObjectAttributes=["ObjectParts"],
                                   PartNumberMarker=page["NextPartNumberMarker"])
    assert [p["PartNumber"] for p in nxt["ObjectParts"]["Parts"]] == [3]


def test_object_attributes_of_a_simple_object(s3, bucket):
    data = b"attributes"
    s3.put_object(Bucket=bucket, Key="a", Body=data, ChecksumAlgorithm="SHA256")
    attrs = s3.get_object_attributes(Bucket=bucket, Key="a",
                                     ObjectAttributes=["ETag", "Checksum", "ObjectSize"])
    assert attrs["ETag"] == hashlib.md5(data).hexdigest()
    assert attrs["Checksum"]["ChecksumSHA256"] == sha256_b64(data)
    assert attrs["ObjectSize"] == len(data)
    assert "ObjectParts" not in attrs and "StorageClass" not in attrs
    with pytest.raises(ClientError) as e:
        s3.get_object_attributes(Bucket=bucket, Key="missing", ObjectAttributes=["ETag"])
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_bucket_versioning_is_never_enabled(s3, bucket, aws):
    r = s3.get_bucket_versioning(Bucket=bucket)
    assert "Status" not in r and "MFADelete" not in r
    out = aws("s3api", "get-bucket-versioning", "--bucket", bucket).stdout.strip()
    assert out == "" or "Status" not in json.loads(out), out
    with pytest.raises(ClientError) as e:
        s3.put_bucket_versioning(Bucket=bucket,
                                 VersioningConfiguration={"Status": "Enabled"})
    assert error_code(e) == "NotImplemented"


def test_bucket_tagging_is_stored(s3, bucket, aws):
    with pytest.raises(ClientError) as e:
        s3.get_bucket_tagging(Bucket=bucket)
    assert error_code(e) == "NoSuchTagSet"
    tags = [{"Key": "team", "Value": "storage"}, {"Key": "cost", "Value": "a&b <c>"}]
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tags})
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == tags
    out = json.loads(aws("s3api", "get-bucket-tagging", "--bucket", bucket).stdout)
    assert out["TagSet"] == tags
    s3.delete_bucket_tagging(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        s3.get_bucket_tagging(Bucket=bucket)
    assert error_code(e) == "NoSuchTagSet"
    # Object tagging is not implemented: a clear error, not a silent drop.
    s3.put_object(Bucket=bucket, Key="o", Body=b"x")
    with pytest.raises(ClientError) as e:
        s3.put_object_tagging(Bucket=bucket, Key="o",
                              Tagging={"TagSet": [{"Key": "a", "Value": "b"}]})
    assert error_code(e) == "NotImplemented"
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="t", Body=b"x", Tagging="a=b")
    assert error_code(e) == "NotImplemented"
