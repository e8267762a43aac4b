"""The daemon's HTTP endpoints for monitors: ``/healthz`` and ``/metrics``.

``GET /healthz`` answers 200 when healthy and 503 when not, with the ``status`` document
as JSON (:mod:`peakpilot.workflow.health`). ``GET /metrics`` is Prometheus text
(``prometheus_client``): what the database says is read when it is scraped (a custom
collector, so that several daemons on one database report the same backlog, and a
restarted daemon loses no count), and the daemon's own durations are histograms it
observes. Each daemon has its own registry, never the process-wide one, so that an
embedding backend's metrics and tests stay apart.

The server is ``wsgiref`` on one background thread: a scrape every few seconds needs no
more. It listens on loopback unless another address is asked for.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Histogram, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from peakpilot.errors import InvalidInput, PeakpilotError, Refused
from peakpilot.workflow.snapshots import to_json

if TYPE_CHECKING:
    from peakpilot.workflow.engine import Engine
    from peakpilot.workflow.health import Status

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
LOOPBACK = "127.0.0.1"


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` or ``PORT`` (loopback) as (host, port)."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or LOOPBACK
    try:
        number = int(port)
        if not 0 < number < 65536:
            raise ValueError
        if host != "localhost":
            ipaddress.ip_address(host)
    except ValueError:
        raise InvalidInput(
            f"cannot listen on {text!r}: give PORT (loopback), or HOST:PORT with an IP "
            "address, e.g. 127.0.0.1:9108"
        ) from None
    return host, number


class Metrics:
    """What ``/metrics`` shows: the database's backlog at scrape time and the daemon's
    durations."""

    def __init__(
        self, status: Callable[[], Status], transitions: Callable[[], dict[str, int]]
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.tick_seconds = Histogram(
            "peakpilot_tick_seconds",
            "Seconds one sweep's timer work took (Engine.tick).",
            registry=self.registry,
        )
        self.dispatch_seconds = Histogram(
            "peakpilot_dispatch_seconds",
            "Seconds one batch of notice deliveries took.",
            registry=self.registry,
        )
        self.registry.register(_DatabaseCollector(status, transitions))


class _DatabaseCollector(Collector):
    """Gauges and counters read from the database when scraped."""

    def __init__(
        self, status: Callable[[], Status], transitions: Callable[[], dict[str, int]]
    ) -> None:
        self.status = status
        self.transitions = transitions

    def collect(self) -> Iterator[Any]:
        try:
            status, moves = self.status(), self.transitions()
        except PeakpilotError:  # the database is away: report that, and nothing stale
            yield GaugeMetricFamily("peakpilot_up", "1 when the database answered.", value=0)
            return
        yield GaugeMetricFamily("peakpilot_up", "1 when the database answered.", value=1)
        yield GaugeMetricFamily(
            "peakpilot_healthy", "1 when `peakpilot status` finds no problem.", value=status.healthy
        )
        yield GaugeMetricFamily(
            "peakpilot_timers_pending", "Timers not yet done.", value=status.timers.pending
        )
        yield GaugeMetricFamily(
            "peakpilot_timers_overdue",
            "Pending timers due more than three sweep periods ago.",
            value=status.timers.overdue,
        )
        notices = GaugeMetricFamily(
            "peakpilot_notices", "Notices in the outbox, by status.", labels=["status"]
        )
        backlog = status.notices
        for name, count in (
            ("pending", backlog.pending),
            ("failed", backlog.failed),
            ("dead", backlog.dead),
        ):
            notices.add_metric([name], count)
        yield notices
        yield GaugeMetricFamily(
            "peakpilot_daemons", "Daemons registered.", value=len(status.daemons)
        )
        transitions = CounterMetricFamily(
            "peakpilot_transitions",
            "Audit records written, by event (every transition, attach and migration).",
            labels=["event"],
        )
        for event, count in sorted(moves.items()):
            transitions.add_metric([event], count)
        yield transitions


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not news: the daemon's log is for its work."""


class MonitoringServer:
    """``/healthz`` and ``/metrics`` on one background thread."""

    def __init__(self, address: tuple[str, int], metrics: Metrics, status: Callable[[], Status]):
        self.metrics = metrics
        self.status = status
        self._metrics_app = make_wsgi_app(metrics.registry)
        self._server: WSGIServer = make_server(*address, self._app, handler_class=_Quiet)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="peakpilot-http", daemon=True
        )

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return self._metrics_app(environ, start_response)  # type: ignore[no-any-return]
        if path == "/healthz":
            return self._healthz(start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found: try /healthz or /metrics\n"]

    def _healthz(self, start_response: StartResponse) -> Iterable[bytes]:
        try:
            status = self.status()
        except PeakpilotError as error:
            body = json.dumps({"healthy": False, "problems": [str(error)]}).encode()
            code = "503 Service Unavailable"
        else:
            body = to_json(status).encode()
            code = "200 OK" if status.healthy else "503 Service Unavailable"
        start_response(code, [("Content-Type", "application/json; charset=utf-8")])
        return [body]


@contextlib.contextmanager
def serve(engine: Engine, listen: str | None, sweep_seconds: float) -> Iterator[Metrics | None]:
    """/healthz and /metrics served on ``listen`` while the block runs (nothing when it
    is None), and the metrics the daemon observes its durations in."""
    if listen is None:
        yield None
        return
    address = parse_address(listen)

    def status() -> Status:
        return engine.status(sweep_seconds=sweep_seconds)

    metrics = Metrics(status, engine.transition_counts)
    try:
        server = MonitoringServer(address, metrics, status)
    except OSError as error:
        raise Refused(f"cannot listen on {address[0]}:{address[1]}: {error.strerror}") from None
    server.start()
    try:
        yield metrics
    finally:
        server.stop()


__all__ = ["LOOPBACK", "Metrics", "MonitoringServer", "parse_address", "serve"]
