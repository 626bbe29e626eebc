"""Erased members in Redis: every key under the leaderboard's prefix, searched and cleaned.

``peak forget`` (:mod:`peak.ops.forget`) calls :func:`erase` and, for the erasure report,
:func:`search`. They do not rely on the key layout of :mod:`activation.leaderboard.boards` alone:
every key under the prefix is scanned (``SCAN``), whatever its type, so a key a killed run left
behind (``…:tmp:<run_id>``) or one a later version adds is searched too. A member is removed
from a sorted set or a set (their id as a member), a hash (their id as a field, or a value naming
them) and a list; a string or a key whose name names them is deleted. A board that lost a member
also loses its content hash in ``P:meta``, so the next run rewrites it from the mart.
"""

from __future__ import annotations

from typing import Any

import redis

from activation.leaderboard.boards import Keys
from peak.core.erasure import Subject


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _glob(prefix: str) -> str:
    """A SCAN pattern for every key under ``prefix`` (glob characters in it escaped)."""
    escaped = "".join("\\" + c if c in "*?[]\\" else c for c in prefix)
    return f"{escaped}:*"


def _scan(client: redis.Redis, prefix: str) -> list[bytes]:
    return sorted(client.scan_iter(match=_glob(prefix), count=1000))


def _mentions(client: redis.Redis, key: bytes, subject: Subject) -> list[Any]:
    """The members, fields or items of one key that name a member (the key itself: [key])."""
    if subject.found_in(_text(key)):
        return [key]
    kind = _text(client.type(key))
    if kind == "zset":
        return [m for m, _ in client.zscan_iter(key, count=1000) if subject.found_in(_text(m))]
    if kind == "hash":
        return [
            f
            for f, v in client.hscan_iter(key, count=1000)
            if subject.found_in(_text(f)) or subject.found_in(_text(v))
        ]
    if kind == "set":
        return [m for m in client.sscan_iter(key, count=1000) if subject.found_in(_text(m))]
    if kind == "list":
        return [item for item in client.lrange(key, 0, -1) if subject.found_in(_text(item))]
    if kind == "string":
        return [key] if subject.found_in(_text(client.get(key))) else []
    return []


def search(client: redis.Redis, prefix: str, subject: Subject) -> tuple[int, int]:
    """(keys searched, entries naming a member) under the prefix."""
    keys = _scan(client, prefix)
    return len(keys), sum(len(_mentions(client, key, subject)) for key in keys)


def erase(client: redis.Redis, prefix: str, subject: Subject) -> int:
    """Remove the members from every key under the prefix; the entries removed."""
    removed = 0
    meta = Keys(prefix).meta
    stale_boards: list[str] = []
    for key in _scan(client, prefix):
        found = _mentions(client, key, subject)
        if not found:
            continue
        removed += len(found)
        if found == [key]:
            client.delete(key)
            continue
        kind = _text(client.type(key))
        if kind == "zset":
            client.zrem(key, *found)
            stale_boards.append(_text(key)[len(prefix) + 1 :])
        elif kind == "hash":
            client.hdel(key, *found)
        elif kind == "set":
            client.srem(key, *found)
        elif kind == "list":
            for item in found:
                client.lrem(key, 0, item)
    if stale_boards:
        client.hdel(meta, *stale_boards)  # their content changed: the next run rewrites them
    return removed
