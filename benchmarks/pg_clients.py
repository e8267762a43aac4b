"""The client processes of ``fire_pg_8``: real processes, each firing cycles on the
nominations of its own province, so that the figure shows what the server and the engine
do under concurrency, not what one Python interpreter's lock allows.

They are started with multiprocessing's ``forkserver`` method: a fresh interpreter is
spawned once, imports peakpilot and this module, and forks each client from itself. Like
``spawn``, no client inherits anything of this process (its connections, its threads);
unlike ``spawn``, eight clients do not each pay a second of imports, which on two busy
cores took 8 to 16 s per run.

Each process holds both an Engine (on the engine's database) and a raw psycopg
connection (on the baseline's), started and warmed up once. The parent then runs timed
windows: it names a start and an end on the monotonic clock (shared by all processes
of the machine), every client waits for the start, fires until the end and reports how
many fires it completed inside the window, so all clients are timed over the same
interval.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
import traceback
from collections.abc import Sequence
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any

from benchmarks.raw import RawPostgres
from benchmarks.workload import BEFORE_DEADLINE, Cycler, Fire, Nominated, engine_fire
from peakpilot import Engine, FrozenClock

START_LEAD = 0.25  # seconds between announcing a window and its start
READY_TIMEOUT = 180.0


def client(
    pipe: Connection,
    engine_url: str,
    raw_conninfo: str,
    engine_nominations: list[tuple[str, str]],
    raw_nominations: list[tuple[str, str]],
) -> None:
    """The body of one client process: answer window requests until told to stop."""
    engine = Engine(engine_url, clock=FrozenClock(BEFORE_DEADLINE))
    raw = RawPostgres(raw_conninfo, BEFORE_DEADLINE)
    firers: dict[str, tuple[Cycler, Fire]] = {
        "engine": (Cycler([Nominated(*n) for n in engine_nominations]), engine_fire(engine)),
        "raw": (Cycler([Nominated(*n) for n in raw_nominations]), raw),
    }
    try:
        engine.check_templates()  # loads the programme and the templates now
        pipe.send(("ready",))
        while True:
            message = pipe.recv()
            if message[0] == "stop":
                return
            _, mode, start, end = message
            cycler, fire = firers[mode]
            time.sleep(max(0.0, start - time.monotonic()))
            pipe.send(("done", cycler.until(fire, end)))
    except Exception:
        pipe.send(("error", traceback.format_exc()))
    finally:
        engine.close()
        raw.close()


class Clients:
    """``count`` client processes; :meth:`window` runs one timed window on all of them."""

    def __init__(
        self,
        engine_url: str,
        raw_conninfo: str,
        engine_nominations: Sequence[Sequence[Nominated]],
        raw_nominations: Sequence[Sequence[Nominated]],
    ) -> None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__, "peakpilot.workflow.engine"])
        self.pipes: list[Connection] = []
        self.processes: list[Any] = []
        for mine, theirs in zip(engine_nominations, raw_nominations, strict=True):
            parent, child = context.Pipe()
            process = context.Process(
                target=client,
                args=(
                    child,
                    engine_url,
                    raw_conninfo,
                    [(n.id, n.province) for n in mine],
                    [(n.id, n.province) for n in theirs],
                ),
                daemon=True,
            )
            process.start()
            child.close()
            self.pipes.append(parent)
            self.processes.append(process)
        self._gather("ready", READY_TIMEOUT)

    def window(self, mode: str, seconds: float) -> float:
        """Total fires per second of all clients over one window of ``seconds``."""
        start = time.monotonic() + START_LEAD
        end = start + seconds
        for pipe in self.pipes:
            pipe.send(("run", mode, start, end))
        counts = self._gather("done", START_LEAD + seconds + 60)
        return sum(counts) / seconds

    def _gather(self, expected: str, timeout: float) -> list[int]:
        limit = time.monotonic() + timeout
        values = []
        for index, pipe in enumerate(self.pipes):
            if not pipe.poll(max(0.0, limit - time.monotonic())):
                raise TimeoutError(f"client {index} did not answer {expected!r} in {timeout} s")
            message = pipe.recv()
            if message[0] == "error":
                raise RuntimeError(f"client {index} failed:\n{message[1]}")
            if message[0] != expected:
                raise RuntimeError(f"client {index} answered {message!r}, not {expected!r}")
            values.append(message[1] if len(message) > 1 else 0)
        return values

    def close(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):  # that client is gone already
                pipe.send(("stop",))
        for process in self.processes:
            process.join(timeout=20)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)

    def __enter__(self) -> Clients:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback_: TracebackType | None,
    ) -> None:
        self.close()
