"""Misbehaving clients cannot take the server down or starve a well-behaved one."""

import asyncio
import os
import random
import socket
import threading
import time
from collections import Counter

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from helpers import REGION

ATTACKERS = 500
ATTACK_SECONDS = 20


def read_status(sock, timeout=10.0):
    """The status code of the first response on sock, or None if it closed without one."""
    sock.settimeout(timeout)
    buf = b""
    while b"\r\n" not in buf:
        try:
            chunk = sock.recv(4096)
        except ConnectionResetError:
            return None
        if not chunk:
            return None
        buf += chunk
    line = buf.split(b"\r\n", 1)[0].decode("latin-1")
    assert line.startswith("HTTP/1."), line
    return int(line.split()[1])


MALFORMED = {
    "bad request line": b"THIS IS NOT HTTP\r\n\r\n",
    "missing version": b"GET /\r\nHost: x\r\n\r\n",
    "control bytes in target": b"GET /\x00\x01\x02 HTTP/1.1\r\nHost: x\r\n\r\n",
    "header without colon": b"GET / HTTP/1.1\r\nHost x\r\n\r\n",
    "oversized header (20 KiB)": b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20480 + b"\r\n\r\n",
    "oversized target (20 KiB)": b"GET /" + b"k" * 20480 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "too many headers": b"GET / HTTP/1.1\r\nHost: x\r\n"
    + b"".join(b"X-H%d: v\r\n" % i for i in range(2000)) + b"\r\n",
    "non-numeric content-length": b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    "negative content-length": b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    "conflicting content-lengths": b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
    b"Content-Length: 6\r\n\r\nhello!",
    "bad chunk size": b"PUT /b/k HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("payload", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_request_gets_a_4xx_and_server_keeps_serving(server, payload):
    with socket.create_connection(("127.0.0.1", server.s3_port), timeout=10) as sock:
        try:
            sock.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may stop reading once it has seen enough
        status = read_status(sock)
    assert status is not None and 400 <= status < 600 and status != 500, status
    server.client().list_buckets()


def test_random_garbage_is_refused_and_server_keeps_serving(server):
    rnd = random.Random(1234)
    for _ in range(50):
        with socket.create_connection(("127.0.0.1", server.s3_port), timeout=10) as sock:
            try:
                sock.sendall(bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 3000))))
                sock.shutdown(socket.SHUT_WR)
                status = read_status(sock)
            except (BrokenPipeError, ConnectionResetError):
                status = None
        # Either a 4xx answer or the connection closed; never a hang or a 500.
        assert status is None or 400 <= status < 500, status
    server.client().list_buckets()


# ----------------------------------------------------------------- 500 at once


def signed_put_head(server, bucket, key, body_len):
    """Head of a correctly signed PUT whose body the attacker will then trickle."""
    body = b"s" * body_len
    req = AWSRequest(method="PUT", url=f"{server.endpoint}/{bucket}/{key}", data=body,
                     headers={"Content-Length": str(body_len)})
    S3SigV4Auth(Credentials(server.access_key, server.secret_key), "s3", REGION).add_auth(req)
    lines = [f"PUT /{bucket}/{key} HTTP/1.1", f"Host: 127.0.0.1:{server.s3_port}"]
    lines += [f"{k}: {v}" for k, v in req.headers.items() if k.lower() != "host"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Attack:
    def __init__(self, server, bucket, stop_at):
        self.port = server.s3_port
        self.stop_at = stop_at
        self.stats = Counter()
        self.open = 0
        self.slow_put = signed_put_head(server, bucket, "slow-body", 256 * 1024)
        self.modes = [
            self.garbage, self.truncated_head_then_close, self.truncated_head_then_idle,
            self.oversized_headers, self.slow_body, self.slow_headers, self.pipelined_flood,
            self.expect_continue_then_silence,
        ]

    def left(self):
        return self.stop_at - time.monotonic()

    async def idle(self, reader, seconds):
        """Wait (reading and discarding) until seconds pass or the server closes."""
        try:
            while True:
                data = await asyncio.wait_for(reader.read(65536), max(0.01, min(seconds, self.left())))
                if not data:
                    self.stats["closed_by_server"] += 1
                    return False
        except asyncio.TimeoutError:
            return True

    async def garbage(self, reader, writer, rnd):
        for _ in range(rnd.randrange(1, 5)):
            writer.write(os.urandom(rnd.randrange(1, 8192)))
            await writer.drain()
        await self.idle(reader, 2)

    async def truncated_head_then_close(self, reader, writer, rnd):
        head = b"PUT /bucket/key HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\nX-Amz"
        writer.write(head[: rnd.randrange(1, len(head))])
        await writer.drain()
        await asyncio.sleep(rnd.random())

    async def truncated_head_then_idle(self, reader, writer, rnd):
        writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Partial: ")
        await writer.drain()
        await self.idle(reader, self.left())

    async def oversized_headers(self, reader, writer, rnd):
        if rnd.random() < 0.5:
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * (17 * 1024 + rnd.randrange(64 * 1024)) + b"\r\n\r\n")
        else:
            writer.write(b"GET / HTTP/1.1\r\n" + b"X-Many: v\r\n" * 5000 + b"\r\n")
        await writer.drain()
        await self.idle(reader, 5)

    async def slow_body(self, reader, writer, rnd):
        writer.write(self.slow_put)
        await writer.drain()
        while self.left() > 0:
            writer.write(b"s" * rnd.randrange(1, 16))
            await writer.drain()
            if not await self.idle(reader, 0.5 + rnd.random()):
                return

    async def slow_headers(self, reader, writer, rnd):
        writer.write(b"GET / HTTP/1.1\r\n")
        while self.left() > 0:
            writer.write(b"X-Slow-%d: %d\r\n" % (rnd.randrange(1000), rnd.randrange(1000)))
            await writer.drain()
            if not await self.idle(reader, 0.5 + rnd.random()):
                return

    async def pipelined_flood(self, reader, writer, rnd):
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 200)
        await writer.drain()
        await self.idle(reader, 2)

    async def expect_continue_then_silence(self, reader, writer, rnd):
        writer.write(b"PUT /bucket/key HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        await writer.drain()
        await self.idle(reader, self.left())

    async def attacker(self, i):
        rnd = random.Random(i)
        mode = self.modes[i % len(self.modes)]
        while self.left() > 0:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", self.port), 5)
            except (OSError, asyncio.TimeoutError):
                self.stats["connect_failures"] += 1
                await asyncio.sleep(0.2)
                continue
            self.stats["connections"] += 1
            self.open += 1
            self.stats["max_open"] = max(self.stats["max_open"], self.open)
            try:
                await mode(reader, writer, rnd)
            except (OSError, asyncio.TimeoutError):
                self.stats["errors"] += 1
            finally:
                self.open -= 1
                writer.transport.abort()

    async def run(self):
        await asyncio.gather(*(self.attacker(i) for i in range(ATTACKERS)))


@pytest.mark.slow
def test_500_abusive_connections_do_not_starve_a_well_behaved_client(server, bucket):
    client = server.client(connect_timeout=10, read_timeout=30)
    client.put_object(Bucket=bucket, Key="warmup", Body=b"x")

    stop_at = time.monotonic() + ATTACK_SECONDS
    attack = Attack(server, bucket, stop_at)
    failure = []

    def run_attack():
        try:
            asyncio.run(attack.run())
        except Exception as e:  # noqa: BLE001 - reported below
            failure.append(e)

    thread = threading.Thread(target=run_attack, daemon=True)
    thread.start()

    ops = Counter()
    errors = []
    n = 0
    while time.monotonic() < stop_at:
        n += 1
        key = f"good/{n}"
        data = os.urandom(random.randrange(0, 256 * 1024))
        try:
            client.put_object(Bucket=bucket, Key=key, Body=data)
            assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == data
            client.head_object(Bucket=bucket, Key=key)
            listed = client.list_objects_v2(Bucket=bucket, Prefix=f"good/{n}")["Contents"]
            assert key in [o["Key"] for o in listed]
            if n % 3 == 0:
                client.delete_object(Bucket=bucket, Key=key)
            ops["rounds"] += 1
        except Exception as e:  # noqa: BLE001 - every failure is reported
            errors.append(f"round {n}: {e!r}")
        assert server.alive(), server.log_tail()

    thread.join(ATTACK_SECONDS + 30)
    assert not thread.is_alive(), "attack did not wind down"
    assert not failure, failure
    assert not errors, f"{len(errors)} failed rounds of {n}: {errors[:5]} stats={dict(attack.stats)}"
    print("attack stats", dict(attack.stats), "rounds", ops["rounds"])
    assert ops["rounds"] >= 1
    assert attack.stats["connections"] >= ATTACKERS, dict(attack.stats)

    # Afterwards the server answers normally, on fresh connections too.
    fresh = server.client()
    fresh.list_buckets()
    fresh.put_object(Bucket=bucket, Key="after", Body=b"after the storm")
    assert fresh.get_object(Bucket=bucket, Key="after")["Body"].read() == b"after the storm"
