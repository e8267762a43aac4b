"""The migration file of a programme change: where the nominations of a state go.

YAML with one key, ``states``, mapping a state of the version in force to a state of the
new one::

    states:
      submitted: expert_review

Whether the states exist, and whether every stranded state is mapped, is for the rules
of a programme change (:mod:`peakpilot.states.program_change`), which know both versions.
"""

from __future__ import annotations

from pathlib import Path

from peakpilot.config.yaml_lines import line_of, load_yaml
from peakpilot.errors import ConfigError

_SHAPE = "write `states:` and under it one line per state, e.g. `  submitted: expert_review`"


def load_migration(path: str | Path) -> dict[str, str]:
    path = Path(path)
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeError, ValueError) as exc:  # ValueError: a NUL in the path
        raise ConfigError(f"cannot read migration file {path}: {exc}") from exc
    return parse_migration(source, str(path))


def parse_migration(source: str, where: str = "<migration>") -> dict[str, str]:
    """The ``states`` mapping, old state -> new state."""
    document, root = load_yaml(source, where, what="migration")
    if not isinstance(document, dict) or set(document) != {"states"}:
        raise ConfigError(f"{where}: {_SHAPE}")
    states = document["states"]
    if not isinstance(states, dict) or not states:
        raise ConfigError(f"{where}{line_of(root, ('states',))}: {_SHAPE}")
    mapping: dict[str, str] = {}
    for old, new in states.items():
        if not isinstance(old, str) or not isinstance(new, str):
            at = f"{where}{line_of(root, ('states', str(old)))}"
            raise ConfigError(f"{at}: {old!r}: map a state's name to a state's name")
        mapping[old] = new
    return mapping


__all__ = ["load_migration", "parse_migration"]
