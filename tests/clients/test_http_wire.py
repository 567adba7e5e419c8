"""HTTP framing that real clients depend on, checked on the raw socket."""

import hashlib
import socket
import threading

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from helpers import REGION


def signed_put(server, bucket, key, body, extra_headers=None):
    headers = {"Content-Length": str(len(body))}
    headers.update(extra_headers or {})
    req = AWSRequest(method="PUT", url=f"{server.endpoint}/{bucket}/{key}", data=body,
                     headers=headers)
    S3SigV4Auth(Credentials(server.access_key, server.secret_key), "s3", REGION).add_auth(req)
    lines = [f"PUT /{bucket}/{key} HTTP/1.1", f"Host: 127.0.0.1:{server.s3_port}"]
    lines += [f"{k}: {v}" for k, v in req.headers.items() if k.lower() != "host"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Conn:
    """Reads HTTP/1.1 responses strictly: every head must end with an empty line."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.buf = b""

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed; unparsed: {self.buf[:300]!r}")
        self.buf += chunk

    def response(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = lines[0].split()
        assert status[0] == "HTTP/1.1", lines[0]
        headers = {}
        for line in lines[1:]:
            assert ":" in line and not line.startswith("HTTP/"), f"bad header line {line!r} in {lines}"
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        code = int(status[1])
        if code >= 200 and "content-length" in headers:
            n = int(headers["content-length"])
            while len(self.buf) < n:
                self._fill()
            body, self.buf = self.buf[:n], self.buf[n:]
        else:
            body = b""
        return code, headers, body

    def close(self):
        self.sock.close()


def test_pipelined_puts_past_the_read_buffer_are_all_stored(server, bucket):
    """Several MiB of pipelined requests in one send: heads and bodies fall across the
    server's 256 KiB reads at every offset, and the unread tail is moved to the front of its
    read buffer many times. Each request must be answered, in order, and stored whole."""
    bodies = [bytes([i % 251]) * (1000 + 37 * i) for i in range(400)]
    wire = b"".join(signed_put(server, bucket, f"pp{i}", b) + b for i, b in enumerate(bodies))
    assert len(wire) > 4 * 256 * 1024
    c = Conn(server.s3_port)
    sender = threading.Thread(target=c.sock.sendall, args=(wire,))
    sender.start()
    try:
        for i, b in enumerate(bodies):
            code, headers, _ = c.response()
            assert code == 200, (i, code, headers)
            assert headers["etag"] == f'"{hashlib.md5(b).hexdigest()}"', i
    finally:
        sender.join()
        c.close()
    s3 = server.client()
    for i in (0, 1, 199, 398, 399):
        assert s3.get_object(Bucket=bucket, Key=f"pp{i}")["Body"].read() == bodies[i]


@pytest.mark.parametrize("wait_for_continue", [True, False], ids=["waits", "does-not-wait"])
def test_expect_100_continue_put_then_keep_alive(server, bucket, wait_for_continue):
    body = b"0123456789abcdef" * 4096
    c = Conn(server.s3_port)
    try:
        for key in ("first", "second"):  # the second request reuses the connection
            c.sock.sendall(signed_put(server, bucket, key, body, {"Expect": "100-continue"}))
            if wait_for_continue:
                code, _, _ = c.response()
                assert code == 100
                c.sock.sendall(body)
                code, headers, _ = c.response()
            else:
                c.sock.sendall(body)
                code, headers, _ = c.response()
                if code == 100:
                    code, headers, _ = c.response()
            assert code == 200, (code, headers)
            assert headers["etag"] == f'"{hashlib.md5(body).hexdigest()}"'
        assert c.buf == b"", c.buf
    finally:
        c.close()
    s3 = server.client()
    for key in ("first", "second"):
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body


def test_pipelined_requests_are_answered_in_order(server, bucket):
    s3 = server.client()
    for i in range(3):
        s3.put_object(Bucket=bucket, Key=f"p{i}", Body=f"body-{i}".encode() * (i + 1))
    reqs = b""
    for i in range(3):
        r = AWSRequest(method="GET", url=f"{server.endpoint}/{bucket}/p{i}")
        S3SigV4Auth(Credentials(server.access_key, server.secret_key), "s3", REGION).add_auth(r)
        lines = [f"GET /{bucket}/p{i} HTTP/1.1", f"Host: 127.0.0.1:{server.s3_port}"]
        lines += [f"{k}: {v}" for k, v in r.headers.items() if k.lower() != "host"]
        reqs += ("\r\n".join(lines) + "\r\n\r\n").encode()
    c = Conn(server.s3_port)
    try:
        c.sock.sendall(reqs)
        for i in range(3):
            code, _, body = c.response()
            assert code == 200 and body == f"body-{i}".encode() * (i + 1)
    finally:
        c.close()
