"""The ``peakpilot`` command line: parse, call the Engine, print. No business rules here.

Exit codes come from the exception classes (see :mod:`peakpilot.errors`); usage errors
are 2. With ``--json`` stdout holds one JSON document on success and nothing on failure.
Heavy modules (SQLAlchemy, Rich) are imported only by the commands that use them, so
``peakpilot --help`` loads Click alone.

- :mod:`~peakpilot.cli.app`: the group, its options, the plumbing (settings, the Engine)
  and :func:`main`, which turns errors into one line on stderr and an exit code;
- :mod:`~peakpilot.cli.output`: JSON documents, times and tables;
- the commands, by what they act on: :mod:`~peakpilot.cli.nominations`,
  :mod:`~peakpilot.cli.pilots` (the construction years), :mod:`~peakpilot.cli.batches`,
  :mod:`~peakpilot.cli.notices` and the operator's
  :mod:`~peakpilot.cli.operations`.
"""

from __future__ import annotations

from peakpilot.cli import batches, nominations, notices, operations, pilots, programs
from peakpilot.cli.app import cli, main

for _module in (nominations, pilots, batches, notices, operations, programs):
    for _command in _module.COMMANDS:
        cli.add_command(_command)

__all__ = ["cli", "main"]
