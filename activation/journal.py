"""A sink's state in the lake, journalled: a snapshot plus one small file per change since.

Both the email send ledger and the HubSpot sync state must survive a crash between two API
calls, and both change a little after every call. Rewriting the whole state each time would
cost megabytes per batch at 100k members, so each change is written as a small *journal* file
(``_state/activation/<sink>/journal/<seq>.json``) before it is applied in memory, and the
journals are folded into the snapshot (``compact``) at the start and the end of a run. Loading
reads the snapshot and replays the journals in order; replaying one twice changes nothing, so a
crash during a compaction loses nothing either.

A subclass names its sink and snapshot file and says how a change applies (:meth:`apply`) and
what the snapshot holds (:meth:`snapshot`). The snapshot is applied like any change, onto the
empty state the subclass's ``__init__`` sets up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Self

from activation.base import load_state, save_state
from peak.core.lake import Lake
from peak.core.layout import activation_state_key

#: Where the journal files of a sink's state live, under its state folder.
JOURNAL = "journal/"


class JournalledState:
    """State kept under ``_state/activation/<sink>/``: :attr:`snapshot_name` plus journals."""

    #: The sink whose state this is (its folder under ``_state/activation/``).
    sink: ClassVar[str]
    #: The snapshot's file name in that folder.
    snapshot_name: ClassVar[str] = "state.json"

    def __init__(self, lake: Lake) -> None:
        self.lake = lake
        self._journals: list[str] = []  # journal names not yet folded into the snapshot
        self._seq = 0  # the next journal's number
        self._dirty = False  # changed without a journal (see mark_changed)

    @classmethod
    def load(cls, lake: Lake) -> Self:
        """The state as the last change left it: the snapshot, then every journal in order."""
        state = cls(lake)
        state.apply(load_state(lake, cls.sink, cls.snapshot_name))
        prefix = activation_state_key(cls.sink, "")
        names = sorted(k[len(prefix) :] for k in lake.list(activation_state_key(cls.sink, JOURNAL)))
        names = [n for n in names if n.endswith(".json")]
        state._journals = names
        state._seq = 1 + max((int(n[len(JOURNAL) :].split(".")[0]) for n in names), default=-1)
        for name in names:
            state.apply(load_state(lake, cls.sink, name))
        return state

    def apply(self, change: Mapping[str, Any]) -> None:
        """Apply one change (a journal's content, or the snapshot) to the state in memory."""
        raise NotImplementedError

    def snapshot(self) -> dict[str, Any]:
        """The whole state as the snapshot file holds it."""
        raise NotImplementedError

    def journal(self, change: Mapping[str, Any]) -> None:
        """Durably note a change (one small journal file), then apply it."""
        name = f"{JOURNAL}{self._seq:08d}.json"
        save_state(self.lake, self.sink, dict(change), name)
        self._seq += 1
        self._journals.append(name)
        self.apply(change)

    def mark_changed(self) -> None:
        """The state changed in memory without a journal (a clean-up): the next
        :meth:`compact` writes it."""
        self._dirty = True

    def compact(self) -> None:
        """Fold the journals into the snapshot (nothing to do when nothing changed)."""
        if not self._journals and not self._dirty:
            return
        self._dirty = False
        save_state(self.lake, self.sink, self.snapshot(), self.snapshot_name)
        self.lake.delete_prefix(activation_state_key(self.sink, JOURNAL))
        self._journals = []
        self._seq = 0
