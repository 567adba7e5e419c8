"""Access control with real clients: per-key read / write / owner permissions and the
create-bucket right (keys made with the `granary key` / `granary bucket` admin CLI),
canned ACLs, GetBucketAcl / GetObjectAcl, and anonymous reads of public-read buckets
with plain HTTP (requests and curl)."""

import json
import subprocess
import xml.etree.ElementTree as ET

import pytest
import requests
from botocore.exceptions import ClientError

from conftest import ROOT_DOMAIN
from helpers import error_code, error_code_from_xml, unique

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"


def admin(server, *args):
    argv = [server.binary, args[0], "--admin-addr", f"127.0.0.1:{server.admin_port}",
            "--data-dir", str(server.data_dir), "--json", *args[1:]]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{' '.join(argv)}\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout)


class Key:
    def __init__(self, server, create_bucket=False):
        args = ["key", "create", unique("t")] + (["--create-bucket"] if create_bucket else [])
        info = admin(server, *args)
        self.id = info["access_key_id"]
        self.s3 = server.client(access_key=self.id, secret_key=info["secret_access_key"],
                                retries=0)
        self.server = server

    def allow(self, bucket, *perms):
        admin(self.server, "bucket", "allow", bucket, "--key", self.id,
              *[f"--{p}" for p in perms])


def denied(call, head=False):
    """AccessDenied, 403 (a HEAD answer has no body: boto3 reports the status as code)."""
    with pytest.raises(ClientError) as e:
        call()
    assert error_code(e) == ("403" if head else "AccessDenied"), e.value.response
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def code_of(call):
    with pytest.raises(ClientError) as e:
        call()
    return error_code(e)


def grants_of(acl):
    out = set()
    for g in acl["Grants"]:
        grantee = g["Grantee"]
        who = grantee.get("ID") or grantee.get("URI")
        out.add((who, g["Permission"]))
    return out


def test_key_without_rights_is_denied_every_operation(s3, bucket, server):
    k = Key(server)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    denied(lambda: k.s3.get_object(Bucket=bucket, Key="k"))
    denied(lambda: k.s3.head_object(Bucket=bucket, Key="k"), head=True)
    denied(lambda: k.s3.list_objects_v2(Bucket=bucket))
    denied(lambda: k.s3.list_objects(Bucket=bucket))
    denied(lambda: k.s3.head_bucket(Bucket=bucket), head=True)
    denied(lambda: k.s3.put_object(Bucket=bucket, Key="k2", Body=b"x"))
    denied(lambda: k.s3.delete_object(Bucket=bucket, Key="k"))
    denied(lambda: k.s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k"}]}))
    denied(lambda: k.s3.copy_object(Bucket=bucket, Key="c", CopySource=f"{bucket}/k"))
    denied(lambda: k.s3.create_multipart_upload(Bucket=bucket, Key="m"))
    denied(lambda: k.s3.list_multipart_uploads(Bucket=bucket))
    denied(lambda: k.s3.get_bucket_acl(Bucket=bucket))
    denied(lambda: k.s3.get_object_acl(Bucket=bucket, Key="k"))
    denied(lambda: k.s3.put_bucket_acl(Bucket=bucket, ACL="public-read"))
    denied(lambda: k.s3.get_bucket_lifecycle_configuration(Bucket=bucket))
    denied(lambda: k.s3.delete_bucket(Bucket=bucket))
    denied(lambda: k.s3.create_bucket(Bucket=unique("nope")))
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"


def test_read_only_key_reads_but_does_not_write(s3, bucket, server):
    k = Key(server)
    k.allow(bucket, "read")
    s3.put_object(Bucket=bucket, Key="k", Body=b"shared")
    assert k.s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"shared"
    assert k.s3.head_object(Bucket=bucket, Key="k")["ContentLength"] == 6
    assert [o["Key"] for o in k.s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]
    k.s3.head_bucket(Bucket=bucket)
    assert "Uploads" not in k.s3.list_multipart_uploads(Bucket=bucket)
    assert k.s3.get_bucket_versioning(Bucket=bucket).get("Status") is None
    assert bucket in [b["Name"] for b in k.s3.list_buckets()["Buckets"]]
    assert ("READ") in {p for _, p in grants_of(k.s3.get_object_acl(Bucket=bucket, Key="k"))}
    denied(lambda: k.s3.put_object(Bucket=bucket, Key="k2", Body=b"x"))
    denied(lambda: k.s3.delete_object(Bucket=bucket, Key="k"))
    denied(lambda: k.s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k"}]}))
    denied(lambda: k.s3.create_multipart_upload(Bucket=bucket, Key="m"))
    denied(lambda: k.s3.copy_object(Bucket=bucket, Key="c", CopySource=f"{bucket}/k"))
    # Bucket configuration is the owner's.
    denied(lambda: k.s3.get_bucket_acl(Bucket=bucket))
    denied(lambda: k.s3.put_bucket_acl(Bucket=bucket, ACL="public-read"))
    denied(lambda: k.s3.put_bucket_tagging(
        Bucket=bucket, Tagging={"TagSet": [{"Key": "a", "Value": "b"}]}))
    denied(lambda: k.s3.delete_bucket(Bucket=bucket))
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"shared"


def test_write_only_key_writes_but_does_not_read(s3, bucket, server):
    k = Key(server)
    k.allow(bucket, "write")
    k.s3.put_object(Bucket=bucket, Key="w", Body=b"from writer")
    assert s3.get_object(Bucket=bucket, Key="w")["Body"].read() == b"from writer"
    denied(lambda: k.s3.get_object(Bucket=bucket, Key="w"))
    denied(lambda: k.s3.head_object(Bucket=bucket, Key="w"), head=True)
    denied(lambda: k.s3.list_objects_v2(Bucket=bucket))
    denied(lambda: k.s3.list_multipart_uploads(Bucket=bucket))
    # Multipart writes work; listing the parts is a read.
    up = k.s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    etag = k.s3.upload_part(Bucket=bucket, Key="mp", UploadId=up, PartNumber=1,
                            Body=b"p")["ETag"]
    denied(lambda: k.s3.list_parts(Bucket=bucket, Key="mp", UploadId=up))
    k.s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=up,
                                   MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == b"p"
    # Copying needs read on the source.
    denied(lambda: k.s3.copy_object(Bucket=bucket, Key="c", CopySource=f"{bucket}/w"))
    k.s3.delete_object(Bucket=bucket, Key="w")
    assert code_of(lambda: s3.head_object(Bucket=bucket, Key="w")) == "404"
    denied(lambda: k.s3.get_bucket_acl(Bucket=bucket))
    denied(lambda: k.s3.delete_bucket(Bucket=bucket))


def test_create_bucket_right_makes_the_key_owner(s3, server):
    without = Key(server)
    denied(lambda: without.s3.create_bucket(Bucket=unique("no-right")))
    k = Key(server, create_bucket=True)
    name = unique("owned")
    k.s3.create_bucket(Bucket=name)
    k.s3.put_object(Bucket=name, Key="a", Body=b"1")
    acl = k.s3.get_bucket_acl(Bucket=name)
    assert acl["Owner"]["ID"] == k.id
    assert grants_of(acl) == {(k.id, "FULL_CONTROL")}
    # The root key has no grant on a bucket it did not create.
    denied(lambda: s3.get_object(Bucket=name, Key="a"))
    assert name in [b["Name"] for b in k.s3.list_buckets()["Buckets"]]
    with pytest.raises(ClientError) as e:
        k.s3.create_bucket(Bucket=name)
    assert error_code(e) == "BucketAlreadyOwnedByYou"
    k.s3.delete_object(Bucket=name, Key="a")
    k.s3.delete_bucket(Bucket=name)


def test_bucket_and_object_acls_show_the_permissions(s3, bucket, server):
    reader, writer, both = Key(server), Key(server), Key(server)
    reader.allow(bucket, "read")
    writer.allow(bucket, "write")
    both.allow(bucket, "read", "write")
    root = server.access_key
    acl = s3.get_bucket_acl(Bucket=bucket)
    assert acl["Owner"]["ID"] == root
    assert grants_of(acl) == {
        (root, "FULL_CONTROL"),
        (reader.id, "READ"),
        (writer.id, "WRITE"),
        (both.id, "READ"),
        (both.id, "WRITE"),
    }
    s3.put_object(Bucket=bucket, Key="o", Body=b"x")
    oacl = s3.get_object_acl(Bucket=bucket, Key="o")
    assert oacl["Owner"]["ID"] == root
    assert grants_of(oacl) == {(root, "FULL_CONTROL"), (reader.id, "READ"), (both.id, "READ")}
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
    assert (ALL_USERS, "READ") in grants_of(s3.get_bucket_acl(Bucket=bucket))
    assert (ALL_USERS, "READ") in grants_of(s3.get_object_acl(Bucket=bucket, Key="o"))
    s3.put_bucket_acl(Bucket=bucket, ACL="private")
    assert (ALL_USERS, "READ") not in grants_of(s3.get_bucket_acl(Bucket=bucket))
    assert code_of(lambda: s3.get_object_acl(Bucket=bucket, Key="missing")) == "NoSuchKey"


def test_canned_acls_outside_private_and_public_read_are_refused(s3, bucket):
    for acl in ["public-read-write", "authenticated-read"]:
        assert code_of(lambda: s3.put_bucket_acl(Bucket=bucket, ACL=acl)) == "NotImplemented"
    assert code_of(lambda: s3.put_bucket_acl(
        Bucket=bucket, GrantRead=f'uri="{ALL_USERS}"')) == "NotImplemented"
    # An object has its bucket's ACL: private is accepted, public-read only on a public
    # bucket.
    s3.put_object(Bucket=bucket, Key="p", Body=b"x", ACL="private")
    assert code_of(lambda: s3.put_object(Bucket=bucket, Key="q", Body=b"x",
                                         ACL="public-read")) == "NotImplemented"
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
    s3.put_object(Bucket=bucket, Key="q", Body=b"x", ACL="public-read")
    s3.put_object_acl(Bucket=bucket, Key="q", ACL="public-read")


def anon(server, method, path, **kw):
    return requests.request(method, f"{server.endpoint}/{path}", timeout=30, **kw)


def test_anonymous_reads_only_public_read_buckets(s3, bucket, server):
    s3.put_object(Bucket=bucket, Key="dir/hello.txt", Body=b"hello world",
                  ContentType="text/plain")
    # Private: everything anonymous is refused.
    for method, path in [("HEAD", bucket), ("GET", f"{bucket}/dir/hello.txt"), ("HEAD", f"{bucket}/dir/hello.txt"),
                         ("GET", bucket), ("GET", f"{bucket}?list-type=2"), ("GET", "")]:
        r = anon(server, method, path)
        assert r.status_code == 403, (method, path, r.status_code)
        if method == "GET":
            assert error_code_from_xml(r.content) == "AccessDenied"
    # Made public with the canned ACL: GET, HEAD, ranges and listings work unsigned.
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
    r = anon(server, "GET", f"{bucket}/dir/hello.txt")
    assert (r.status_code, r.content) == (200, b"hello world")
    assert r.headers["Content-Type"] == "text/plain"
    r = anon(server, "HEAD", f"{bucket}/dir/hello.txt")
    assert (r.status_code, r.headers["Content-Length"]) == (200, "11")
    assert anon(server, "HEAD", bucket).status_code == 200
    r = anon(server, "GET", f"{bucket}/dir/hello.txt", headers={"Range": "bytes=6-"})
    assert (r.status_code, r.content) == (206, b"world")
    for query in ["", "?list-type=2&prefix=dir/"]:
        r = anon(server, "GET", f"{bucket}{query}")
        assert r.status_code == 200, r.content
        keys = [k.text for k in ET.fromstring(r.content).iter(
            "{http://s3.amazonaws.com/doc/2006-03-01/}Key")]
        assert keys == ["dir/hello.txt"]
    # S3 refuses response-header overrides on anonymous requests.
    r = anon(server, "GET", f"{bucket}/dir/hello.txt?response-content-type=x/y")
    assert (r.status_code, error_code_from_xml(r.content)) == (400, "InvalidRequest")
    assert admin(server, "bucket", "info", bucket)["public_read"] is True
    r = anon(server, "GET", f"{bucket}/missing")
    assert (r.status_code, error_code_from_xml(r.content)) == (404, "NoSuchKey")
    # Virtual-host style too.
    r = requests.get(f"{server.endpoint}/dir/hello.txt", timeout=30,
                     headers={"Host": f"{bucket}.{ROOT_DOMAIN}"})
    assert (r.status_code, r.content) == (200, b"hello world")
    # curl too.
    out = subprocess.run(["curl", "-s", "-o", "-", "-w", "\n%{http_code}",
                          f"{server.endpoint}/{bucket}/dir/hello.txt"],
                         capture_output=True, timeout=30, check=True).stdout
    assert out == b"hello world\n200"
    # Public read is not public write, nor access to the configuration.
    assert anon(server, "PUT", f"{bucket}/new", data=b"x").status_code == 403
    assert anon(server, "DELETE", f"{bucket}/dir/hello.txt").status_code == 403
    assert anon(server, "GET", f"{bucket}?acl").status_code == 403
    assert anon(server, "GET", f"{bucket}?uploads").status_code == 403
    assert anon(server, "GET", "").status_code == 403
    assert s3.get_object(Bucket=bucket, Key="dir/hello.txt")["Body"].read() == b"hello world"
    # Private again: refused again.
    s3.put_bucket_acl(Bucket=bucket, ACL="private")
    assert anon(server, "GET", f"{bucket}/dir/hello.txt").status_code == 403


def test_bucket_created_public_read_is_readable_anonymously(s3, server):
    name = unique("public")
    s3.create_bucket(Bucket=name, ACL="public-read")
    s3.put_object(Bucket=name, Key="k", Body=b"open")
    r = anon(server, "GET", f"{name}/k")
    assert (r.status_code, r.content) == (200, b"open")
    other = unique("private")
    s3.create_bucket(Bucket=other)
    s3.put_object(Bucket=other, Key="k", Body=b"closed")
    assert anon(server, "GET", f"{other}/k").status_code == 403
    # A bucket that does not exist is refused the same way (names do not leak).
    assert anon(server, "GET", f"{unique('nothing')}/k").status_code == 403
    for b in (name, other):
        s3.delete_object(Bucket=b, Key="k")
        s3.delete_bucket(Bucket=b)


def test_acl_documents_may_toggle_public_read(s3, bucket, server):
    """Clients that edit ACLs (read the policy, add the AllUsers grant, write it back) work;
    documents that change key grants are refused."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"doc")
    policy = s3.get_bucket_acl(Bucket=bucket)
    policy.pop("ResponseMetadata")
    public = {"Owner": policy["Owner"], "Grants": policy["Grants"] + [
        {"Grantee": {"Type": "Group", "URI": ALL_USERS}, "Permission": "READ"}]}
    s3.put_bucket_acl(Bucket=bucket, AccessControlPolicy=public)
    assert anon(server, "GET", f"{bucket}/k").content == b"doc"
    s3.put_bucket_acl(Bucket=bucket, AccessControlPolicy=policy)
    assert anon(server, "GET", f"{bucket}/k").status_code == 403
    stranger = {"Owner": policy["Owner"], "Grants": policy["Grants"] + [
        {"Grantee": {"Type": "CanonicalUser", "ID": "GKSOMEONE"}, "Permission": "READ"}]}
    assert code_of(lambda: s3.put_bucket_acl(Bucket=bucket, AccessControlPolicy=stranger)) \
        == "NotImplemented"
    assert code_of(lambda: s3.put_bucket_acl(Bucket=bucket, AccessControlPolicy={
        "Owner": policy["Owner"], "Grants": []})) == "NotImplemented"


def test_s3cmd_setacl_public_and_private(s3, bucket, server, s3cmd):
    s3.put_object(Bucket=bucket, Key="k", Body=b"via s3cmd")
    s3cmd("setacl", "--acl-public", f"s3://{bucket}")
    assert anon(server, "GET", f"{bucket}/k").content == b"via s3cmd"
    # On an object of a public bucket, public is what it already is.
    s3cmd("setacl", "--acl-public", f"s3://{bucket}/k")
    s3cmd("setacl", "--acl-private", f"s3://{bucket}")
    assert anon(server, "GET", f"{bucket}/k").status_code == 403


def test_aws_cli_canned_acls(aws, server, tmp_path):
    name = unique("cli-acl")
    aws("s3api", "create-bucket", "--bucket", name, "--acl", "public-read")
    f = tmp_path / "f.txt"
    f.write_bytes(b"from the cli")
    aws("s3", "cp", str(f), f"s3://{name}/f.txt", "--acl", "public-read")
    assert anon(server, "GET", f"{name}/f.txt").content == b"from the cli"
    acl = json.loads(aws("s3api", "get-bucket-acl", "--bucket", name).stdout)
    assert (ALL_USERS, "READ") in grants_of(acl)
    aws("s3api", "put-bucket-acl", "--bucket", name, "--acl", "private")
    assert anon(server, "GET", f"{name}/f.txt").status_code == 403
    refused = aws("s3", "cp", str(f), f"s3://{name}/g.txt", "--acl", "public-read", check=False)
    assert refused.returncode != 0 and "NotImplemented" in refused.stderr
    aws("s3", "rm", f"s3://{name}/f.txt")
    aws("s3api", "delete-bucket", "--bucket", name)


def signed(server, method, path):
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    req = AWSRequest(method=method, url=f"{server.endpoint}/{path}", data=b"")
    S3SigV4Auth(Credentials(server.access_key, server.secret_key), "s3",
                "us-east-1").add_auth(req)
    return requests.request(method, req.url, headers=dict(req.headers), timeout=30)


def test_subresources_with_other_methods_are_not_plain_writes(s3, bucket, server):
    """DELETE /bucket/key?acl must not delete the object, nor DELETE /bucket?uploads the
    bucket: a subresource with a method it does not take is 405."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"stays")
    for method, path in [("DELETE", f"{bucket}/k?acl"), ("DELETE", f"{bucket}/k?attributes"),
                         ("PUT", f"{bucket}/k?attributes"), ("DELETE", f"{bucket}?uploads"),
                         ("DELETE", f"{bucket}?versioning"), ("PUT", f"{bucket}?location"),
                         ("POST", f"{bucket}?acl")]:
        r = signed(server, method, path)
        assert (r.status_code, error_code_from_xml(r.content)) == (405, "MethodNotAllowed"), \
            (method, path, r.status_code, r.content)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"stays"
    s3.head_bucket(Bucket=bucket)
