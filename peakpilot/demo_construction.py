"""The demo's second half: the confirmed pilots' construction years, 2023 to 2030.

The story of :mod:`peakpilot.demo` calls these chapters in date order, between its own
(the clock only moves forward): implementation plans drafted, one returned and
resubmitted in a new version, approved; progress reports every January; the plan and
report timers firing on the scheduler's ticks; the mid-term evaluation, one failed with
a rectification accepted; a pilot revoked for never delivering its plan; and a completion
in 2030. Every document is a real, tiny PDF (:mod:`peakpilot.demo_documents`), and a few
refusals show the construction rules at work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from peakpilot.demo_documents import pdf_document

if TYPE_CHECKING:
    from peakpilot.demo import _Story
    from peakpilot.workflow.snapshots import Material

# the pilots that build (Ordos never delivers its plan and is revoked)
BUILDERS = ("tangshan", "zhangjiakou", "cangzhou", "shenzhen", "suzhou", "huzhou")
# who issues a province's documents, for their document numbers (文号)
ISSUERS = {
    "hebei": "冀发改环资",
    "guangdong": "粤发改资环",
    "jiangsu": "苏发改资环",
    "inner_mongolia": "内发改环资",
    "zhejiang": "浙发改资环",
}
TITLES = {
    "implementation_plan": "碳达峰试点实施方案",
    "progress_report": "碳达峰试点建设进展报告",
    "rectification_report": "碳达峰试点整改报告",
    "evaluation_report": "碳达峰试点评估报告",
}


class Construction:
    """The chapters after confirmation; each moves the story's clock forward."""

    def __init__(self, story: _Story) -> None:
        self.story = story
        self.numbers = 0  # the demo's document numbers, 1, 2, ...
        self.narrating = True  # False: the routine years, told in one line each

    def attach(self, key: str, kind: str, actor: str, note: str = "", en: str = "") -> Material:
        """``actor`` attaches a generated one-page PDF of ``kind`` to pilot ``key``; the
        title (Chinese) ends with ``note``, the page's line (English) with ``en``."""
        story = self.story
        title = f"{story.name(key)}{TITLES[kind]}{note}"
        self.numbers += 1
        year = story.clock.now().year
        issuer = "发改环资" if actor == "ndrc" else ISSUERS[story.province(key)]
        doc_number = f"{issuer}〔{year}〕{self.numbers}号"
        what = kind.replace("_", " ")
        text = f"{key.title()} carbon peak pilot: {what}{en}, no. {year}-{self.numbers}"
        material = story.engine.attach(
            story.ids[key],
            pdf_document(text),
            kind=kind,
            actor=actor,
            filename=f"{key}-{kind}-{self.numbers}.pdf",
            title=title,
            doc_number=doc_number,
        )
        story.materials += 1
        if self.narrating:
            story.say(
                f"  {actor} attaches {kind} 《{title}》 {doc_number} "
                f"({material.size} bytes, {material.media_type}) -> {material.id}"
            )
        return material

    def report(self, key: str, period: int) -> None:
        """The province's DRC attaches its report on ``period`` and reports it."""
        story = self.story
        drc = f"drc:{story.province(key)}"
        self.attach(key, "progress_report", drc, f"（{period}年度）", f" on {period}")
        if self.narrating:
            story.fire(key, "report_progress", drc, data={"period": period})
        else:
            story.engine.fire(story.ids[key], "report_progress", drc, data={"period": period})
            story.events += 1

    def plans(self) -> None:
        """Late 2023 to February 2024: the first batch's implementation plans."""
        story, engine, ids = self.story, self.story.engine, self.story.ids
        story.at(11, 20)
        story.say("Confirmed pilots owe an implementation plan within 120 days.")
        story.refused(
            "no plan attached",
            lambda: engine.fire(ids["tangshan"], "submit_plan", "drc:hebei"),
        )
        story.at(1, 10, year=2024)
        story.say("The DRCs attach their plans and submit them to the NDRC.")
        for key in ("tangshan", "zhangjiakou", "cangzhou", "shenzhen", "suzhou"):
            drc = f"drc:{story.province(key)}"
            self.attach(key, "implementation_plan", drc)
            story.fire(key, "submit_plan", drc)
        story.at(1, 24, year=2024)
        story.say("The NDRC reviews the plans: one goes back.")
        story.fire(
            "zhangjiakou",
            "return_plan",
            "ndrc",
            "重点工程与投资测算不明确 (name the key projects and their investment)",
        )
        for key in ("tangshan", "cangzhou", "shenzhen", "suzhou"):
            story.fire(key, "approve_plan", "ndrc")
        story.refused(
            "the returned version no longer counts",
            lambda: engine.fire(ids["zhangjiakou"], "submit_plan", "drc:hebei"),
        )
        story.at(2, 14, hour=0, year=2024)
        story.say("Thirty days before the plans are due, the scheduler reminds who has none.")
        story.tick()
        story.at(2, 20, year=2024)
        self.attach("zhangjiakou", "implementation_plan", "drc:hebei", "（修订稿）", " (revised)")
        story.fire("zhangjiakou", "submit_plan", "drc:hebei")
        story.at(2, 27, year=2024)
        story.fire("zhangjiakou", "approve_plan", "ndrc")

    def revocation(self) -> None:
        """March and April 2024: Ordos lets its plan's deadline pass and is revoked."""
        story = self.story
        story.at(3, 8, hour=0, year=2024)
        story.say("A week before the plans are due.")
        story.tick()
        story.at(3, 15, hour=0, year=2024)
        story.say("The plans were due yesterday: Ordos has none.")
        story.tick()
        story.at(4, 10, year=2024)
        story.fire(
            "ordos",
            "revoke",
            "ndrc",
            "逾期未报送试点实施方案 (no implementation plan by its due day)",
        )

    def building(self) -> None:
        """Huzhou's plan, the 2024 reports and the 2025 mid-term evaluation."""
        story, engine, ids = self.story, self.story.engine, self.story.ids
        story.at(9, 12, year=2024)
        story.say("Huzhou, confirmed in the follow-up, delivers its plan.")
        self.attach("huzhou", "implementation_plan", "drc:zhejiang")
        story.fire("huzhou", "submit_plan", "drc:zhejiang")
        story.at(10, 8, year=2024)
        story.fire("huzhou", "approve_plan", "ndrc")

        story.at(12, 20, year=2024)
        story.say("Shenzhen's DRC tries to report on 2025 before the year has begun.")
        story.refused(
            "a year not yet begun",
            lambda: engine.fire(
                ids["shenzhen"], "report_progress", "drc:guangdong", data={"period": 2025}
            ),
        )
        story.at(1, 10, year=2025)
        story.say("January: the pilots report on 2024, each with its report.")
        for key in ("tangshan", "zhangjiakou", "cangzhou", "shenzhen", "suzhou"):
            self.report(key, 2024)
        story.refused(
            "a year reported twice",
            lambda: engine.fire(
                ids["tangshan"], "report_progress", "drc:hebei", data={"period": 2024}
            ),
        )
        story.at(1, 18, hour=0, year=2025)
        story.say("Two weeks before the reports are due.")
        story.tick()
        story.at(2, 1, hour=0, year=2025)
        story.say("The 2024 reports were due yesterday.")
        story.tick()
        story.at(2, 6, year=2025)
        story.say("Huzhou reports, late.")
        self.report("huzhou", 2024)

        story.at(6, 20, year=2025)
        story.say("The mid-term evaluation, against the 2025 objective.")
        for key, grade in (
            ("tangshan", "excellent"),
            ("zhangjiakou", "good"),
            ("shenzhen", "excellent"),
            ("suzhou", "good"),
            ("huzhou", "pass"),
        ):
            story.fire(key, "pass_midterm", "ndrc", data={"grade": grade})
        story.fire(
            "cangzhou",
            "fail_evaluation",
            "ndrc",
            "石化园区节能改造进度滞后 (the petrochemical park's retrofits are behind)",
            data={"due": "2025-09-30"},
        )
        story.at(9, 17, hour=0, year=2025)
        story.say("Two weeks before Cangzhou's rectification is due.")
        story.tick()
        story.at(9, 25, year=2025)
        story.say("Hebei's government sends Cangzhou's rectification report.")
        self.attach("cangzhou", "rectification_report", "gov:hebei")
        story.at(9, 29, year=2025)
        story.fire("cangzhou", "accept_rectification", "ndrc")
        story.at(10, 15, year=2025)
        story.say("Rectified, Cangzhou is evaluated again.")
        story.fire("cangzhou", "pass_midterm", "ndrc", data={"grade": "pass"})

    def to_2030(self) -> None:
        """The yearly reports on 2025 to 2029, and Tangshan's completion in 2030."""
        story = self.story
        story.at(1, 12, year=2026)
        story.say("January 2026: the reports on 2025, the mid-term year.")
        for key in BUILDERS:
            self.report(key, 2025)
        self.narrating = False
        for period in range(2026, 2030):
            story.at(1, 12, year=period + 1)
            for key in BUILDERS:
                self.report(key, period)
            story.say(
                f"  each of the {len(BUILDERS)} pilots attaches its progress report on "
                f"{period} (a PDF) and reports it"
            )
        self.narrating = True
        story.at(11, 5, hour=0, year=2030)
        story.say("Eight weeks before the 2030 objective.")
        story.tick()
        story.at(12, 18, year=2030)
        story.say("The final evaluation: Tangshan completes its pilot.")
        self.attach("tangshan", "evaluation_report", "ndrc", "（终期）", " (final)")
        story.fire("tangshan", "complete", "ndrc", data={"grade": "excellent"})

    def pilots(self) -> int:
        """Narrate the ``pilots`` view, a line per pilot; the number of pilots."""
        story = self.story
        rows = story.engine.pilots()
        story.say("\n[bold]The pilots[/] (peakpilot pilots)")
        for pilot in rows:
            due = pilot.next_due
            next_due = (
                "nothing due"
                if due is None
                else f"next {due.kind} due {due.due_at:%Y-%m-%d}"
                + (" [red]overdue[/]" if pilot.overdue else "")
            )
            reported = pilot.last_period or "none"
            story.say(
                f"  {pilot.name} ({pilot.province}): [bold]{pilot.state}[/], plan {pilot.plan}, "
                f"last report {reported}, {next_due}"
            )
        return len(rows)
