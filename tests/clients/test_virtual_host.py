"""Virtual-host-style addressing: the bucket named by the Host header under
`--s3-root-domain`, as SDKs address buckets by default against AWS. The name does
not resolve here, so requests go to 127.0.0.1 with the Host header set."""

import hashlib
import http.client
import os

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import ROOT_DOMAIN  # noqa: E402


def _request(server, method, bucket, path, body=b""):
    host = f"{bucket}.{ROOT_DOMAIN}:{server.s3_port}"
    req = AWSRequest(method=method, url=f"http://{host}{path}", data=body,
                     headers={"x-amz-content-sha256": hashlib.sha256(body).hexdigest()})
    SigV4Auth(Credentials(server.access_key, server.secret_key), "s3", "us-east-1").add_auth(req)
    conn = http.client.HTTPConnection("127.0.0.1", server.s3_port, timeout=30)
    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    conn.putheader("Host", host)
    for k, v in req.headers.items():
        conn.putheader(k, v)
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders()
    if body:
        conn.send(body)
    resp = conn.getresponse()
    return resp.status, resp.read()


def test_bucket_named_by_the_host_header(server, bucket):
    data = os.urandom(5000)
    status, text = _request(server, "PUT", bucket, "/dir/vhost-object", data)
    assert status == 200, text
    # The same object, seen path-style.
    got = server.client().get_object(Bucket=bucket, Key="dir/vhost-object")["Body"].read()
    assert got == data
    status, text = _request(server, "GET", bucket, "/dir/vhost-object")
    assert status == 200 and text == data
    status, text = _request(server, "GET", bucket, "/?list-type=2&prefix=dir%2F")
    assert status == 200 and b"<Key>dir/vhost-object</Key>" in text, text
