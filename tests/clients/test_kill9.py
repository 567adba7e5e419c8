"""kill -9 of the server during writes loses nothing it acknowledged.

Method: a server of its own (not the session's), writers in threads putting objects
of three kinds (inline, one block, several blocks) under the default durable fsync
policy and recording each acknowledged PUT with the SHA-256 of its body; SIGKILL at a
random moment; restart on the same data directory; every acknowledged object must read
back byte for byte, and the store must keep accepting writes. Several cycles, so later
cycles also recover stores that were killed before.
"""

import hashlib
import os
import random
import signal
import threading
import time

import pytest

from conftest import GranaryServer, granary_binary_path  # noqa: E402
from helpers import MiB

CYCLES = 6
WRITERS = 8
SIZES = [16, 5000, MiB + 17, 2 * MiB + 5]


def _writer(client, bucket, prefix, acked, stop):
    n = 0
    while not stop.is_set():
        size = random.choice(SIZES)
        body = os.urandom(size)
        key = f"{prefix}/{n}"
        n += 1
        try:
            client.put_object(Bucket=bucket, Key=key, Body=body)
        except Exception:
            # The server died under us: this write was not acknowledged.
            return
        acked.append((key, hashlib.sha256(body).hexdigest()))


@pytest.mark.slow
def test_sigkill_during_writes_loses_no_acknowledged_object(tmp_path):
    server = GranaryServer(granary_binary_path(), tmp_path)
    server.start()
    try:
        bucket = "kill9"
        server.client().create_bucket(Bucket=bucket)
        acked = []
        rng = random.Random(int.from_bytes(os.urandom(4), "big"))
        for cycle in range(CYCLES):
            stop = threading.Event()
            client = server.client(retries=0, connect_timeout=2, read_timeout=10)
            threads = [
                threading.Thread(target=_writer, args=(client, bucket, f"c{cycle}w{w}", acked, stop))
                for w in range(WRITERS)
            ]
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.3, 1.5))
            server.proc.send_signal(signal.SIGKILL)
            server.proc.wait(10)
            stop.set()
            for t in threads:
                t.join(30)
            server.start()
            check = server.client()
            for key, digest in acked:
                data = check.get_object(Bucket=bucket, Key=key)["Body"].read()
                assert hashlib.sha256(data).hexdigest() == digest, f"cycle {cycle}: {key} differs"
        assert len(acked) > CYCLES, "the writers should have had writes acknowledged"
        # The store still takes writes after all those crashes.
        server.client().put_object(Bucket=bucket, Key="after", Body=b"still here")
    finally:
        server.stop()
