"""Failpoints: deterministic crash sites for the crash-safety tests.

``PEAK_FAILPOINT=<name>[:<n>]`` makes the process die abruptly (``os._exit``, no clean-up, like a
SIGKILL) the ``n``-th time (default: first) execution reaches ``failpoint(<name>)``. Unset, a
failpoint costs one dictionary lookup.
"""

from __future__ import annotations

import os
from collections import Counter

_hits: Counter[str] = Counter()


def failpoint(name: str) -> None:
    spec = os.environ.get("PEAK_FAILPOINT")
    if not spec:
        return
    target, _, count = spec.partition(":")
    if target != name:
        return
    _hits[name] += 1
    if _hits[name] >= int(count or 1):
        os._exit(137)
