"""A real Redis for the tests (a pytest plugin: ``pytest_plugins = ["tests.redis_server"]``).

``redis_url`` (per session, so per xdist worker) is the first of:

1. ``REDIS_URL`` when it is set and answers PING;
2. ``redis://127.0.0.1:6379/15`` when a server answers there (the development machines'; DB 15
   keeps clear of anything real);
3. a private ``redis-server`` from PATH on a free port, without persistence, stopped at the end.

Tests never flush a database: each takes a unique key prefix from ``redis_prefix`` and its keys
are removed afterwards, so workers and other users of the same server never meet.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis

DEFAULT_URL = "redis://127.0.0.1:6379/15"
NOT_FOUND = "redis-server not found: install redis or set REDIS_URL"


def answers(url: str, timeout: float = 1.0) -> bool:
    """Whether a Redis answers PING at ``url``."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, ValueError, OSError):
        return False


def free_port() -> int:
    """A TCP port nothing listens on (nothing will, unless someone takes it in between)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int, timeout: float = 10.0) -> subprocess.Popen[bytes]:
    """A throwaway redis-server on ``port`` (no RDB, no AOF), once it answers PING."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError(NOT_FOUND)
    args = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while not answers(f"redis://127.0.0.1:{port}/0", timeout=0.5):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_server(proc)
            raise RuntimeError(f"redis-server did not start on port {port}")
        time.sleep(0.05)
    return proc


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def private_server(url: str | None = None) -> Iterator[str]:
    """``url`` when given, else a throwaway redis-server on a free port for the block."""
    if url:
        yield url
        return
    port = free_port()
    proc = start_server(port)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_server(proc)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    env = os.environ.get("REDIS_URL")
    if env and answers(env):
        yield env
        return
    if answers(DEFAULT_URL):
        yield DEFAULT_URL
        return
    if shutil.which("redis-server") is None:
        pytest.fail(NOT_FOUND, pytrace=False)
    with private_server() as url:
        yield url


def delete_prefix(client: redis.Redis, prefix: str) -> int:
    """Delete every key under ``prefix`` (SCAN, never KEYS or FLUSHDB)."""
    deleted = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            deleted += client.delete(*batch)
            batch.clear()
    if batch:
        deleted += client.delete(*batch)
    return deleted


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix no other test, worker or user has; its keys are deleted afterwards."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    prefix = f"peak-test:{worker}:{uuid.uuid4().hex[:12]}:leaderboard"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        delete_prefix(client, prefix)
    finally:
        client.close()


@pytest.fixture(name="free_port")
def free_port_fixture() -> int:
    """A local TCP port nothing listens on (for "Redis is down" tests)."""
    return free_port()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client of the test Redis that decodes replies to str."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()
