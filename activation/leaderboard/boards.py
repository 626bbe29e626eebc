"""The leaderboard in Redis as its readers see it: the key layout, board slugs, the score
encoding, the members' display data, and a checked connection.

Written once, used by the sink that writes the boards and by every reader (the dashboard's
live leaderboard, the tests): a reader needs nothing else from the sink.

*Order.* The score is the week's visits, nothing else: members with as many visits tie, as
they do in the mart (``rank()``). A member's rank is the count of higher scores plus one
(``ZCOUNT key (score +inf``), so tied members share it (sports tables show "=1");
:func:`ranks` derives the ranks of a board's top read with ``ZREVRANGE … WITHSCORES``, and
:func:`visits_of` reads the visits back. Among tied members Redis' order (by member id) means
nothing.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import redis

from activation.base import SinkError
from peak.core.settings import RedisSettings, redacted_url

#: The mart every board is published from (and the dashboard falls back to).
MART = "mart_leaderboard_weekly"
#: Visits must stay exact in Redis' doubles.
MAX_VISITS = (1 << 53) - 1
#: Slugs the key layout uses for itself within a week.
RESERVED_SLUGS = frozenset({"boards"})

#: The members' display fields, each one hash ``P:members:<field>`` of user_id -> value. Public:
#: the masked handle only, never personal data (a member's home gym is: macros/privacy.sql).
MEMBER_FIELDS = ("handle",)
#: Display fields earlier versions published; a run deletes them.
RETIRED_MEMBER_FIELDS = ("home_location",)


def slug(board: str) -> str:
    """A board's key segment: ASCII lower case, each run of other characters one ``-``.

    ``Peak Camden`` -> ``peak-camden``, ``Zürich Oerlikon`` -> ``zurich-oerlikon``, ``overall``
    stays ``overall``. A name with letters or digits that have no ASCII form (``北京 健身``,
    ``Peak 北京``) keeps what has one and ends in 8 hex digits of the name's SHA-256
    (``peak-…``), so such names get keys of their own (a name of none at all is refused).
    """
    ascii_name = unicodedata.normalize("NFKD", board).encode("ascii", "ignore").decode()
    value = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    if any(c.isalnum() and not _has_ascii_form(c) for c in board):
        digest = hashlib.sha256(board.encode()).hexdigest()[:8]
        value = f"{value}-{digest}" if value else digest
    if not value:
        raise SinkError(f"board {board!r} has no letter or digit to name its key")
    return value


def _has_ascii_form(char: str) -> bool:
    """Whether a letter or digit keeps an ASCII letter or digit once decomposed (``ü``: ``u``)."""
    return any(c.isascii() and c.isalnum() for c in unicodedata.normalize("NFKD", char))


def encode_score(visits: Any) -> Any:
    """The sorted-set score: the week's visits (ints, or element-wise NumPy int64 arrays)."""
    return visits


def visits_of(score: float) -> int:
    """The week's visits of a board entry, from its score."""
    return int(score)


def ranks(scores: Sequence[float]) -> list[int]:
    """The ranks of a board's top entries, highest score first (``ZREVRANGE`` from 0): one
    plus the count of higher scores, so equal scores share a rank (1, 1, 3)."""
    out: list[int] = []
    for i, score in enumerate(scores):
        out.append(out[-1] if i and score == scores[i - 1] else i + 1)
    return out


class WeekBoard(Protocol):
    """What names a board's key: its week and its slug."""

    @property
    def iso_week(self) -> str: ...

    @property
    def slug(self) -> str: ...


@dataclass(frozen=True)
class Keys:
    """Every key the leaderboard writes, under one prefix."""

    prefix: str

    def board(self, iso_week: str, board_slug: str) -> str:
        return f"{self.prefix}:{iso_week}:{board_slug}"

    def live(self, board: WeekBoard) -> str:
        return self.board(board.iso_week, board.slug)

    def temporary(self, board: WeekBoard, run_id: str) -> str:
        """Where a run fills a board before renaming it over the live key."""
        return f"{self.live(board)}:tmp:{run_id}"

    def boards(self, iso_week: str) -> str:
        return f"{self.prefix}:{iso_week}:boards"

    def members(self, field: str) -> str:
        """The hash of one display field (``handle``) for every member."""
        return f"{self.prefix}:members:{field}"

    def members_temporary(self, field: str, run_id: str) -> str:
        return f"{self.members(field)}:tmp:{run_id}"

    @property
    def weeks(self) -> str:
        return f"{self.prefix}:weeks"

    @property
    def meta(self) -> str:
        return f"{self.prefix}:meta"


def member_details(client: redis.Redis, keys: Keys, user_ids: Sequence[str]) -> list[str | None]:
    """Each member's handle from Redis, None where unknown."""
    if not user_ids:
        return []
    handles = client.hmget(keys.members("handle"), list(user_ids))

    def text(value: Any) -> str | None:
        return value.decode() if isinstance(value, bytes) else value

    return [text(h) for h in handles]


def connect(settings: RedisSettings) -> redis.Redis:
    """A client that has answered PING, or a one-line :class:`SinkError`."""
    where = redacted_url(settings.url)
    try:
        client = redis.Redis.from_url(
            settings.url,
            socket_timeout=settings.timeout,
            socket_connect_timeout=settings.timeout,
        )
    except ValueError as exc:
        raise SinkError(f"bad REDIS_URL {where}: {first_line(exc)}") from None
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        raise SinkError(f"redis unreachable at {where}: {first_line(exc)}") from None
    return client


def first_line(exc: BaseException) -> str:
    """An exception's message, its first line only."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
