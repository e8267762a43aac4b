"""The quotas file of a follow-up batch: a YAML mapping ``province: quota``."""

from __future__ import annotations

from pathlib import Path

from peakpilot.config.program import Program
from peakpilot.config.yaml_lines import line_of, load_yaml
from peakpilot.errors import ConfigError, PeakpilotError

MAX_QUOTA = 1000


def load_quotas(path: str | Path, program: Program) -> dict[str, int]:
    path = Path(path)
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeError, ValueError) as exc:  # ValueError: a NUL in the path
        raise ConfigError(f"cannot read quotas file {path}: {exc}") from exc
    return parse_quotas(source, program, str(path))


def parse_quotas(source: str, program: Program, where: str = "<quotas>") -> dict[str, int]:
    """Province slugs (or codes) to whole numbers of places, each at least 1."""
    document, root = load_yaml(source, where, what="quotas")
    if not isinstance(document, dict) or not document:
        raise ConfigError(f"{where}: write one line per province, e.g. `hebei: 2`")
    quotas: dict[str, int] = {}
    for key, quota in document.items():
        at = f"{where}{line_of(root, (str(key),))}"
        try:
            slug = program.province(str(key)).slug
        except PeakpilotError as exc:
            raise ConfigError(f"{at}: {exc}") from None
        if slug in quotas:
            raise ConfigError(f"{at}: {slug} is given twice")
        if isinstance(quota, bool) or not isinstance(quota, int) or not 1 <= quota <= MAX_QUOTA:
            raise ConfigError(
                f"{at}: {key}: the quota must be a whole number from 1 to {MAX_QUOTA}"
            )
        quotas[slug] = quota
    return quotas
