"""RESP, the Redis wire protocol, packed here rather than by redis-py: a command and its
arguments, and pairs of arguments (``score member``, ``field value``) packed back to back by
Arrow's string kernels, with no Python loop per element.

redis-py's ``Pipeline`` packs and parses every argument in Python, several times slower for the
leaderboard's bulk writes (``bench/leaderboard.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_BULK = b"$%d\r\n%s\r\n"


def bulk(arg: bytes) -> bytes:
    """One bulk string."""
    return _BULK % (len(arg), arg)


def command(*args: bytes, body: bytes = b"", body_args: int = 0) -> bytes:
    """One RESP command: ``args`` then ``body``, ``body_args`` arguments already packed."""
    return b"*%d\r\n" % (len(args) + body_args) + b"".join(map(bulk, args)) + body


def pairs(first: Any, second: Any) -> bytes:
    """Pairs of RESP bulk strings (``score member`` of a ZADD, ``field value`` of an HSET),
    packed back to back by Arrow's string kernels: no Python loop per element."""
    packed = []
    for values in (first, second):
        array = values if isinstance(values, pa.Array) else pa.array(values)
        text = pc.cast(array, pa.string())
        size = pc.cast(pc.binary_length(text), pa.string())
        packed.append(pc.binary_join_element_wise("$", size, "\r\n", text, "\r\n", ""))
    joined = pc.binary_join_element_wise(packed[0], packed[1], "")
    if len(joined) == 0:
        return b""
    offsets = np.frombuffer(joined.buffers()[1], dtype=np.int32)
    start, end = offsets[joined.offset], offsets[joined.offset + len(joined)]
    return memoryview(joined.buffers()[2])[start:end].tobytes()
