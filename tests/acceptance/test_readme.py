"""The README's command-line walkthrough works as written, on the day it is run: its two
shell blocks ("The command line" and "After confirmation") run in bash, in a fresh
folder, with nothing set but what they set themselves, each command a real
``python -m peakpilot`` process; every one must succeed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.construction_helpers import PDF

README = Path(__file__).parents[2] / "README.md"
SECTIONS = ("## The command line", "### After confirmation")


def shell_block(after: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(after)
    found = re.search(r"```sh\n(.*?)```", text[start:], re.S)
    assert found, f"no sh block after {after!r}"
    return found.group(1)


def test_the_walkthrough_runs_as_written(tmp_path: Path) -> None:
    (tmp_path / "实施方案.pdf").write_bytes(PDF)  # the reader's own documents
    (tmp_path / "2024年进展报告.pdf").write_bytes(PDF)
    script = "\n".join(
        [
            "set -euo pipefail",
            f'peakpilot() {{ "{sys.executable}" -m peakpilot "$@"; }}',
            *(shell_block(section) for section in SECTIONS),
            'peakpilot --json show "$id"',
        ]
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PEAKPILOT_")}
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr}"
    last = json.loads(done.stdout.splitlines()[-1])  # `show --json`: one line in a pipe
    assert (last["state"], last["history"][-1]["event"]) == ("rectification", "fail_evaluation")
