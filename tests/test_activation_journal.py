"""The journalled state the sinks share (activation.journal), on a local lake: no network."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from activation.journal import JOURNAL, JournalledState
from peak.core.lake import Lake
from peak.core.layout import activation_state_key


class Counts(JournalledState):
    """A toy state: name -> count; a change sets counts, None forgets one."""

    sink = "toy"
    snapshot_name = "counts.json"

    def __init__(self, lake: Lake) -> None:
        super().__init__(lake)
        self.counts: dict[str, int] = {}

    def apply(self, change: Mapping[str, Any]) -> None:
        for name, count in (change.get("counts") or {}).items():
            if count is None:
                self.counts.pop(name, None)
            else:
                self.counts[name] = count

    def snapshot(self) -> dict[str, Any]:
        return {"version": 1, "counts": self.counts}

    def set(self, **counts: int | None) -> None:
        self.journal({"counts": counts})


def files(lake: Lake) -> list[str]:
    prefix = activation_state_key("toy", "")
    return [key[len(prefix) :] for key in lake.list(prefix)]


def test_a_new_state_is_empty_and_writes_nothing(lake: Lake) -> None:
    state = Counts.load(lake)
    assert state.counts == {}
    state.compact()
    assert files(lake) == []


def test_each_change_is_one_journal_file_and_survives_a_reload(lake: Lake) -> None:
    state = Counts.load(lake)
    state.set(a=1)
    state.set(b=2, a=3)
    state.set(b=None)
    assert state.counts == {"a": 3}
    assert files(lake) == [f"{JOURNAL}{n:08d}.json" for n in range(3)]
    assert Counts.load(lake).counts == {"a": 3}  # replayed in order, nothing compacted


def test_compaction_folds_the_journals_into_the_snapshot(lake: Lake) -> None:
    state = Counts.load(lake)
    state.set(a=1, b=2)
    state.compact()
    assert files(lake) == ["counts.json"]
    assert lake.read_json(activation_state_key("toy", "counts.json")) == {
        "version": 1,
        "counts": {"a": 1, "b": 2},
    }
    state.set(c=3)  # numbering starts again after a compaction
    assert files(lake) == ["counts.json", f"{JOURNAL}00000000.json"]
    assert Counts.load(lake).counts == {"a": 1, "b": 2, "c": 3}


def test_a_reloaded_state_numbers_on_after_its_last_journal(lake: Lake) -> None:
    first = Counts.load(lake)
    first.set(a=1)
    first.set(a=2)
    second = Counts.load(lake)  # a crash before compacting: the journals are still there
    second.set(a=5)
    assert files(lake)[-1] == f"{JOURNAL}00000002.json"
    assert Counts.load(lake).counts == {"a": 5}


def test_replaying_a_journal_left_by_a_crashed_compaction_changes_nothing(lake: Lake) -> None:
    state = Counts.load(lake)
    state.set(a=1)
    journal = lake.read_json(activation_state_key("toy", f"{JOURNAL}00000000.json"))
    state.compact()
    # The snapshot was written, the crash came before the journals were deleted.
    lake.write_json(activation_state_key("toy", f"{JOURNAL}00000000.json"), journal)
    assert Counts.load(lake).counts == {"a": 1}


def test_only_json_files_are_journals(lake: Lake) -> None:
    Counts.load(lake).set(a=1)
    lake.write_bytes(activation_state_key("toy", f"{JOURNAL}README"), b"not a journal")
    state = Counts.load(lake)
    assert state.counts == {"a": 1}
    state.set(b=2)
    assert f"{JOURNAL}00000001.json" in files(lake)


def test_a_change_without_a_journal_is_written_by_the_next_compaction(lake: Lake) -> None:
    state = Counts.load(lake)
    state.counts["a"] = 1  # a clean-up done in memory
    state.compact()
    assert files(lake) == []  # not marked: nothing to write
    state.mark_changed()
    state.compact()
    assert Counts.load(lake).counts == {"a": 1}
    assert files(lake) == ["counts.json"]
