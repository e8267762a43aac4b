"""Delivering the outbox: claiming due notices, sending them, recording what happened.

Delivery is at least once. A dispatcher claims due notices with a lease in one short
transaction, sends them with no transaction open (an SMTP server that hangs must not
hold the database's write lock), then records each outcome. A dispatcher that dies after
sending and before recording leaves the lease to expire: the notice is sent again, under
the same Message-ID.
"""

from __future__ import annotations

import random
import threading
from datetime import timedelta

from peakpilot.errors import DeliveryError, Refused
from peakpilot.notifications.channels import Channel, Envelope
from peakpilot.vocabulary import NoticeStatus
from peakpilot.workflow.runtime import Runtime
from peakpilot.workflow.snapshots import DispatchReport, Notice
from peakpilot.workflow.store.outbox import ClaimedNotice
from peakpilot.workflow.store.transaction import Transaction

LEASE = timedelta(minutes=5)
FIRST_RETRY = timedelta(minutes=5)
LONGEST_WAIT = timedelta(hours=12)
_JITTER = random.Random()


def retry_delay(attempts: int, rng: random.Random | None = None) -> timedelta:
    """Exponential backoff with full jitter in its upper half: the first retry falls due
    within FIRST_RETRY, each later one waits up to twice as long, at most LONGEST_WAIT."""
    ceiling: timedelta = min(FIRST_RETRY * 2 ** max(attempts - 1, 0), LONGEST_WAIT)
    jitter: float = (rng or _JITTER).uniform(0.5, 1.0)
    return ceiling * jitter


class Delivery:
    """The outbox's side of the Engine."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        # where each actor's notices go, read for each dispatch: a contacts file fixed
        # while the daemon runs delivers the notices that failed for want of an address
        self.contacts = runtime.contacts_for(runtime.program)

    def dispatch(
        self,
        channel: Channel,
        *,
        max_attempts: int,
        batch_size: int,
        max_batches: int | None,
        stop: threading.Event | None,
    ) -> DispatchReport:
        counts = {NoticeStatus.SENT: 0, NoticeStatus.FAILED: 0, NoticeStatus.DEAD: 0}
        batches = 0
        db = self.rt.db
        while True:
            claimed: list[ClaimedNotice] = []
            if (stop is None or not stop.is_set()) and (  # a stopping daemon claims nothing
                max_batches is None or batches < max_batches
            ):
                batches += 1
                with db.transaction(write=True) as tx:
                    claimed = tx.outbox.claim_due(self.rt.now(), batch_size, LEASE)
            if not claimed:
                return DispatchReport(
                    counts[NoticeStatus.SENT],
                    counts[NoticeStatus.FAILED],
                    counts[NoticeStatus.DEAD],
                )
            contacts = self.contacts
            for item in claimed:
                try:
                    channel.send(
                        Envelope(
                            item.id,
                            item.actor,
                            contacts.addresses(item.actor),
                            item.subject,
                            item.text,
                            item.html,
                            self.rt.local(item.created_at),
                        )
                    )
                except DeliveryError as error:
                    dead = error.permanent or item.attempts >= max_attempts
                    retry_at = None if dead else self.rt.now() + retry_delay(item.attempts)
                    with db.transaction(write=True) as tx:
                        tx.outbox.record_failure(item.id, str(error), retry_at=retry_at)
                    counts[NoticeStatus.DEAD if dead else NoticeStatus.FAILED] += 1
                else:
                    with db.transaction(write=True) as tx:
                        tx.outbox.record_sent(item.id, self.rt.now())
                    counts[NoticeStatus.SENT] += 1

    def retry(self, notice_id: str) -> Notice:
        """Put a failed or dead notice back in the queue, due now, with fresh attempts."""
        now = self.rt.now()

        def requeue(tx: Transaction) -> Notice:
            record = tx.outbox.get(notice_id)
            if record.status not in (NoticeStatus.FAILED, NoticeStatus.DEAD):
                raise Refused(
                    f"notice {record.id} is {record.status}: only a failed or dead notice is "
                    "retried"
                )
            tx.outbox.requeue(record.id, now)
            return self.rt.notice(tx.outbox.get(record.id))

        return self.rt.db.run(requeue)


__all__ = ["FIRST_RETRY", "LEASE", "LONGEST_WAIT", "Delivery", "retry_delay"]
