"""Concurrency under load (issue 5, point 3): 16 workers, one mixed stream, two databases.

Eight threads of this process (six share one Engine, two own one each) and eight separate
processes (six call the Engine, two run every command through the CLI's ``main`` with
``--json``) fire a random mix of commands at three shared provinces for a few
seconds: nominate (duplicate names and ineligible levels on purpose), every event of the
programme with the right actor, reads (show, list, board, audit verify), fires with
``expected_version`` from a read that went stale, idempotent fires replayed with their
key, and fires by a deliberately wrong actor. Thread 0 also opens a follow-up batch every
``BATCH_EVERY`` seconds, so that quotas keep being contended after the first ones are full
(and ``carry_over`` has somewhere to go).

Every command must end done (0), refused (5), not permitted (4, only where the actor is
wrong on purpose) or, for a fire, conflict (6), after which an immediate retry on a fresh
version must end done or refused (a retry that loses the race again is retried, at most
``MAX_RETRIES`` times). Anything else (another exception, exit 1 or 2, "database is
locked", a deadlock) is a failure. Reads are checked as they happen: ``show`` is
internally consistent, ``board`` never shows a province above its quota, ``audit verify``
finds no break.

After the run: no province of any batch above its quota; for every nomination its history
is 1..version, each record follows the previous one, the last ``to_state`` is its state,
and the (seq, event) pairs of its history are exactly the successes the workers logged
(an idempotent replay may log the same success twice, never a second event); the audit
chain verifies; each nomination's notices are exactly what the programme sends for its
history, none twice.

Two small deterministic tests at the end pin what the load run found on PostgreSQL: a
read (``show``, ``audit verify``) that a writer commits in the middle of must still answer
as of one moment.

The figures (commands per kind, outcomes, retries, refusal reasons, throughput) go to
``.reliability/load-<db>.json`` and are printed. The load run is marked ``slow`` (``-m
"not slow"`` leaves it out): 8 s per database by default, 60 s with
``PEAKPILOT_FULL_RUN=1``. ``PEAKPILOT_LOAD_SEED`` replays a seed (each run prints its own).
"""

from __future__ import annotations

import io
import itertools
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
import traceback
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from peakpilot import Engine, FrozenClock, PeakpilotError
from peakpilot.workflow.snapshots import to_jsonable
from peakpilot.workflow.store.database import StoreHooks
from tests.conftest import BEFORE_DEADLINE

SHORT_DURATION, FULL_DURATION = 8.0, 60.0  # seconds of load per database
THREADS = 8
SHARED_ENGINE_THREADS = 6  # threads 0-5 share the fixture's Engine; 6 and 7 own one each
PROCESSES = 8
CLI_PROCESSES = 2  # the last two processes go through peakpilot.cli.main
PROVINCES = ("hebei", "shanxi", "guangdong")
FOLLOW_UP_QUOTAS = {"hebei": 3, "shanxi": 2, "guangdong": 3}
BATCH_EVERY = 2.0
MAX_RETRIES = 5
SEEN_LIMIT = 300
ROOT = Path(__file__).resolve().parents[2]
REPORT_DIR = ROOT / ".reliability"

OUTCOMES = {0: "done", 4: "not_permitted", 5: "refused", 6: "conflict"}
FORBIDDEN = re.compile(r"database is locked|deadlock|Traceback|OperationalError", re.IGNORECASE)
ELIGIBLE = {"city": ("prefecture", "sub_provincial", "municipality"), "park": ("national",)}
INELIGIBLE = {"city": "county", "park": "municipal"}
REASONS = ("材料不全，请补充。", "Quota planning:\nsee the attached list.", "名额已满")
NONTERMINAL = ("drafted", "provincial_approval", "approved", "submitted", "follow_up_batch")


@dataclass(frozen=True)
class Move:
    """A transition of DESIGN section 2, as a worker fires it."""

    event: str
    sources: tuple[str, ...]
    role: str
    dest: str
    reason: bool
    weight: int


MOVES = (
    Move("submit_for_approval", ("drafted",), "drc", "provincial_approval", False, 10),
    Move("approve", ("provincial_approval",), "gov", "approved", False, 9),
    Move("send_back", ("provincial_approval", "approved"), "gov", "drafted", True, 2),
    Move("submit", ("approved",), "drc", "submitted", False, 10),
    Move("withdraw", NONTERMINAL, "drc", "withdrawn", False, 2),
    Move("confirm", ("submitted",), "ndrc", "confirmed", False, 2),
    Move("reject", ("submitted",), "ndrc", "rejected", True, 2),
    Move("defer", ("submitted",), "ndrc", "follow_up_batch", True, 3),
    Move("send_back", ("submitted",), "ndrc", "drafted", True, 2),
    Move("carry_over", ("follow_up_batch",), "drc", "drafted", False, 3),
)
DEST = {m.event: m.dest for m in MOVES}

# (event, state it is fired from, wrong actors given the nomination's province P and
# another province Q): each must be NotPermitted (4), or Refused (5) if the state moved.
WRONG = (
    ("approve", "provincial_approval", ("drc:{P}", "gov:{Q}", "ndrc")),
    ("submit", "approved", ("gov:{P}", "drc:{Q}", "ndrc")),
    ("confirm", "submitted", ("drc:{P}", "gov:{P}")),
    ("submit_for_approval", "drafted", ("ndrc", "gov:{P}", "drc:{Q}")),
    ("withdraw", "drafted", ("gov:{P}", "drc:{Q}")),
)


def actor_for(role: str, province: str) -> str:
    return role if role == "ndrc" else f"{role}:{province}"


def move_for(event: str, state: str) -> Move | None:
    return next((m for m in MOVES if m.event == event and state in m.sources), None)


# -- clients: the Python API and the CLI, answering alike -------------------------------


@dataclass
class Answer:
    code: int  # 0 done, a PeakpilotError's exit code, or -1 for anything outside the contract
    value: Any = None  # the JSON document of the result
    message: str = ""


class ApiClient:
    """Commands through an Engine; results as the CLI's JSON documents."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Answer:
        try:
            return Answer(0, to_jsonable(fn(*args, **kwargs)))
        except PeakpilotError as error:
            return Answer(error.exit_code, None, f"{type(error).__name__}: {error}")
        except Exception:
            return Answer(-1, None, traceback.format_exc(limit=12))

    def nominate(self, actor: str, province: str, kind: str, name: str, level: str) -> Answer:
        return self._call(
            self.engine.nominate, actor, province=province, kind=kind, name=name, level=level
        )

    def fire(
        self,
        nomination_id: str,
        event: str,
        actor: str,
        reason: str | None,
        key: str | None,
        expected: int | None,
    ) -> Answer:
        return self._call(
            self.engine.fire,
            nomination_id,
            event,
            actor,
            reason=reason,
            idempotency_key=key,
            expected_version=expected,
        )

    def get(self, nomination_id: str) -> Answer:
        return self._call(self.engine.get, nomination_id)

    def show(self, nomination_id: str, actor: str | None) -> Answer:
        return self._call(self.engine.show, nomination_id, actor)

    def list(self, state: str, province: str) -> Answer:
        return self._call(self.engine.list, state=state, province=province)

    def board(self, batch: str | None) -> Answer:
        return self._call(self.engine.board, batch)

    def verify(self) -> Answer:
        return self._call(self.engine.verify_audit)

    def open_batch(self, batch_id: str, deadline: datetime) -> Answer:
        return self._call(
            self.engine.open_batch, "ndrc", batch_id, deadline=deadline, quotas=FOLLOW_UP_QUOTAS
        )


class CliClient:
    """Commands through ``peakpilot.cli.main`` in this process, checking the CLI contract:
    exit 0 with one JSON document and nothing on stderr, or one ``peakpilot:`` line on
    stderr and nothing on stdout."""

    def __init__(self, url: str, now: str) -> None:
        self.prefix = ["--db", url, "--now", now, "--json"]

    def _run(self, *args: str) -> Answer:
        from peakpilot.cli import main

        out, err = io.StringIO(), io.StringIO()
        code = 0
        try:
            with redirect_stdout(out), redirect_stderr(err):
                main([*self.prefix, *args])
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else (1 if done.code else 0)
        except Exception:
            return Answer(-1, None, traceback.format_exc(limit=12))
        stdout, stderr = out.getvalue(), err.getvalue()
        if code == 0 or (code == 7 and args[:2] == ("audit", "verify")):  # 7: its answer
            try:
                value = json.loads(stdout)
            except ValueError:
                return Answer(-1, None, f"exit 0 without one JSON document: {stdout[:300]!r}")
            if stderr:
                return Answer(-1, None, f"exit 0 with stderr {stderr[:300]!r}")
            return Answer(0, value)
        lines = stderr.splitlines()
        if stdout or len(lines) != 1 or not lines[0].startswith("peakpilot: "):
            return Answer(-1, None, f"exit {code}: stdout {stdout[:200]!r} stderr {stderr[:800]!r}")
        return Answer(code if code in OUTCOMES else -1, None, f"exit {code}: {lines[0]}")

    def nominate(self, actor: str, province: str, kind: str, name: str, level: str) -> Answer:
        return self._run(
            "nominate", "--province", province, "--kind", kind, "--name", name,
            "--level", level, "--as", actor,
        )  # fmt: skip

    def fire(
        self,
        nomination_id: str,
        event: str,
        actor: str,
        reason: str | None,
        key: str | None,
        expected: int | None,
    ) -> Answer:
        args = ["fire", nomination_id, event, "--as", actor]
        if reason is not None:
            args += ["--reason", reason]
        if key is not None:
            args += ["--idempotency-key", key]
        if expected is not None:
            args += ["--if-version", str(expected)]
        return self._run(*args)

    def get(self, nomination_id: str) -> Answer:
        return self._run("show", nomination_id)

    def show(self, nomination_id: str, actor: str | None) -> Answer:
        return self._run("show", nomination_id, *(("--as", actor) if actor else ()))

    def list(self, state: str, province: str) -> Answer:
        return self._run("list", "--state", state, "--province", province)

    def board(self, batch: str | None) -> Answer:
        return self._run("board", *(("--batch", batch) if batch else ()))

    def verify(self) -> Answer:
        return self._run("audit", "verify")


Client = ApiClient | CliClient


# -- the worker ----------------------------------------------------------------------------


@dataclass
class Tally:
    """What one worker did; JSON-able so that processes can hand it back."""

    commands: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    modes: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    retries: Counter[str] = field(default_factory=Counter)
    by_worker: Counter[str] = field(default_factory=Counter)  # commands per kind of worker
    refusals: Counter[str] = field(default_factory=Counter)
    successes: list[list[Any]] = field(default_factory=list)  # [id, event, version, key]
    failures: list[str] = field(default_factory=list)
    failure_count: int = 0
    failure_kinds: Counter[str] = field(default_factory=Counter)
    batches: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "commands": {k: dict(v) for k, v in self.commands.items()},
            "modes": {k: dict(v) for k, v in self.modes.items()},
            "retries": dict(self.retries),
            "by_worker": dict(self.by_worker),
            "refusals": dict(self.refusals),
            "successes": self.successes,
            "failures": self.failures,
            "failure_count": self.failure_count,
            "failure_kinds": dict(self.failure_kinds),
            "batches": self.batches,
        }

    def merge(self, data: dict[str, Any]) -> None:
        for kind, outcomes in data["commands"].items():
            self.commands[kind].update(outcomes)
        for mode, outcomes in data["modes"].items():
            self.modes[mode].update(outcomes)
        self.retries.update(data["retries"])
        self.by_worker.update(data["by_worker"])
        self.refusals.update(data["refusals"])
        self.successes += data["successes"]
        self.failures += data["failures"]
        self.failure_count += data["failure_count"]
        self.failure_kinds.update(data["failure_kinds"])
        self.batches += data["batches"]


def _reason_class(message: str) -> str:
    """A refusal message without its ids, names and numbers, to count refusals by cause."""
    message = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", message)
    message = re.sub(r"[0-9a-f]{16}", "<id>", message)
    message = re.sub(r"\d+", "N", message)
    message = re.sub(r"^exit N: peakpilot: ", "", message)
    return re.sub(r"^\w+: ", "", message)[:110]


class Worker:
    """One of the sixteen: a random stream of commands until ``stop_at`` (wall clock)."""

    def __init__(
        self,
        client: Client,
        number: int,
        seed: int,
        stop_at: float,
        opener: ApiClient | None = None,
        label: str = "thread",
    ) -> None:
        self.client = client
        self.label = label
        self.number = number
        self.rng = random.Random(seed)
        self.stop_at = stop_at
        self.opener = opener
        self.tally = Tally()
        self.seen: dict[str, dict[str, Any]] = {}  # snapshots from earlier reads: stale
        self.created = 0
        self.next_audit = 0.0

    def run(self) -> Tally:
        actions = (
            (self.nominate, 7),
            (self.fire, 40),
            (self.fire_stale, 5),
            (self.fire_as_wrong_actor, 3),
            (self.show, 5),
            (self.list, 3),
            (self.board, 3),
            (self.verify_audit, 1),
        )
        functions, weights = zip(*actions, strict=True)
        next_batch = time.time() + BATCH_EVERY
        try:
            while time.time() < self.stop_at:
                if self.opener is not None and time.time() >= next_batch:
                    next_batch += BATCH_EVERY
                    self.open_batch()
                action = self.rng.choices(functions, weights)[0]
                try:
                    action()
                except Exception:
                    self.fail(f"{action.__name__} raised {traceback.format_exc(limit=12)}")
        except BaseException:
            self.fail(f"worker {self.number} stopped: {traceback.format_exc(limit=12)}")
            raise
        finally:
            self.tally.by_worker[self.label] += sum(c.total() for c in self.tally.commands.values())
        return self.tally

    # -- bookkeeping ---------------------------------------------------------------------

    def fail(self, text: str, kind: str = "broken contract") -> None:
        self.tally.failure_count += 1
        self.tally.failure_kinds[kind] += 1
        if len(self.tally.failures) < 50:
            self.tally.failures.append(f"worker {self.number}: {text}")

    def command(
        self,
        kind: str,
        mode: str,
        call: Callable[[], Answer],
        *,
        conflict_on: str | None = None,
        wrong_actor: bool = False,
    ) -> Answer:
        """Run one command and hold its outcome to the contract."""
        answer = call()
        outcome = OUTCOMES.get(answer.code, f"exit {answer.code}")
        self.tally.commands[kind][outcome] += 1
        self.tally.modes[mode][outcome] += 1
        allowed = {"done", "refused"}
        if conflict_on is not None:  # a fire on that nomination
            allowed.add("conflict")
        if wrong_actor:
            allowed = {"not_permitted", "refused"}
        if outcome not in allowed or FORBIDDEN.search(answer.message):
            self.fail(f"{kind} ({mode}) ended {outcome}: {answer.message}")
        elif outcome == "conflict" and str(conflict_on) not in answer.message:
            # exit 6 only for a compare-and-set lost on that nomination (DESIGN section 3)
            self.fail(f"{kind} ({mode}): a conflict not about {conflict_on}: {answer.message}")
        elif outcome in ("refused", "not_permitted", "conflict"):
            self.tally.refusals[f"{kind}: {_reason_class(answer.message)}"] += 1
        return answer

    def remember(self, nominations: list[dict[str, Any]]) -> None:
        for n in nominations:
            self.seen.pop(n["id"], None)
            self.seen[n["id"]] = n
        while len(self.seen) > SEEN_LIMIT:
            self.seen.pop(next(iter(self.seen)))

    def succeeded(self, value: dict[str, Any], event: str, key: str | None) -> None:
        self.tally.successes.append([value["id"], event, value["version"], key])
        if value["state"] != DEST.get(event, "drafted"):
            self.fail(f"{event} on {value['id']} left it {value['state']}")

    def pick(self, state: str, province: str) -> dict[str, Any] | None:
        """A nomination of ``province`` in ``state``, read now (the newest ones more often,
        so that workers collide on them)."""
        answer = self.command("list", "pick", lambda: self.client.list(state, province))
        if answer.code != 0 or not answer.value:
            return None
        self.remember(answer.value)
        found = answer.value if self.rng.random() < 0.5 else answer.value[-4:]
        return dict(self.rng.choice(found))

    # -- commands ------------------------------------------------------------------------

    def nominate(self) -> None:
        province = self.rng.choice(PROVINCES)
        kind = self.rng.choice(("city", "park"))
        level = self.rng.choice(ELIGIBLE[kind])
        mode = "unique"
        if self.rng.random() < 0.05:
            level, mode = INELIGIBLE[kind], "ineligible"
        if self.rng.random() < 0.35:  # a small shared pool: duplicates on purpose
            name, mode = f"{province}重名候选{self.rng.randrange(3)}", "duplicate"
        else:
            self.created += 1
            name = f"负载{self.number:02d}-{self.created}"
        actor = f"drc:{province}"
        answer = self.command(
            "nominate", mode, lambda: self.client.nominate(actor, province, kind, name, level)
        )
        if answer.code == 0:
            value = answer.value
            self.tally.successes.append([value["id"], "nominate", value["version"], None])
            if (value["state"], value["version"]) != ("drafted", 1):
                self.fail(f"nominate gave {value}")
            self.remember([value])
        elif mode == "unique" and answer.code != -1:
            self.fail(f"a fresh eligible nomination was refused: {answer.message}")

    def fire(self) -> None:
        move = self.rng.choices(MOVES, [m.weight for m in MOVES])[0]
        province = self.rng.choice(PROVINCES)
        nomination = self.pick(self.rng.choice(move.sources), province)
        if nomination is None:
            return
        reason = self.reason(move)
        draw = self.rng.random()
        if move.event == "send_back" or draw < 0.25:
            # send_back's actor depends on the state: fired only if the state is as read
            mode, key, expected = "cas", None, nomination["version"]
        elif draw < 0.4:
            mode, expected = "keyed", None
            key = f"{nomination['id']}:{move.event}:{nomination['version']}"
        else:
            mode, key, expected = "plain", None, None
        self.fire_with_retry(
            mode, nomination, move.event, actor_for(move.role, province), reason, key, expected
        )

    def fire_stale(self) -> None:
        """Fire at the version of a read made a while ago: Conflict unless nobody moved it."""
        if not self.seen:
            return
        nomination = self.seen[self.rng.choice(list(self.seen))]
        moves = [m for m in MOVES if nomination["state"] in m.sources]
        if not moves:
            return
        move = self.rng.choice(moves)
        actor = actor_for(move.role, nomination["province"])
        self.fire_with_retry(
            "stale",
            nomination,
            move.event,
            actor,
            self.reason(move),
            None,
            nomination["version"],
        )

    def fire_with_retry(
        self,
        mode: str,
        nomination: dict[str, Any],
        event: str,
        actor: str,
        reason: str | None,
        key: str | None,
        expected: int | None,
    ) -> None:
        nomination_id = nomination["id"]
        answer = self.command(
            event,
            mode,
            lambda: self.client.fire(nomination_id, event, actor, reason, key, expected),
            conflict_on=nomination_id,
        )
        if answer.code == 0:
            self.succeeded(answer.value, event, key)
            if expected is not None and key is None and answer.value["version"] != expected + 1:
                self.fail(f"{event} at version {expected} gave {answer.value}")
            if key is not None and self.rng.random() < 0.5:
                self.replay(nomination_id, event, actor, reason, key, answer.value)
        attempts = 0
        while answer.code == 6:
            attempts += 1
            if attempts > MAX_RETRIES:
                self.fail(f"{event} on {nomination_id}: still a conflict after {MAX_RETRIES}")
                return
            fresh = self.command("get", "retry_read", lambda: self.client.get(nomination_id))
            if fresh.code != 0:
                return
            state, version = fresh.value["state"], fresh.value["version"]
            move = move_for(event, state)
            if move is not None:  # the right actor for the state it is in now
                actor = actor_for(move.role, fresh.value["province"])
            key = None if key is None else f"{nomination_id}:{event}:{version}"
            answer = self.command(
                event,
                "retry",
                partial(self.client.fire, nomination_id, event, actor, reason, key, version),
                conflict_on=nomination_id,
            )
            self.tally.retries[OUTCOMES.get(answer.code, "other")] += 1
            if answer.code == 0:
                self.succeeded(answer.value, event, key)
                if key is None and answer.value["version"] != version + 1:
                    self.fail(f"{event} retried at version {version} gave {answer.value}")

    def replay(
        self,
        nomination_id: str,
        event: str,
        actor: str,
        reason: str | None,
        key: str,
        first: dict[str, Any],
    ) -> None:
        """The same call with the same key again: the first result, nothing new written."""
        answer = self.command(
            event,
            "replay",
            lambda: self.client.fire(nomination_id, event, actor, reason, key, None),
        )
        if answer.code != 0:
            return
        self.succeeded(answer.value, event, key)
        same = ("id", "state", "version", "batch")
        if any(answer.value[f] != first[f] for f in same):
            self.fail(f"replay of key {key} gave {answer.value}, first {first}")

    def fire_as_wrong_actor(self) -> None:
        event, state, actors = self.rng.choice(WRONG)
        province = self.rng.choice(PROVINCES)
        nomination = self.pick(state, province)
        if nomination is None:
            return
        other = self.rng.choice([p for p in PROVINCES if p != province])
        actor = self.rng.choice(actors).format(P=province, Q=other)
        nomination_id = nomination["id"]
        self.command(
            event,
            "wrong_actor",
            lambda: self.client.fire(nomination_id, event, actor, None, None, None),
            wrong_actor=True,
        )

    def reason(self, move: Move) -> str | None:
        if not move.reason or self.rng.random() < 0.04:  # sometimes missing: refused
            return None
        return self.rng.choice(REASONS)

    def show(self) -> None:
        if not self.seen:
            return
        # half of the time one of those just read: workers are moving them right now
        recent = list(self.seen)[-5:] if self.rng.random() < 0.5 else list(self.seen)
        nomination_id = self.rng.choice(recent)
        province = self.seen[nomination_id]["province"]
        actor = self.rng.choice((None, "ndrc", f"drc:{province}", f"gov:{province}"))
        answer = self.command("show", "read", lambda: self.client.show(nomination_id, actor))
        if answer.code != 0:
            return
        detail = answer.value
        history = detail["history"]
        consistent = (
            [r["seq"] for r in history] == list(range(1, detail["version"] + 1))
            and bool(history)
            and history[-1]["to_state"] == detail["state"]
            and history[0]["event"] == "nominate"
        )
        if not consistent:
            trail = [(r["seq"], r["event"], r["to_state"]) for r in history]
            self.fail(
                f"show {nomination_id} is not one snapshot: state {detail['state']} "
                f"version {detail['version']}, history {trail}",
                "show not one snapshot",
            )

    def list(self) -> None:
        state, province = self.rng.choice(NONTERMINAL), self.rng.choice(PROVINCES)
        answer = self.command("list", "read", lambda: self.client.list(state, province))
        if answer.code == 0:
            self.remember(answer.value)
            wrong = [n for n in answer.value if (n["state"], n["province"]) != (state, province)]
            if wrong:
                self.fail(f"list --state {state} --province {province} gave {wrong[:3]}")

    def board(self) -> None:
        batch = None
        if self.seen and self.rng.random() < 0.5:
            batch = self.seen[self.rng.choice(list(self.seen))]["batch"]
        answer = self.command("board", "read", lambda: self.client.board(batch))
        if answer.code != 0:
            return
        for p in answer.value["provinces"]:
            used = p["states"]["submitted"] + p["states"]["confirmed"]
            if not (p["used"] == used <= p["quota"]):
                self.fail(f"board of {answer.value['batch']} shows {p}")

    def verify_audit(self) -> None:
        """An auditor checking the whole chain while the clerks work (at most every 2 s
        per worker: it reads every record)."""
        if time.time() < self.next_audit:
            return
        self.next_audit = time.time() + 2.0
        answer = self.command("audit_verify", "read", self.client.verify)
        if answer.code == 0 and not answer.value["ok"]:
            self.fail(f"audit verify during the run: {answer.value}", "audit verify false break")

    def open_batch(self) -> None:
        assert self.opener is not None
        batch_id = f"load-{len(self.tally.batches) + 1:03d}"
        deadline = BEFORE_DEADLINE + timedelta(days=90 + len(self.tally.batches))
        answer = self.command(
            "open_batch", "ndrc", partial(self.opener.open_batch, batch_id, deadline)
        )
        if answer.code == 0:
            self.tally.batches.append(batch_id)
        else:
            self.fail(f"opening batch {batch_id}: {answer.message}")


# -- the worker processes ------------------------------------------------------------------

BOOT = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from tests.faults.test_load import process_main; process_main(sys.argv[2:])"
)


def process_main(argv: list[str]) -> None:
    """A worker process: build its client, say it is ready, wait for the start, work,
    write its tally. Warnings are errors, as in the test process."""
    warnings.simplefilter("error")
    kind, number, seed, url, now, folder_name = argv
    folder = Path(folder_name)
    engine = None
    if kind == "api":
        engine = Engine(url, clock=FrozenClock(datetime.fromisoformat(now)))
        _ = engine.program  # load the programme before the start line
        client: Client = ApiClient(engine)
    else:
        import peakpilot.cli
        import peakpilot.workflow.engine  # noqa: F401  (imported before the start line)

        client = CliClient(url, now)
    (folder / f"ready-{number}").touch()
    go = folder / "go"
    give_up = time.time() + 300
    while not go.exists():
        if time.time() > give_up:
            raise SystemExit("no start signal")
        time.sleep(0.01)
    stop_at = float(go.read_text())
    tally = Worker(client, int(number), int(seed), stop_at, label=f"process_{kind}").run()
    if engine is not None:
        engine.close()
    result = folder / f"result-{number}.json"
    result.with_suffix(".tmp").write_text(json.dumps(tally.as_json(), ensure_ascii=False))
    os.replace(result.with_suffix(".tmp"), result)


# -- the test ------------------------------------------------------------------------------


@pytest.mark.slow
def test_sixteen_workers_under_mixed_load_keep_every_rule(
    engine: Engine, db_url: str, tmp_path: Path, full_run: bool
) -> None:
    db = "sqlite" if db_url.startswith("sqlite") else "postgres"
    seed = int(os.environ.get("PEAKPILOT_LOAD_SEED", random.randrange(2**31)))
    duration = FULL_DURATION if full_run else SHORT_DURATION
    print(f"\nload on {db}: {duration:.0f} s, seed {seed} (PEAKPILOT_LOAD_SEED replays it)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PEAKPILOT_")}
    now = engine.clock.now().isoformat()
    processes = []
    for index in range(PROCESSES):
        number = THREADS + index
        kind = "cli" if index >= PROCESSES - CLI_PROCESSES else "api"
        log = (tmp_path / f"process-{number}.log").open("w")
        args = [kind, str(number), str(seed + number), db_url, now, str(tmp_path)]
        processes.append(
            subprocess.Popen(
                [sys.executable, "-c", BOOT, str(ROOT), *args],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        log.close()

    def logs() -> str:
        return "\n".join(
            f"--- process {THREADS + i}:\n{(tmp_path / f'process-{THREADS + i}.log').read_text()}"
            for i in range(PROCESSES)
        )

    try:
        ready_by = time.time() + 120
        while len(list(tmp_path.glob("ready-*"))) < PROCESSES:
            dead = [p for p in processes if p.poll() is not None]
            assert not dead and time.time() < ready_by, f"worker processes not ready\n{logs()}"
            time.sleep(0.02)

        own_engines = [
            Engine(db_url, clock=FrozenClock(BEFORE_DEADLINE))
            for _ in range(THREADS - SHARED_ENGINE_THREADS)
        ]
        engines = [engine] * SHARED_ENGINE_THREADS + own_engines
        started = time.time()
        stop_at = started + duration
        (tmp_path / "go.tmp").write_text(repr(stop_at))
        os.replace(tmp_path / "go.tmp", tmp_path / "go")
        workers = [
            Worker(
                ApiClient(engines[i]),
                i,
                seed + i,
                stop_at,
                opener=ApiClient(engine) if i == 0 else None,
            )
            for i in range(THREADS)
        ]
        threads = [threading.Thread(target=w.run, name=f"load-{w.number}") for w in workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=duration + 180)
        stuck = [t.name for t in threads if t.is_alive()]
        for process in processes:
            process.wait(timeout=duration + 180)
        elapsed = time.time() - started
        for own in own_engines:
            own.close()
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()

    assert not stuck, f"threads still running after the run: {stuck}"
    assert all(p.returncode == 0 for p in processes), logs()
    assert "Traceback" not in logs(), logs()
    tally = Tally()
    for worker in workers:
        tally.merge(worker.tally.as_json())
    for index in range(PROCESSES):
        result = tmp_path / f"result-{THREADS + index}.json"
        assert result.exists(), logs()
        tally.merge(json.loads(result.read_text()))

    checked_at = time.time()
    problems, after = check_database(engine, tally)
    check_seconds = time.time() - checked_at
    report = figures(db, seed, duration, full_run, elapsed, check_seconds, tally, after)
    REPORT_DIR.mkdir(exist_ok=True)
    (REPORT_DIR / f"load-{db}.json").write_text(
        json.dumps(report, ensure_ascii=False, indent=2) + "\n"
    )
    print(json.dumps({k: v for k, v in report.items() if k != "failures"}, indent=2))

    assert tally.failure_count == 0, "\n".join(tally.failures)
    assert not problems, "\n".join(problems[:30])
    # the run did what it is for: quotas contended, stale versions refused, every event seen
    totals = report["totals"]
    assert totals["conflict"] > 0 and tally.retries["done"] + tally.retries["refused"] > 0
    submits = tally.commands["submit"]
    assert submits["done"] > 0 and submits["refused"] > 0, submits
    assert any("places" in reason for reason in tally.refusals), "no quota was ever full"
    for move in MOVES:
        assert tally.commands[move.event]["done"] > 0, f"{move.event} never succeeded"
    assert tally.batches, "no follow-up batch was opened"


def check_database(engine: Engine, tally: Tally) -> tuple[list[str], dict[str, int]]:
    """Everything the run left behind, against the rules and the workers' own logs;
    the problems found, and what the database holds."""
    problems: list[str] = []
    batches = ["2023-first", *tally.batches]
    for batch in batches:
        for p in engine.board(batch).provinces:
            used = p.states["submitted"] + p.states["confirmed"]
            if not (p.used == used <= p.quota):
                problems.append(f"batch {batch}: {p}")

    logged: dict[str, dict[int, list[tuple[str, str | None]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for nomination_id, event, version, key in tally.successes:
        logged[nomination_id][version].append((event, key))

    program = engine.program
    transitions = {(t.event, s): t for t in program.transitions for s in t.sources}
    scopes = {name: role.scope for name, role in program.roles.items()}
    expected_notices: dict[str, Counter[tuple[str, str]]] = defaultdict(Counter)
    nominations = engine.list()
    records = 0
    for n in nominations:
        history = engine.history(n.id)
        records += len(history)
        trail = [(r.seq, r.event, r.from_state, r.to_state) for r in history]
        if [r.seq for r in history] != list(range(1, n.version + 1)):
            problems.append(f"{n.id} at version {n.version} has history {trail}")
        if not history or history[-1].to_state != n.state:
            problems.append(f"{n.id} is {n.state} but its history ends {trail[-1:]}")
        if history and (history[0].event, history[0].from_state) != ("nominate", None):
            problems.append(f"{n.id}'s history does not start with nominate: {trail[:1]}")
        for previous, record in itertools.pairwise(history):
            if record.from_state != previous.to_state:
                problems.append(f"{n.id}: record {record.seq} does not follow: {trail}")
        if n.batch not in batches:
            problems.append(f"{n.id} is in unknown batch {n.batch}")
        # exactly the successes the workers logged: one event per version
        mine = logged.pop(n.id, {})
        if {(r.seq, r.event) for r in history} != {
            (version, entries[0][0]) for version, entries in mine.items()
        }:
            problems.append(f"{n.id}: history {trail} but workers logged {dict(mine)}")
        for version, entries in mine.items():
            keys = {key for _event, key in entries}
            if len(entries) > 1 and (None in keys or len(keys) != 1):
                problems.append(f"{n.id} version {version} succeeded twice: {entries}")
        for r in history[1:]:
            transition = transitions.get((r.event, r.from_state or ""))
            if transition is None or transition.notice is None:
                continue
            for role in transition.notice.to:
                actor = f"{role}:{n.province}" if scopes[role] == "province" else role
                expected_notices[n.id][(transition.notice.kind, actor)] += 1
    for nomination_id in logged:
        problems.append(f"workers logged successes on {nomination_id}, which does not exist")

    audit = engine.verify_audit()
    if not audit.ok or audit.records != records:
        problems.append(f"audit verify: {audit} (history holds {records} records)")

    notices: dict[str, Counter[tuple[str, str]]] = defaultdict(Counter)
    outbox = engine.notices()
    for notice in outbox:
        if notice.nomination is not None:
            notices[notice.nomination][(notice.kind, notice.actor)] += 1
            if notice.recipient != notice.actor:  # no contacts file: addressed to the actor
                problems.append(f"notice {notice.id} to {notice.recipient} for {notice.actor}")
    for nomination_id in set(notices) | set(expected_notices):
        if notices[nomination_id] != expected_notices[nomination_id]:
            problems.append(
                f"notices of {nomination_id}: {dict(notices[nomination_id])}, "
                f"history calls for {dict(expected_notices[nomination_id])}"
            )
    after = {
        "batches": len(batches),
        "nominations": len(nominations),
        "audit_records": audit.records,
        "notices": len(outbox),
        "successes_logged": len(tally.successes),
        "problems": len(problems),
    }
    return problems, after


def figures(
    db: str,
    seed: int,
    duration: float,
    full_run: bool,
    elapsed: float,
    check_seconds: float,
    tally: Tally,
    after: dict[str, int],
) -> dict[str, Any]:
    outcomes = ("done", "refused", "not_permitted", "conflict")
    commands = {
        kind: {**{o: counts.get(o, 0) for o in outcomes}, **counts, "total": counts.total()}
        for kind, counts in sorted(tally.commands.items())
    }
    totals = {o: sum(c[o] for c in commands.values()) for o in outcomes}
    total = sum(c["total"] for c in commands.values())
    totals["other"] = total - sum(totals.values())
    return {
        "database": db,
        "seed": seed,
        "duration_s": duration,
        "elapsed_s": round(elapsed, 1),
        "check_s": round(check_seconds, 1),
        "full_run": full_run,
        "workers": {
            "threads": THREADS,
            "threads_sharing_one_engine": SHARED_ENGINE_THREADS,
            "processes": PROCESSES,
            "processes_through_cli": CLI_PROCESSES,
        },
        "provinces": list(PROVINCES),
        "commands_total": total,
        "commands_per_s": round(total / elapsed, 1),
        "totals": {**totals, "retries": tally.retries.total(), "failures": tally.failure_count},
        "commands": commands,
        "modes": {mode: dict(counts) for mode, counts in sorted(tally.modes.items())},
        "retries": dict(tally.retries),
        "commands_by_worker_kind": dict(tally.by_worker),
        "refusal_reasons": dict(tally.refusals.most_common(25)),
        "after": after,
        "failure_kinds": dict(tally.failure_kinds),
        "failures": tally.failures[:20],
        "reproduce": (
            f"{'PEAKPILOT_FULL_RUN=1 ' if full_run else ''}.venv/bin/pytest "
            f"'tests/faults/test_load.py::test_sixteen_workers_under_mixed_load_keep_every_rule"
            f"[{db}]' -s"
        ),
    }


# -- reads while a writer commits: the two defects the load run found on PostgreSQL ----------


@contextmanager
def commit_between_statements(
    db_url: str, write: Callable[[], object]
) -> Iterator[tuple[Engine, list[str]]]:
    """A reader Engine that runs ``write`` (another Engine, committed) right after the
    first SQL statement of its next call, before the second: a writer committing in the
    middle of a read, every time. The statements of that call are listed as they run."""
    statements: list[str] = []
    armed = False

    def after(statement: str, _rowcount: int) -> None:
        if armed:
            statements.append(statement)
            if len(statements) == 1:
                write()

    with Engine(
        db_url, clock=FrozenClock(BEFORE_DEADLINE), hooks=StoreHooks(statement=after)
    ) as reader:
        _ = reader.program  # loaded now: its query is not the call's first statement
        armed = True
        yield reader, statements


def test_show_is_one_snapshot_while_a_writer_commits(engine: Engine, db_url: str) -> None:
    """`show` returns the nomination and its history as of one moment. On PostgreSQL the
    read runs at READ COMMITTED, each statement seeing newer commits: the nomination row is
    read before an approve commits and its history after, so the answer says version 2
    (provincial_approval) with a 3-record history ending in approved."""
    nomination = engine.nominate(
        "drc:hebei", province="hebei", kind="city", name="快照市", level="prefecture"
    )
    engine.fire(nomination.id, "submit_for_approval", "drc:hebei")
    with commit_between_statements(
        db_url, lambda: engine.fire(nomination.id, "approve", "gov:hebei")
    ) as (reader, statements):
        detail = reader.show(nomination.id, "gov:hebei")
    assert len(statements) >= 2 and engine.get(nomination.id).version == 3  # the writer ran
    trail = [(r.seq, r.event, r.to_state) for r in detail.history]
    shown = (detail.nomination.version, detail.nomination.state)
    assert shown == (len(trail), trail[-1][2]), f"show gave {shown} with history {trail}"


def test_audit_verify_while_a_writer_commits_finds_no_break(engine: Engine, db_url: str) -> None:
    """`audit verify` run beside normal work must not cry wolf. On PostgreSQL it reads the
    nominations' heads and then, in a later statement that sees newer commits, the records:
    a record committed in between is reported as a broken chain (exit 7)."""
    nomination = engine.nominate(
        "drc:hebei", province="hebei", kind="city", name="审计市", level="prefecture"
    )
    with commit_between_statements(
        db_url, lambda: engine.fire(nomination.id, "submit_for_approval", "drc:hebei")
    ) as (reader, statements):
        report = reader.verify_audit()
    assert len(statements) >= 2 and engine.get(nomination.id).version == 2  # the writer ran
    assert report.ok, f"audit verify beside one commit reported {report}"
    assert engine.verify_audit().ok
