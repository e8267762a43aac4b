"""peakpilot's benchmark harness (issue 6): ``python -m benchmarks`` or ``make bench``.

Every figure is measured next to its baseline in the same run (a raw driver, the naive
library version, the same engine at another size, or a bare interpreter) and reported as
a ratio against the issue's goal. One module per job:

- ``__main__``: options and orchestration; ``report``: the table and results.json;
  ``figures``: what each figure is and its goal; ``timing``: interleaved repetitions.
- ``workload``: the fire cycle all fire figures share; ``seed``: bulk rows straight into
  the schema; ``databases``: scratch SQLite files and PostgreSQL databases.
- ``raw`` and ``naive``: the baselines of ``Engine.fire``; ``fire`` (SQLite) and
  ``postgres`` (with its client processes in ``pg_clients``): the fire figures.
- ``lapse``: the deadline at scale; ``cli_startup``: whole-process CLI time; ``daemon``:
  the daemon's footprint with many timers; ``due``: how late the daemon does a deadline.

The engine side goes through peakpilot's public API only (``Engine`` and its
snapshots); the table definitions and direct SQL are used for seeding and baselines.
"""
