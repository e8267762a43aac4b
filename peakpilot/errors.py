"""The one exception hierarchy of peakpilot.

Every refusal an embedding backend or the CLI can meet is a :class:`PeakpilotError`
subclass, and each subclass maps to exactly one CLI exit code, so that a script can tell
"fix your input" from "someone else got there first" without parsing messages. Foreign
exceptions (SQLAlchemy, transitions, YAML) are translated at the adapter that calls the
foreign library, never allowed to leak.
"""

from __future__ import annotations


class PeakpilotError(Exception):
    """Something peakpilot refused or could not do."""

    exit_code: int = 1


class UsageError(PeakpilotError):
    """The call asks for something peakpilot does not offer: a database URL of a kind it
    does not support. The command line calls it a usage error."""

    exit_code = 2


class NotFound(PeakpilotError):
    """A nomination, batch or notice named by the caller does not exist."""

    exit_code = 3


class NotPermitted(PeakpilotError):
    """The actor's role or province does not allow this action."""

    exit_code = 4


class Refused(PeakpilotError):
    """The action breaks a rule of the programme or the input is invalid."""

    exit_code = 5


class InvalidInput(Refused):
    """A value given by the caller is malformed (an actor, a province, a name...)."""


class ConfigError(Refused):
    """A programme, quotas, contacts or settings file is invalid."""


class Conflict(PeakpilotError):
    """Another writer changed the same nomination first: reload and retry."""

    exit_code = 6


class ProgramChanged(Conflict):
    """The programme changed since this process loaded it: what it decided by the old
    rules is not written. The Engine reloads the programme and decides once more."""

    def __init__(self, held: int, in_force: int) -> None:
        super().__init__(
            f"the programme changed from version {held} to {in_force} while this was "
            "decided: nothing was written; try again (it is decided by the new version)"
        )
        self.held = held
        self.in_force = in_force


class AuditBroken(PeakpilotError):
    """The audit trail's hash chain does not verify."""

    exit_code = 7


class Unavailable(PeakpilotError):
    """The database could not be reached or used."""

    exit_code = 1


class UniqueViolation(Conflict):
    """A row with the same unique key was written first, maybe by a concurrent writer.

    A repository that knows which rule the key stands for (one nomination of a name per
    batch) turns it into that rule's :class:`Refused`; otherwise it is a conflict to retry.
    """

    def __init__(self, message: str, *, primary_key: bool = False) -> None:
        super().__init__(message)
        self.primary_key = primary_key


class ConnectionLost(Unavailable):
    """The database connection was lost (a restarted server, a terminated backend).

    ``before_commit`` says whether the transaction is known not to have committed: only
    then may the same work run again on a fresh connection.
    """

    def __init__(self, message: str, *, before_commit: bool = True) -> None:
        super().__init__(message)
        self.before_commit = before_commit


class DatabaseLocked(Unavailable):
    """Another writer held the database's lock past the wait peakpilot allows: try again."""


class StoreError(PeakpilotError):
    """The database refused a statement for a reason peakpilot does not expect: a bug or
    a schema changed by hand, never a clerk's mistake."""


class DeliveryError(PeakpilotError):
    """A channel could not send a notice.

    The outbox records the failure and retries it with backoff, unless ``permanent``
    says a retry cannot help (no address, an address the server refuses): then the
    notice is dead at once.
    """

    exit_code = 1

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


__all__ = [
    "AuditBroken",
    "ConfigError",
    "Conflict",
    "ConnectionLost",
    "DatabaseLocked",
    "DeliveryError",
    "InvalidInput",
    "NotFound",
    "NotPermitted",
    "PeakpilotError",
    "ProgramChanged",
    "Refused",
    "StoreError",
    "Unavailable",
    "UniqueViolation",
    "UsageError",
]
