"""The figures issue 6 asks for, their goals, and one measured result.

A figure is a value measured next to its baseline in the same run; its ratio is
value / baseline, and the issue's goal is a bound on that ratio (or on the value itself,
where there is no baseline). ``met`` is computed here from the goals, never by hand.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any, Literal

from benchmarks.timing import Samples

Status = Literal["ok", "not run", "failed"]
_COMPARE = {">=": operator.ge, "<=": operator.le}


@dataclass(frozen=True, slots=True)
class Goal:
    """``subject op threshold``: subject is ``ratio``, ``value`` or a key of details."""

    subject: str
    op: Literal[">=", "<="]
    threshold: float

    def holds(self, measured: float) -> bool:
        return bool(_COMPARE[self.op](measured, self.threshold))

    def __str__(self) -> str:
        return f"{self.subject} {self.op} {self.threshold:g}"


@dataclass(frozen=True, slots=True)
class Spec:
    name: str
    title: str
    unit: str
    value_label: str
    baseline_label: str | None
    goals: tuple[Goal, ...]
    postgres: bool = False
    statistic: str = "median"  # how the value sums up its samples


def _ratio(op: Literal[">=", "<="], threshold: float) -> tuple[Goal, ...]:
    return (Goal("ratio", op, threshold),)


def _cli(name: str, command: str, goal: float) -> Spec:
    """A start-up figure: one whole ``python -m peakpilot`` process (a read command on
    the seeded database, ``fire`` on a fresh copy of it, or ``--help``)."""
    return Spec(
        name,
        f"python -m peakpilot {command} (whole process)",
        "s",
        f"peakpilot {command.removeprefix('--json ')}",
        'python -c "import sqlalchemy"',
        _ratio("<=", goal),
    )


SPECS: dict[str, Spec] = {
    spec.name: spec
    for spec in (
        Spec(
            "fire_sqlite_vs_raw",
            "Engine.fire on SQLite (WAL, synchronous=FULL), one transaction each",
            "fires/s",
            "Engine.fire",
            "raw sqlite3, same reads and writes",
            _ratio(">=", 0.55),
        ),
        Spec(
            "fire_sqlite_vs_naive",
            "Engine.fire on SQLite vs transitions + one SQLModel session per fire",
            "fires/s",
            "Engine.fire",
            "transitions + SQLModel session",
            _ratio(">=", 3.0),
        ),
        Spec(
            "fire_pg_1",
            "Engine.fire on PostgreSQL, 1 client",
            "fires/s",
            "Engine.fire",
            "raw psycopg, same reads and writes",
            _ratio(">=", 0.60),
            postgres=True,
        ),
        Spec(
            "fire_pg_8",
            "Engine.fire on PostgreSQL, 8 client processes (one province each), total",
            "fires/s",
            "Engine.fire x8",
            "raw psycopg x8",
            _ratio(">=", 0.50),
            postgres=True,
        ),
        Spec(
            "lapse_sqlite",
            "Deadline lapse on SQLite: Engine.tick(deadline)",
            "s",
            "Engine.tick",
            "set-based SQL, one transaction",
            _ratio("<=", 2.0),
        ),
        Spec(
            "report_catchup_sqlite",
            "Catch-up of a year's downtime: 2 years of reports of N pilots, SQLite",
            "s",
            "Engine.tick",
            "set-based SQL, one transaction",
            _ratio("<=", 2.0),
        ),
        Spec(
            "lapse_pg",
            "Deadline lapse on PostgreSQL: Engine.tick(deadline)",
            "s",
            "Engine.tick",
            "set-based SQL, one transaction",
            _ratio("<=", 2.0),
            postgres=True,
        ),
        Spec(
            "migration_sqlite",
            "Programme change on SQLite: Engine.change_program migrating N nominations",
            "s",
            "Engine.change_program",
            "set-based SQL, one transaction",
            _ratio("<=", 3.0),
        ),
        Spec(
            "migration_pg",
            "Programme change on PostgreSQL: Engine.change_program migrating N nominations",
            "s",
            "Engine.change_program",
            "set-based SQL, one transaction",
            _ratio("<=", 3.0),
            postgres=True,
        ),
        Spec(
            "fire_at_1m",
            "Engine.fire on SQLite with the scale table size stored vs with 1,000",
            "fires/s",
            "at scale",
            "at 1,000 nominations",
            _ratio(">=", 0.85),
        ),
        *(
            _cli(name, command, goal)
            for name, command, goal in (
                ("cli_list", "--json list", 1.5),
                ("cli_show", "--json show ID", 1.5),
                ("cli_history", "--json history ID", 1.5),
                ("cli_deadlines", "--json deadlines", 1.5),
                ("cli_notices", "--json notices", 1.5),
                ("cli_board", "--json board", 1.5),
                ("cli_audit_verify", "--json audit verify", 1.5),
                ("cli_fire", "--json fire ID submit_for_approval", 2.0),
                ("cli_help", "--help", 0.7),
            )
        ),
        Spec(
            "daemon_timers",
            "Daemon resident memory with the pending timers vs with none (SQLite)",
            "MiB",
            "with timers",
            "no timers",
            (Goal("ratio", "<=", 1.25), Goal("jobs", "<=", 3)),
        ),
        Spec(
            "due_to_done",
            "Deadline timer due -> done, daemon running, batches opened before its start",
            "s",
            "p99 done_at - due_at",
            None,
            (Goal("value", "<=", 1.0),),
            statistic="p99",
        ),
        Spec(
            "due_to_done_live",
            "Deadline timer due -> done, batches opened while the daemon runs",
            "s",
            "p99 done_at - due_at",
            None,
            (Goal("value", "<=", 1.0),),
            statistic="p99",
        ),
    )
}


@dataclass
class Figure:
    """One figure's outcome: measured, not run (and why), or failed (and how)."""

    spec: Spec
    status: Status = "ok"
    measured: Samples | None = None
    baseline: Samples | None = None
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def value(self) -> float | None:
        if self.measured is None:
            return None
        if self.spec.statistic == "p99":
            return self.measured.percentile(0.99)
        return self.measured.median

    @property
    def baseline_value(self) -> float | None:
        return None if self.baseline is None else self.baseline.median

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline_value:
            return None
        return self.value / self.baseline_value

    def subject(self, name: str) -> float | None:
        if name == "ratio":
            return self.ratio
        if name == "value":
            return self.value
        found = self.details.get(name)
        return float(found) if isinstance(found, int | float) else None

    @property
    def met(self) -> bool | None:
        """Whether every goal holds; None when the figure has no measurement."""
        if self.status != "ok":
            return None
        measured = [self.subject(goal.subject) for goal in self.spec.goals]
        if any(value is None for value in measured):
            return None
        return all(
            goal.holds(value)
            for goal, value in zip(self.spec.goals, measured, strict=True)
            if value is not None
        )


def not_run(name: str, reason: str) -> Figure:
    return Figure(SPECS[name], status="not run", reason=reason)


def failed(name: str, reason: str) -> Figure:
    return Figure(SPECS[name], status="failed", reason=reason)
