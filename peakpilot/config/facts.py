"""The few facts of a programme that its read-only views need, as plain JSON.

``init`` stores them beside the programme's text. A quick read (``peakpilot board``) takes
them from there instead of parsing and validating the whole programme: that needs
PyYAML and pydantic, which would cost a short-lived process more than its query does.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import cached_property
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class ProgramFacts:
    """Derived from a validated :class:`~peakpilot.config.program.Program` (its
    ``facts``): never edited by hand, so it is read back without validation."""

    id: str
    timezone_name: str
    provinces: tuple[str, ...]  # slugs, in the programme's order
    states: tuple[str, ...]  # in the programme's order
    quota_counts: tuple[str, ...]  # the states that use a province's places

    @cached_property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone_name)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ProgramFacts:
        data = json.loads(text)
        return cls(
            id=data["id"],
            timezone_name=data["timezone_name"],
            provinces=tuple(data["provinces"]),
            states=tuple(data["states"]),
            quota_counts=tuple(data["quota_counts"]),
        )


__all__ = ["ProgramFacts"]
