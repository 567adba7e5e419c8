"""Small helpers shared by the client integration tests."""

import hashlib
import os
import random
import socket
import time
import uuid
from pathlib import Path

import pytest

REGION = "us-east-1"
MiB = 1024 * 1024
KiB = 1024


# --------------------------------------------------------------------------- helpers


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(4 * MiB), b""):
            h.update(chunk)
    return h.hexdigest()


def md5_file(path):
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(4 * MiB), b""):
            h.update(chunk)
    return h.hexdigest()


def write_random_file(path, size):
    """Random (incompressible) content, written in pieces so big files stay cheap."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 4 * MiB)
            f.write(os.urandom(n))
            left -= n
    return path


def tree_hashes(root):
    """{relative posix path: sha256} for every file under root."""
    root = Path(root)
    return {
        p.relative_to(root).as_posix(): sha256_file(p)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


_PORTS_GIVEN = set()


def free_port():
    """A loopback port free now, below the kernel's ephemeral range (32768-60999), so that
    no client connection of this machine takes it as its source port before the server
    binds it (it happened: "address already in use" on a port nobody listened on). Never
    the same port twice in one test run."""
    rng = random.Random()
    for _ in range(1000):
        port = rng.randrange(20000, 32768)
        if port in _PORTS_GIVEN:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _PORTS_GIVEN.add(port)
        return port
    raise RuntimeError("no free loopback port between 20000 and 32767")


def error_code(exc_info):
    return error_code_of(exc_info.value)


def error_code_of(e):
    """The S3 error code of a botocore ClientError."""
    return e.response["Error"]["Code"]



def wait_for(predicate, what, timeout=30):
    """Polls `predicate` until it holds; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    pytest.fail(f"{what} did not happen within {timeout}s")


def unique(prefix="k"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _reflected_crc_table(poly, width):
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


def _bitrev(value, width):
    return int(f"{value:0{width}b}"[::-1], 2)


_CRC32C_TABLE = _reflected_crc_table(_bitrev(0x1EDC6F41, 32), 32)
_CRC64NVME_TABLE = _reflected_crc_table(_bitrev(0xAD93D23594C93659, 64), 64)


def _crc(data, table, mask):
    c = mask
    for b in data:
        c = table[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ mask


def crc32c(data):
    """CRC-32C (Castagnoli), as S3's x-amz-checksum-crc32c; pure Python, small inputs only."""
    return _crc(data, _CRC32C_TABLE, 0xFFFFFFFF)


def crc64nvme(data):
    """CRC-64/NVME, as S3's x-amz-checksum-crc64nvme; pure Python, small inputs only."""
    return _crc(data, _CRC64NVME_TABLE, 0xFFFFFFFFFFFFFFFF)


def error_code_from_xml(body):
    """The <Code> of an S3 XML error body (bytes), or None."""
    import re

    m = re.search(rb"<Code>([^<]*)</Code>", body)
    return m.group(1).decode() if m else None
