"""The daemon as a real process, and its footprint with many pending timers (figure 9).

The design keeps timers in the database and holds O(1) APScheduler jobs (a wake-up at
the earliest due time, the sweep, the dispatcher), never one job per row. So a daemon
over N pending timers must hold no more than 3 jobs and about the memory of one with
none. Both daemons run on SQLite files that differ only by the timers (N milestone
timers due in the year 2999, unique keys, spread over 1,000 seeded nominations); each
repetition starts both at once, waits for their ``caught up`` line (which carries the
job count) and a couple of sweeps, then reads VmRSS from /proc. Memory barely varies
between runs, so at most 3 repetitions are made (timed figures get all of them).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from benchmarks import seed
from benchmarks.cli_startup import clean_environment
from benchmarks.context import Context
from benchmarks.databases import checkpoint, sqlite_url
from benchmarks.figures import SPECS, Figure
from benchmarks.timing import Samples
from benchmarks.workload import BEFORE_DEADLINE, DEADLINE
from peakpilot import Engine, FrozenClock

CAUGHT_UP = "caught up"
FAR_FUTURE = datetime(2999, 1, 1, tzinfo=UTC)
OWNERS = 1_000  # seeded nominations the timers belong to
MAX_REPS = 3  # memory, not time: it hardly moves between runs
SWEEP_SECONDS = 0.5  # footprint daemons sweep often, so "a couple of sweeps" is quick


class DaemonProcess:
    """``python -m peakpilot --db URL daemon --log-format json`` with its log in a file."""

    def __init__(self, url: str, folder: Path, name: str, sweep_seconds: float | None) -> None:
        env = clean_environment()
        env["PEAKPILOT_OUTBOX_DIR"] = str(folder / f"outbox-{name}")
        if sweep_seconds is not None:
            env["PEAKPILOT_SWEEP_SECONDS"] = str(sweep_seconds)
        self.log_path = folder / f"{name}.log"
        self._log: IO[str] = open(self.log_path, "w", encoding="utf-8")  # noqa: SIM115
        command = [sys.executable, "-m", "peakpilot", "--db", url, "daemon", "--log-format", "json"]
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, env=env, text=True
        )

    def events(self) -> list[dict[str, Any]]:
        found = []
        for line in self.log_path.read_text(encoding="utf-8").splitlines():
            try:
                document = json.loads(line)
            except json.JSONDecodeError:
                continue  # e.g. a traceback line; shown if the daemon dies
            if isinstance(document, dict):
                found.append(document)
        return found

    def wait_for(self, message: str, timeout: float) -> dict[str, Any]:
        """The first log event with this message, waiting up to ``timeout`` seconds."""
        limit = time.monotonic() + timeout
        while True:
            for event in self.events():
                if event.get("message") == message:
                    return event
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the daemon exited {self.process.returncode} before {message!r}:\n"
                    + self.log_path.read_text(encoding="utf-8")
                )
            if time.monotonic() > limit:
                raise TimeoutError(f"no {message!r} from the daemon within {timeout} s")
            time.sleep(0.02)

    def memory_kib(self) -> dict[str, int]:
        """VmRSS (resident now) and VmHWM (peak resident) of the daemon process."""
        found = {}
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = int(value.split()[0])  # "  65432 kB"
        return {"rss": found["VmRSS"], "hwm": found["VmHWM"]}

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then the exit status (killed if it does not stop in time)."""
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
                raise RuntimeError(f"the daemon ignored SIGTERM for {timeout} s") from None
        finally:
            self._log.close()

    def errors(self) -> list[dict[str, Any]]:
        return [e for e in self.events() if e.get("level") in ("error", "critical")]


def prepare(path: Path, timers: int) -> None:
    """A database whose 2023 deadline work is done, 1,000 nominations, ``timers``
    pending milestone timers far in the future."""
    with Engine(sqlite_url(path), clock=FrozenClock(BEFORE_DEADLINE)) as engine:
        engine.init()
        engine.tick(DEADLINE)  # the 2023 work, so that only the seeded timers remain
    owners = seed.sqlite_nominations(path, OWNERS, keep=True)
    if timers:
        seed.sqlite_milestones(path, owners, timers, due=FAR_FUTURE)
    checkpoint(path)


def run_daemon_timers(ctx: Context) -> list[Figure]:
    folder = ctx.folder("daemon_timers")
    count = ctx.sizes.daemon_timers
    paths = {"timers": folder / "timers.db", "idle": folder / "idle.db"}
    ctx.log(f"seeding {count:,} timers")
    prepare(paths["timers"], count)
    prepare(paths["idle"], 0)
    rss: dict[str, list[float]] = {label: [] for label in paths}
    peak: dict[str, list[float]] = {label: [] for label in paths}
    jobs: dict[str, list[int]] = {label: [] for label in paths}
    reps = min(ctx.reps, MAX_REPS)
    for rep in range(reps):
        daemons = {
            label: DaemonProcess(sqlite_url(path), folder, f"{label}-{rep}", SWEEP_SECONDS)
            for label, path in paths.items()
        }
        try:
            for label, daemon in daemons.items():
                jobs[label].append(int(daemon.wait_for(CAUGHT_UP, timeout=120)["jobs"]))
            time.sleep(2.5 * SWEEP_SECONDS)  # a couple of sweeps after catching up
            for label, daemon in daemons.items():
                memory = daemon.memory_kib()
                rss[label].append(memory["rss"] / 1024)
                peak[label].append(memory["hwm"] / 1024)
        finally:
            codes = {label: daemon.stop() for label, daemon in daemons.items()}
        problems = {label: d.errors() for label, d in daemons.items() if d.errors()}
        if any(codes.values()) or problems:
            raise RuntimeError(f"daemon exit codes {codes}, errors logged: {problems}")
        ctx.log(
            f"rep {rep + 1}/{reps}: "
            + ", ".join(f"{k} {rss[k][-1]:.1f} MiB, {jobs[k][-1]} jobs" for k in paths)
        )
    figure = Figure(
        SPECS["daemon_timers"],
        measured=Samples(tuple(rss["timers"])),
        baseline=Samples(tuple(rss["idle"])),
    )
    figure.details = {
        "pending_timers": count,
        "jobs": max(jobs["timers"]),
        "jobs_without_timers": max(jobs["idle"]),
        "peak_rss_mib": {label: round(max(values), 1) for label, values in peak.items()},
        "sweep_seconds": SWEEP_SECONDS,
        "measured": "VmRSS after 'caught up' and 2.5 sweeps",
    }
    return [figure]
