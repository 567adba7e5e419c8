"""The AWS CLI v1 (what `pip install awscli` gives a user) against granary."""

import hashlib
import json
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from helpers import MiB, md5_file, sha256_file, tree_hashes, write_random_file

AWS_CLI_CHUNK = 8 * MiB  # the CLI's default multipart_threshold and multipart_chunksize


def multipart_etag(path, part_size):
    """The ETag S3 gives an object uploaded in parts of part_size: md5 of part md5s, -N."""
    digests = []
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(part_size), b""):
            digests.append(hashlib.md5(chunk).digest())
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"


def listed(s3, bucket, prefix=""):
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            out[o["Key"]] = o
    return out


def check_etags(s3, bucket, prefix, root):
    """Single-part objects have the MD5 as ETag; multipart ones the CLI's md5-of-md5s."""
    objs = listed(s3, bucket, prefix)
    local = {p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file()}
    assert sorted(objs) == sorted(prefix + k for k in local)
    for rel, path in local.items():
        obj = objs[prefix + rel]
        assert obj["Size"] == path.stat().st_size, rel
        etag = obj["ETag"].strip('"')
        if path.stat().st_size < AWS_CLI_CHUNK:
            assert etag == md5_file(path), rel
        else:
            assert etag == multipart_etag(path, AWS_CLI_CHUNK), rel


@pytest.mark.slow
def test_aws_s3_cp_recursive_round_trips_every_size(aws, s3, bucket, size_tree, tmp_path):
    aws("s3", "cp", "--recursive", "--only-show-errors", size_tree, f"s3://{bucket}/cp/")
    check_etags(s3, bucket, "cp/", size_tree)

    down = tmp_path / "down"
    aws("s3", "cp", "--recursive", "--only-show-errors", f"s3://{bucket}/cp/", down)
    assert tree_hashes(down) == tree_hashes(size_tree)


def test_aws_s3_cp_recursive_of_an_empty_file_beside_a_multipart_file(aws, s3, bucket, tmp_path):
    # The smallest tree that mixes a 0-byte upload (Expect: 100-continue with no body) with
    # a multipart upload on the CLI's pooled keep-alive connections.
    src = tmp_path / "src"
    write_random_file(src / "empty", 0)
    write_random_file(src / "big", 3 * AWS_CLI_CHUNK)
    aws("s3", "cp", "--recursive", "--only-show-errors", src, f"s3://{bucket}/mix/")
    check_etags(s3, bucket, "mix/", src)
    down = tmp_path / "down"
    aws("s3", "cp", "--recursive", "--only-show-errors", f"s3://{bucket}/mix/", down)
    assert tree_hashes(down) == tree_hashes(src)


@pytest.mark.slow
def test_aws_s3_sync_uploads_once_and_downloads_identical_tree(
    aws, s3, bucket, size_tree, tmp_path
):
    aws("s3", "sync", "--only-show-errors", size_tree, f"s3://{bucket}/sync")
    check_etags(s3, bucket, "sync/", size_tree)

    # Nothing changed locally: a second sync has nothing to transfer.
    again = aws("s3", "sync", size_tree, f"s3://{bucket}/sync")
    assert again.stdout.strip() == "", again.stdout

    down = tmp_path / "down"
    aws("s3", "sync", "--only-show-errors", f"s3://{bucket}/sync", down)
    assert tree_hashes(down) == tree_hashes(size_tree)

    # ...and the reverse direction has nothing to do either.
    again = aws("s3", "sync", f"s3://{bucket}/sync", down)
    assert again.stdout.strip() == "", again.stdout


@pytest.mark.slow
def test_aws_s3_cp_200mib_multipart_upload_reads_back_identical(
    aws, bucket, scratch, tmp_path
):
    src = scratch / "big-200MiB.bin"
    if not src.exists():
        write_random_file(src, 200 * MiB)
    aws("s3", "cp", "--only-show-errors", src, f"s3://{bucket}/big.bin")

    head = json.loads(aws("s3api", "head-object", "--bucket", bucket, "--key", "big.bin").stdout)
    assert head["ContentLength"] == 200 * MiB
    assert head["ETag"].strip('"') == multipart_etag(src, AWS_CLI_CHUNK)  # ...-25

    dst = tmp_path / "big.bin"
    aws("s3", "cp", "--only-show-errors", f"s3://{bucket}/big.bin", dst)
    assert sha256_file(dst) == sha256_file(src)


def put_many(s3, bucket, keys):
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=k.encode()), keys))


@pytest.fixture
def fast_s3(server):
    return server.client(max_pool_connections=32)


@pytest.mark.slow
def test_aws_s3_ls_pages_through_2500_keys(aws, fast_s3, bucket):
    keys = [f"many/key-{i:05d}" for i in range(2500)]
    put_many(fast_s3, bucket, keys)

    # `aws s3 ls` pages with ListObjectsV2 (1000 per page) under the hood.
    out = aws("s3", "ls", f"s3://{bucket}/many/").stdout.splitlines()
    names = [line.split()[-1] for line in out]
    assert names == [k.removeprefix("many/") for k in keys]

    out = aws("s3", "ls", "--recursive", f"s3://{bucket}").stdout.splitlines()
    assert [line.split()[-1] for line in out] == keys

    # Explicit small pages through V2 continuation tokens and V1 markers.
    v2 = json.loads(
        aws("s3api", "list-objects-v2", "--bucket", bucket, "--page-size", "700").stdout
    )
    assert [o["Key"] for o in v2["Contents"]] == keys
    v1 = json.loads(
        aws("s3api", "list-objects", "--bucket", bucket, "--page-size", "300").stdout
    )
    assert [o["Key"] for o in v1["Contents"]] == keys

    # A partial listing hands back a token that resumes where it stopped.
    first = json.loads(
        aws("s3api", "list-objects-v2", "--bucket", bucket, "--max-items", "1234").stdout
    )
    assert len(first["Contents"]) == 1234 and first.get("NextToken")
    rest = json.loads(
        aws(
            "s3api", "list-objects-v2", "--bucket", bucket,
            "--starting-token", first["NextToken"],
        ).stdout
    )
    assert [o["Key"] for o in first["Contents"] + rest["Contents"]] == keys


def test_aws_s3_ls_with_delimiter_shows_folders_and_files(aws, s3, bucket):
    for key in ["top.txt", "dir1/a", "dir1/b", "dir2/sub/c", "dir3-not-a-dir"]:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")

    lines = [line.split() for line in aws("s3", "ls", f"s3://{bucket}/").stdout.splitlines()]
    prefixes = sorted(line[1] for line in lines if line[0] == "PRE")
    files = sorted(line[-1] for line in lines if line[0] != "PRE")
    assert prefixes == ["dir1/", "dir2/"]
    assert files == ["dir3-not-a-dir", "top.txt"]

    lines = [line.split() for line in aws("s3", "ls", f"s3://{bucket}/dir2/").stdout.splitlines()]
    assert lines == [["PRE", "sub/"]]

    res = json.loads(
        aws("s3api", "list-objects-v2", "--bucket", bucket, "--delimiter", "/").stdout
    )
    assert [p["Prefix"] for p in res["CommonPrefixes"]] == ["dir1/", "dir2/"]
    assert [o["Key"] for o in res["Contents"]] == ["dir3-not-a-dir", "top.txt"]


def test_aws_s3api_get_object_byte_ranges(aws, bucket, tmp_path):
    data = bytes(range(256)) * 4 + b"0123456789"  # 1034 bytes
    src = tmp_path / "src"
    src.write_bytes(data)
    aws("s3api", "put-object", "--bucket", bucket, "--key", "r", "--body", src)

    size = len(data)
    cases = {
        "bytes=0-9": (0, 9),
        "bytes=10-19": (10, 19),
        "bytes=-5": (size - 5, size - 1),  # suffix range: the last five bytes
        "bytes=5-": (5, size - 1),  # open range: from byte 5 to the end
        f"bytes=1000-{size + 500}": (1000, size - 1),  # end past the object is clamped
    }
    for rng, (first, last) in cases.items():
        out = tmp_path / "out"
        meta = json.loads(
            aws("s3api", "get-object", "--bucket", bucket, "--key", "r", "--range", rng, out).stdout
        )
        assert out.read_bytes() == data[first : last + 1], rng
        assert meta["ContentRange"] == f"bytes {first}-{last}/{size}", rng
        assert meta["ContentLength"] == last - first + 1, rng

    bad = aws(
        "s3api", "get-object", "--bucket", bucket, "--key", "r",
        "--range", f"bytes={size + 10}-{size + 20}", tmp_path / "bad", check=False,
    )
    assert bad.returncode != 0 and "InvalidRange" in bad.stderr, bad.stderr


def test_aws_s3api_copy_object_copies_or_replaces_metadata(aws, bucket, tmp_path):
    src = write_random_file(tmp_path / "src", 100_000)
    aws(
        "s3api", "put-object", "--bucket", bucket, "--key", "orig", "--body", src,
        "--content-type", "text/x-original", "--metadata", "color=blue,shape=round",
    )

    aws("s3api", "copy-object", "--bucket", bucket, "--key", "copy",
        "--copy-source", f"{bucket}/orig")
    head = json.loads(aws("s3api", "head-object", "--bucket", bucket, "--key", "copy").stdout)
    assert head["ETag"].strip('"') == md5_file(src)
    assert head["ContentType"] == "text/x-original"
    assert head["Metadata"] == {"color": "blue", "shape": "round"}

    aws("s3api", "copy-object", "--bucket", bucket, "--key", "replaced",
        "--copy-source", f"{bucket}/orig", "--metadata-directive", "REPLACE",
        "--content-type", "application/x-replaced", "--metadata", "size=large")
    head = json.loads(aws("s3api", "head-object", "--bucket", bucket, "--key", "replaced").stdout)
    assert head["ContentType"] == "application/x-replaced"
    assert head["Metadata"] == {"size": "large"}

    for key in ("copy", "replaced"):
        out = tmp_path / key
        aws("s3api", "get-object", "--bucket", bucket, "--key", key, out)
        assert sha256_file(out) == sha256_file(src)


def test_aws_s3api_delete_objects_removes_the_listed_keys(aws, s3, bucket):
    for i in range(6):
        s3.put_object(Bucket=bucket, Key=f"d/{i}", Body=b"x" * i)

    spec = {"Objects": [{"Key": "d/0"}, {"Key": "d/1"}, {"Key": "d/2"}, {"Key": "d/missing"}]}
    res = json.loads(
        aws("s3api", "delete-objects", "--bucket", bucket, "--delete", json.dumps(spec)).stdout
    )
    # Deleting a key that does not exist is reported as deleted, as S3 does.
    assert sorted(d["Key"] for d in res["Deleted"]) == ["d/0", "d/1", "d/2", "d/missing"]
    assert not res.get("Errors")
    assert sorted(listed(s3, bucket)) == ["d/3", "d/4", "d/5"]

    spec = {"Objects": [{"Key": "d/3"}, {"Key": "d/4"}], "Quiet": True}
    res = aws("s3api", "delete-objects", "--bucket", bucket, "--delete", json.dumps(spec)).stdout
    assert not (json.loads(res).get("Deleted") if res.strip() else None)
    assert sorted(listed(s3, bucket)) == ["d/5"]


def test_aws_s3api_head_object_reports_size_etag_and_headers(aws, bucket, tmp_path):
    src = write_random_file(tmp_path / "src", 4321)
    aws(
        "s3api", "put-object", "--bucket", bucket, "--key", "h", "--body", src,
        "--content-type", "image/x-test", "--cache-control", "max-age=60",
        "--content-disposition", 'attachment; filename="h.bin"',
        "--content-encoding", "identity", "--expires", "2030-01-01T00:00:00Z",
        "--metadata", "owner=granary",
    )
    head = json.loads(aws("s3api", "head-object", "--bucket", bucket, "--key", "h").stdout)
    assert head["ContentLength"] == 4321
    assert head["ETag"] == f'"{md5_file(src)}"'
    assert head["ContentType"] == "image/x-test"
    assert head["CacheControl"] == "max-age=60"
    assert head["ContentDisposition"] == 'attachment; filename="h.bin"'
    assert head["ContentEncoding"] == "identity"
    assert "2030" in str(head.get("Expires") or head.get("ExpiresString"))
    assert head["Metadata"] == {"owner": "granary"}
    assert re.match(r"\d{4}-\d\d-\d\d", str(head["LastModified"])) or head["LastModified"]

    missing = aws("s3api", "head-object", "--bucket", bucket, "--key", "nope", check=False)
    assert missing.returncode != 0 and "404" in missing.stderr, missing.stderr
