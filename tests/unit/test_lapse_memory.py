"""LapseMemory: what a tick's chunks lapsed counts only once their transaction committed."""

from __future__ import annotations

from peakpilot.workflow.store.lapses import Lapsed
from peakpilot.workflow.timers import LapseMemory


def lapsed(nomination_id: str) -> Lapsed:
    return (nomination_id, "hebei", "city", f"name {nomination_id}", "drafted")


def test_a_chunk_counts_once_its_transaction_committed() -> None:
    memory = LapseMemory()
    memory.begin()
    memory.add("2023-first", [lapsed("b"), lapsed("a")])
    assert memory.lapsed("2023-first") == [lapsed("b"), lapsed("a")]  # in its transaction
    memory.committed()
    memory.begin()
    memory.add("2023-first", [lapsed("c")])
    memory.committed()
    assert memory.lapsed("2023-first") == [lapsed("b"), lapsed("a"), lapsed("c")]
    assert memory.lapsed("2024-second") == []


def test_what_a_transaction_that_did_not_commit_lapsed_is_forgotten() -> None:
    memory = LapseMemory()
    memory.begin()
    memory.add("2023-first", [lapsed("a")])
    memory.committed()
    memory.begin()
    memory.add("2023-first", [lapsed("b")])  # this transaction rolls back...
    memory.begin()  # ...and the next one starts
    assert memory.lapsed("2023-first") == [lapsed("a")]
