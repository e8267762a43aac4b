"""One transaction's repositories: each aggregate's statements in one module, composed
here and handed out by ``Database.transaction`` (:mod:`peakpilot.workflow.store.database`).

A repository holds no state but the transaction's statements: the Engine asks the
transaction for the ones it needs (``tx.nominations.get(...)``), and every table is
written by exactly one of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING

from peakpilot.workflow.store.batches import Batches
from peakpilot.workflow.store.driver import Statements
from peakpilot.workflow.store.nominations import Nominations
from peakpilot.workflow.store.programs import Programs
from peakpilot.workflow.store.trail import AuditTrail

if TYPE_CHECKING:  # imported by their first use: a read command needs none of them
    from peakpilot.workflow.store.daemons import Daemons
    from peakpilot.workflow.store.idempotency import RememberedCalls
    from peakpilot.workflow.store.lapses import Lapses
    from peakpilot.workflow.store.materials import Materials
    from peakpilot.workflow.store.outbox import Outbox
    from peakpilot.workflow.store.timers import Timers

# called in a lapse chunk after its locking read, with the ids read (a test's fault hook)
LapseProbe = Callable[["Transaction", Sequence[str]], None]


class Transaction:
    """The repositories of one transaction, made as they are first asked for."""

    def __init__(self, statements: Statements, after_lapse_read: LapseProbe | None = None) -> None:
        self.statements = statements
        self._after_lapse_read = after_lapse_read

    @cached_property
    def trail(self) -> AuditTrail:
        return AuditTrail(self.statements)

    @cached_property
    def nominations(self) -> Nominations:
        return Nominations(self.statements, self.trail)

    @cached_property
    def lapses(self) -> Lapses:
        from peakpilot.workflow.store.lapses import Lapses

        probe = self._after_lapse_read
        return Lapses(self.statements, None if probe is None else lambda ids: probe(self, ids))

    @cached_property
    def batches(self) -> Batches:
        return Batches(self.statements)

    @cached_property
    def timers(self) -> Timers:
        from peakpilot.workflow.store.timers import Timers

        return Timers(self.statements)

    @cached_property
    def outbox(self) -> Outbox:
        from peakpilot.workflow.store.outbox import Outbox

        return Outbox(self.statements)

    @cached_property
    def programs(self) -> Programs:
        return Programs(self.statements)

    @cached_property
    def materials(self) -> Materials:
        from peakpilot.workflow.store.materials import Materials

        return Materials(self.statements)

    @cached_property
    def daemons(self) -> Daemons:
        from peakpilot.workflow.store.daemons import Daemons

        return Daemons(self.statements)

    @cached_property
    def remembered(self) -> RememberedCalls:
        from peakpilot.workflow.store.idempotency import RememberedCalls

        return RememberedCalls(self.statements)


__all__ = ["LapseProbe", "Transaction"]
