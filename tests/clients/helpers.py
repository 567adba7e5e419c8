"""Small helpers shared by the client integration tests."""

import hashlib
import os
import socket
import uuid
from pathlib import Path

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


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def error_code(exc_info):
    return exc_info.value.response["Error"]["Code"]



def unique(prefix="k"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
