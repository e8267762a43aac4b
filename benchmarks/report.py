"""The run's outputs: a table on the terminal, and ``results.json`` holding each figure
with its baseline, ratio, goal and whether it is met, plus what is needed to judge the
numbers later (command line, date, machine, sizes)."""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.figures import Figure
from benchmarks.timing import Samples


def machine(postgres_version: str | None) -> dict[str, Any]:
    """What the figures were measured on: they mean little without it."""
    return {
        "cores": os.cpu_count(),
        "ram_gib": round(_meminfo_kib("MemTotal") / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": postgres_version,
        "load_average": list(os.getloadavg()),
    }


def _meminfo_kib(field: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def git_commit() -> str | None:
    """The commit measured (with ``+dirty`` when the tree has changes)."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{commit}+dirty" if dirty else commit


def _samples(samples: Samples | None, digits: int = 6) -> dict[str, Any] | None:
    if samples is None:
        return None
    return {
        "median": round(samples.median, digits),
        "min": round(samples.min, digits),
        "max": round(samples.max, digits),
        "samples": [round(value, digits) for value in samples.values],
    }


def figure_json(figure: Figure) -> dict[str, Any]:
    spec = figure.spec
    measured = _samples(figure.measured)
    document: dict[str, Any] = {
        "title": spec.title,
        "status": figure.status,
        "unit": spec.unit,
        "value": None if figure.value is None else round(figure.value, 6),
        "statistic": spec.statistic,
        "min": None if measured is None else measured["min"],
        "max": None if measured is None else measured["max"],
        "samples": None if measured is None else measured["samples"],
        "value_label": spec.value_label,
        "baseline": None,
        "ratio": None if figure.ratio is None else round(figure.ratio, 4),
        "goal": " and ".join(str(goal) for goal in spec.goals),
        "met": figure.met,
        "postgres": spec.postgres,
    }
    if spec.baseline_label is not None:
        baseline = _samples(figure.baseline)
        document["baseline"] = {
            "label": spec.baseline_label,
            "value": None if baseline is None else baseline["median"],
            **({} if baseline is None else baseline),
        }
    if figure.reason is not None:
        document["reason"] = figure.reason
    if figure.details:
        document["details"] = figure.details
    return document


def write_json(path: Path, header: dict[str, Any], figures: list[Figure]) -> None:
    document = {**header, "figures": {f.spec.name: figure_json(f) for f in figures}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return f"{text} {unit}".rstrip()


def _spread(samples: Samples | None) -> str:
    if samples is None:
        return ""
    return f"{_number(samples.min)}..{_number(samples.max)}"


def _goal(figure: Figure) -> str:
    return ", ".join(f"{g.subject}{g.op}{g.threshold:g}" for g in figure.spec.goals)


def table(figures: list[Figure]) -> Table:
    grid = Table(title="peakpilot benchmarks (issue 6)")
    grid.add_column("figure", no_wrap=True)
    grid.add_column("value", justify="right", no_wrap=True)
    grid.add_column("min..max", justify="right")
    grid.add_column("baseline", justify="right", no_wrap=True)
    grid.add_column("min..max", justify="right")
    grid.add_column("ratio", justify="right")
    grid.add_column("goal", no_wrap=True)
    grid.add_column("met", justify="center")
    for figure in figures:
        unit = figure.spec.unit
        if figure.status != "ok":
            style = "yellow" if figure.status == "not run" else "red"
            status = f"[{style}]{figure.status}[/]"
            grid.add_row(figure.spec.name, status, "", "", "", "", _goal(figure), "")
            continue
        met = {True: "[green]yes[/]", False: "[red]no[/]", None: "?"}[figure.met]
        grid.add_row(
            figure.spec.name,
            _number(figure.value, unit),
            _spread(figure.measured),
            _number(figure.baseline_value, unit),
            _spread(figure.baseline),
            "-" if figure.ratio is None else f"{figure.ratio:.3g}",
            _goal(figure),
            met,
        )
    return grid


def show(console: Console, figures: list[Figure]) -> None:
    console.print(table(figures))
    for figure in figures:
        if figure.status != "ok" and figure.reason:
            console.print(f"[bold]{figure.spec.name}[/] {figure.status}: {figure.reason}")
