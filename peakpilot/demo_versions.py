"""The demo's programme change: in spring 2024 the NDRC adds an expert review between a
nomination's report and its confirmation, while the follow-up batch is in flight.

The second version ships beside the first (``carbon_peak_2023_expert_review.yaml``).
The story first asks what loading it would do (a dry run), then loads it with a
migration that sends the nomination already reported straight to the experts (a
``migrate`` record in its trail); a nomination reported afterwards is referred by the
NDRC itself, and both are decided after the experts' review.
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from peakpilot.demo import _Story

EXPERT_REVIEW = "carbon_peak_2023_expert_review.yaml"
# the nominations already reported go to the experts at once (docs/examples has the file)
MIGRATION = {"submitted": "expert_review"}


class ExpertReview:
    """The chapters of the programme change; each moves the story's clock forward."""

    def __init__(self, story: _Story) -> None:
        self.story = story

    def load(self) -> None:
        """Version 2 of the programme: its change report, then the change itself."""
        story, engine = self.story, self.story.engine
        text = resources.files("peakpilot.config.programs").joinpath(EXPERT_REVIEW)
        source = text.read_text(encoding="utf-8")
        story.say("The NDRC adds an expert review before confirming (programme version 2).")
        dry = engine.change_program(source, migrate=MIGRATION, dry_run=True)
        counts: dict[str, dict[str, int]] = {}
        for difference in dry.differences:
            section = counts.setdefault(difference.section.replace("_", " "), {})
            section[difference.change] = section.get(difference.change, 0) + 1
        marks = {"added": "+", "removed": "-", "changed": "~"}
        story.say(
            "  dry run: "
            + ", ".join(
                f"{section} " + " ".join(f"{marks[c]}{n}" for c, n in changes.items())
                for section, changes in counts.items()
            )
            + "; would move "
            + ", ".join(f"{m.nominations} {m.from_state} -> {m.to_state}" for m in dry.moves)
        )
        applied = engine.change_program(source, migrate=MIGRATION, actor="ndrc")
        story.events += sum(m.nominations for m in applied.moves)
        story.say(
            f"  ndrc loads version {applied.to_version}: {story.name('huzhou')} goes to the "
            "experts (a migrate record in its trail)"
        )

    def refer(self) -> None:
        """A nomination reported under version 2 is referred by the NDRC itself."""
        story = self.story
        story.say("Guangdong reports Foshan in the follow-up batch; the NDRC refers it.")
        story.nominate(story.candidate("foshan"))
        story.fire("foshan", "submit_for_approval", "drc:guangdong")
        story.fire("foshan", "approve", "gov:guangdong")
        story.fire("foshan", "submit", "drc:guangdong")
        story.refused(
            "confirmation before the experts' review",
            lambda: story.engine.fire(story.ids["foshan"], "confirm", "ndrc"),
        )
        story.fire("foshan", "refer_to_experts", "ndrc")

    def decide(self) -> None:
        """After the experts: one confirmed, one not."""
        story = self.story
        story.fire("huzhou", "confirm", "ndrc")
        story.fire(
            "foshan",
            "reject",
            "ndrc",
            "专家评审认为试点建设基础尚不充分 (the experts found its groundwork insufficient)",
        )
