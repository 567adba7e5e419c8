"""s3cmd and rclone (Debian's packages) against granary: both check that ETags are MD5s."""

import re
import uuid

import pytest

from helpers import MiB, md5_file, tree_hashes, write_random_file


def no_md5_complaints(proc):
    text = (proc.stdout + proc.stderr).lower()
    assert "md5" not in text or "match" not in text, proc.stdout + proc.stderr
    assert "warning" not in text, proc.stdout + proc.stderr


# ----------------------------------------------------------------- s3cmd


def test_s3cmd_make_list_and_remove_bucket(s3cmd):
    name = f"s3cmd-mb-{uuid.uuid4().hex[:8]}"
    s3cmd("mb", f"s3://{name}")
    assert f"s3://{name}" in s3cmd("ls").stdout
    s3cmd("rb", f"s3://{name}")
    assert f"s3://{name}" not in s3cmd("ls").stdout


@pytest.mark.parametrize("size", [0, 1, 3071, 3 * 1024 + 1, MiB + 1, 20 * MiB])
def test_s3cmd_put_ls_get_round_trip_with_md5_check(s3cmd, bucket, tmp_path, size):
    # 20 MiB is above s3cmd's 15 MiB multipart chunk: it uploads that one in parts.
    src = write_random_file(tmp_path / "src.bin", size)
    no_md5_complaints(s3cmd("put", src, f"s3://{bucket}/dir/obj.bin"))

    lines = s3cmd("ls", f"s3://{bucket}/dir/").stdout.splitlines()
    assert len(lines) == 1 and lines[0].split()[-1] == f"s3://{bucket}/dir/obj.bin"
    assert int(lines[0].split()[2]) == size

    listing = s3cmd("ls", "--list-md5", f"s3://{bucket}/dir/").stdout
    if size < 15 * MiB:
        assert md5_file(src) in listing, listing

    dst = tmp_path / "dst.bin"
    # s3cmd compares the MD5 of what it downloaded with the ETag (or its stored md5).
    no_md5_complaints(s3cmd("get", f"s3://{bucket}/dir/obj.bin", dst))
    assert md5_file(dst) == md5_file(src)


def test_s3cmd_recursive_put_and_get_of_a_tree(s3cmd, bucket, size_tree, tmp_path):
    no_md5_complaints(s3cmd("put", "--recursive", f"{size_tree}/", f"s3://{bucket}/tree/"))
    listed = s3cmd("ls", "--recursive", f"s3://{bucket}/tree/").stdout.splitlines()
    assert len(listed) == len(tree_hashes(size_tree))

    down = tmp_path / "down"
    down.mkdir()
    no_md5_complaints(s3cmd("get", "--recursive", f"s3://{bucket}/tree/", f"{down}/"))
    assert tree_hashes(down) == tree_hashes(size_tree)

    s3cmd("del", "--recursive", "--force", f"s3://{bucket}/tree/")
    assert s3cmd("ls", "--recursive", f"s3://{bucket}/").stdout.strip() == ""


def test_s3cmd_sync_transfers_only_changes(s3cmd, bucket, tmp_path):
    src = tmp_path / "src"
    for i in range(5):
        write_random_file(src / f"f{i}", 1000 * i)
    s3cmd("sync", f"{src}/", f"s3://{bucket}/s/")
    write_random_file(src / "f1", 4321)  # changed content and size
    out = s3cmd("sync", f"{src}/", f"s3://{bucket}/s/").stdout
    uploaded = re.findall(r"upload: '([^']+)'", out)
    assert [u.rsplit("/", 1)[-1] for u in uploaded] == ["f1"], out
    down = tmp_path / "down"
    down.mkdir()
    s3cmd("sync", f"s3://{bucket}/s/", f"{down}/")
    assert tree_hashes(down) == tree_hashes(src)


# ----------------------------------------------------------------- rclone


def test_rclone_copy_ls_check_and_copy_back(rclone, bucket, size_tree, tmp_path):
    rclone("copy", size_tree, f"g:{bucket}/rc")

    # rclone ls prints "size path" for every object.
    listed = {}
    for line in rclone("ls", f"g:{bucket}/rc").stdout.splitlines():
        size, path = line.strip().split(maxsplit=1)
        listed[path] = int(size)
    local = {p.relative_to(size_tree).as_posix(): p.stat().st_size
             for p in size_tree.rglob("*") if p.is_file()}
    assert listed == local

    # rclone check compares sizes and MD5 hashes (the ETags) of every file.
    check = rclone("check", size_tree, f"g:{bucket}/rc")
    assert "0 differences found" in check.stderr, check.stderr
    assert "hashes could not be checked" not in check.stderr, check.stderr

    sums = dict(
        reversed(line.split(maxsplit=1))
        for line in rclone("md5sum", f"g:{bucket}/rc").stdout.splitlines()
    )
    assert sums == {p: md5_file(size_tree / p) for p in local}

    down = tmp_path / "down"
    rclone("copy", f"g:{bucket}/rc", down)
    assert tree_hashes(down) == tree_hashes(size_tree)


def test_rclone_multipart_upload_round_trips(rclone, bucket, tmp_path):
    src = tmp_path / "src"
    write_random_file(src / "big.bin", 12 * MiB + 3)
    # Lower the cutoff so rclone uses a multipart upload (it then stores the MD5 as metadata).
    rclone("copy", "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M", src, f"g:{bucket}/mp")
    check = rclone("check", src, f"g:{bucket}/mp")
    assert "0 differences found" in check.stderr, check.stderr
    down = tmp_path / "down"
    rclone("copy", f"g:{bucket}/mp", down)
    assert tree_hashes(down) == tree_hashes(src)


def test_rclone_sync_deletes_and_detects_changes(rclone, bucket, tmp_path):
    src = tmp_path / "src"
    for i in range(4):
        write_random_file(src / "d" / f"f{i}", 100 * i + 1)
    rclone("sync", src, f"g:{bucket}/sy")
    (src / "d" / "f0").unlink()
    write_random_file(src / "d" / "f1", 777)
    rclone("sync", src, f"g:{bucket}/sy")
    names = sorted(line.split(maxsplit=1)[1] for line in rclone("ls", f"g:{bucket}/sy").stdout.splitlines())
    assert names == ["d/f1", "d/f2", "d/f3"]
    check = rclone("check", src, f"g:{bucket}/sy")
    assert "0 differences found" in check.stderr, check.stderr
