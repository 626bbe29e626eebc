"""The Redis leaderboard: ``mart_leaderboard_weekly`` as one sorted set per week and board.

One job per module, each importing only the ones above it:

- :mod:`~activation.leaderboard.boards`: the read side, shared by the sink and every reader (the
  dashboard): the key layout (``Keys``), board slugs, the score (``encode_score``,
  ``visits_of``, ``ranks``), the members' display data (``member_details``) and a checked
  ``connect``;
- :mod:`~activation.leaderboard.resp`: RESP, packed with Arrow;
- :mod:`~activation.leaderboard.publication`: what a run publishes (boards, members) and the bulk
  writes under temporary keys;
- :mod:`~activation.leaderboard.mart`: reading the mart's window of weeks into a publication;
- :mod:`~activation.leaderboard.sink`: ``LeaderboardSink``: a run, its atomic commit and the
  check against the mart.

This package's own namespace holds the names other stages use; a reader of the boards needs only
:mod:`~activation.leaderboard.boards`.
"""

from activation.leaderboard.boards import (
    MART,
    MEMBER_FIELDS,
    Keys,
    connect,
    encode_score,
    member_details,
    ranks,
    slug,
    visits_of,
)
from activation.leaderboard.sink import LeaderboardSink

__all__ = [
    "MART",
    "MEMBER_FIELDS",
    "Keys",
    "LeaderboardSink",
    "connect",
    "encode_score",
    "member_details",
    "ranks",
    "slug",
    "visits_of",
]
