"""SIGTERM stops the server gracefully: requests in flight finish, the stores are synced,
the process exits 0, and whatever was acknowledged is there after a restart."""

import hashlib
import os
import signal
import threading
import time

import pytest

from conftest import GranaryServer, granary_binary_path  # noqa: E402
from helpers import MiB


@pytest.mark.slow
def test_sigterm_during_large_uploads_exits_0_and_keeps_acknowledged_objects(tmp_path):
    server = GranaryServer(granary_binary_path(), tmp_path)
    server.start()
    try:
        s3 = server.client(retries=0, read_timeout=60)
        s3.create_bucket(Bucket="term")
        bodies = {f"big-{i}": os.urandom(48 * MiB) for i in range(3)}
        acked = {}

        def upload(key, body):
            try:
                s3.put_object(Bucket="term", Key=key, Body=body)
                acked[key] = hashlib.sha256(body).hexdigest()
            except Exception:
                pass  # refused or cut by the stop: not acknowledged

        threads = [threading.Thread(target=upload, args=item) for item in bodies.items()]
        for t in threads:
            t.start()
        time.sleep(0.3)
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(60) == 0, server.log_tail()
        for t in threads:
            t.join(60)
        assert "Granary stopped" in server.log_tail()

        server.start()
        check = server.client()
        for key, digest in acked.items():
            data = check.get_object(Bucket="term", Key=key)["Body"].read()
            assert hashlib.sha256(data).hexdigest() == digest, key
    finally:
        server.stop()
