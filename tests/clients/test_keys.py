"""Access keys made with `granary key` see only what they were granted.

These need the `granary key` / `granary bucket` admin subcommands; they skip (marked
keycli) on a binary that does not have them yet.
"""

import json
import subprocess

import pytest
from botocore.exceptions import ClientError

from helpers import error_code, unique

pytestmark = pytest.mark.keycli


def admin(server, group, *args):
    argv = [server.binary, group, "--admin-addr", f"127.0.0.1:{server.admin_port}",
            "--data-dir", str(server.data_dir), "--json", *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{' '.join(argv)}\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout) if proc.stdout.strip().startswith(("{", "[")) else proc.stdout


@pytest.fixture(scope="module")
def key_cli(server):
    probe = subprocess.run([server.binary, "key", "--help"], capture_output=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip("this granary has no `key` subcommand yet")
    return lambda group, *args: admin(server, group, *args)


@pytest.fixture
def new_key(server, key_cli):
    info = key_cli("key", "create", unique("tester"))
    key_id, secret = info["access_key_id"], info["secret_access_key"]
    yield key_id, server.client(access_key=key_id, secret_key=secret, retries=0)
    try:
        key_cli("key", "delete", key_id)
    except AssertionError:
        pass


def denied(call):
    with pytest.raises(ClientError) as e:
        call()
    assert error_code(e) == "AccessDenied", e.value.response
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_key_cli_create_list_info_show_the_key(key_cli, new_key):
    key_id, _ = new_key
    assert key_id in [k["access_key_id"] for k in key_cli("key", "list")]
    assert key_cli("key", "info", key_id)["access_key_id"] == key_id


def test_new_key_without_grants_is_denied_everything(s3, bucket, new_key):
    _, other = new_key
    s3.put_object(Bucket=bucket, Key="k", Body=b"root's")
    assert bucket not in [b["Name"] for b in other.list_buckets().get("Buckets", [])]
    denied(lambda: other.get_object(Bucket=bucket, Key="k"))
    denied(lambda: other.put_object(Bucket=bucket, Key="k2", Body=b"x"))
    denied(lambda: other.list_objects_v2(Bucket=bucket))
    denied(lambda: other.delete_object(Bucket=bucket, Key="k"))
    denied(lambda: other.create_bucket(Bucket=unique("not-allowed")))


def test_read_grant_allows_reading_but_not_writing(s3, bucket, key_cli, new_key):
    key_id, other = new_key
    s3.put_object(Bucket=bucket, Key="k", Body=b"shared")
    key_cli("bucket", "allow", bucket, "--key", key_id, "--read")
    assert other.get_object(Bucket=bucket, Key="k")["Body"].read() == b"shared"
    assert [o["Key"] for o in other.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]
    denied(lambda: other.put_object(Bucket=bucket, Key="k2", Body=b"x"))

    key_cli("bucket", "allow", bucket, "--key", key_id, "--write")
    other.put_object(Bucket=bucket, Key="k2", Body=b"written")
    assert s3.get_object(Bucket=bucket, Key="k2")["Body"].read() == b"written"

    key_cli("bucket", "deny", bucket, "--key", key_id, "--read", "--write")
    denied(lambda: other.get_object(Bucket=bucket, Key="k"))


def test_deleted_key_is_unknown(server, key_cli, bucket):
    info = key_cli("key", "create", unique("doomed"))
    key_cli("key", "delete", info["access_key_id"])
    gone = server.client(access_key=info["access_key_id"],
                         secret_key=info["secret_access_key"], retries=0)
    with pytest.raises(ClientError) as e:
        gone.list_objects_v2(Bucket=bucket)
    assert error_code(e) == "InvalidAccessKeyId"


def cli_text(server, *args):
    """`granary <args>` without --json: (exit status, stdout + stderr)."""
    argv = [server.binary, args[0], "--admin-addr", f"127.0.0.1:{server.admin_port}",
            "--data-dir", str(server.data_dir), *args[1:]]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    return proc.returncode, proc.stdout + proc.stderr


def grantees(s3, bucket):
    return {g["Grantee"].get("ID") for g in s3.get_bucket_acl(Bucket=bucket)["Grants"]}


def test_deny_without_permission_flags_revokes_every_permission(server, s3, bucket, key_cli,
                                                                new_key):
    """Issue 25: `bucket deny B --key K` without --read/--write/--owner did nothing and
    exited 0, leaving an operator to believe the key had lost its access."""
    key_id, other = new_key
    s3.put_object(Bucket=bucket, Key="k", Body=b"secret")
    key_cli("bucket", "allow", bucket, "--key", key_id, "--read", "--write", "--owner")
    assert other.get_object(Bucket=bucket, Key="k")["Body"].read() == b"secret"
    status, text = cli_text(server, "bucket", "deny", bucket, "--key", key_id)
    assert status == 0 and "revoked every permission" in text, text
    assert key_id not in [k["name"] for k in key_cli("bucket", "info", bucket)["keys"]]
    denied(lambda: other.get_object(Bucket=bucket, Key="k"))
    denied(lambda: other.put_object(Bucket=bucket, Key="k2", Body=b"x"))
    # An allow that names no permission is refused, not done as nothing.
    status, text = cli_text(server, "bucket", "allow", bucket, "--key", key_id)
    assert status != 0 and "--read" in text, text


def test_deleting_a_key_removes_its_grants_everywhere(server, s3, bucket, key_cli):
    """Issue 25: a deleted key's grants stayed listed by `bucket info`, the admin API and
    GetBucketAcl."""
    info = key_cli("key", "create", unique("leaving"))
    key_id = info["access_key_id"]
    key_cli("bucket", "allow", bucket, "--key", key_id, "--read", "--write")
    assert key_id in grantees(s3, bucket)
    key_cli("key", "delete", key_id)
    assert key_id not in [k["name"] for k in key_cli("bucket", "info", bucket)["keys"]]
    listed = {k["name"] for b in key_cli("bucket", "list") for k in b["keys"]}
    assert key_id not in listed
    assert key_id not in grantees(s3, bucket)
