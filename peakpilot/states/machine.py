"""The programme's state machine, built once with ``transitions`` and shared by all rows.

The machine holds no nominations: each decision runs the event on a throwaway subject
that carries the nomination's current state, so one machine serves every row and every
thread. Roles and guards are the transitions' ``conditions``, in the order the contract
fixes (role first, then guards); a failing condition records why on the subject, which
the caller turns into the one exception a clerk sees.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from transitions import Machine
from transitions.core import EventData, MachineError

from peakpilot.config.program import Program, Transition
from peakpilot.errors import InvalidInput, NotPermitted, PeakpilotError, Refused
from peakpilot.states.actors import Actor
from peakpilot.states.event_data import DataValue, check_event_data
from peakpilot.states.guards import GUARDS, DecisionContext, NominationFacts


class _Subject:
    """What ``transitions`` moves: the state of one nomination for one decision."""

    __slots__ = ("data", "nomination", "refusal", "state")

    def __init__(self, nomination: NominationFacts) -> None:
        self.nomination = nomination
        self.state = nomination.state
        self.refusal: PeakpilotError | None = None
        self.data: dict[str, DataValue] | None = None  # the event's data, once checked


@dataclass(frozen=True, slots=True)
class _ProspectiveNomination:
    """The facts of a nomination not yet created, for the ``nominate`` rules."""

    id: str
    province: str
    kind: str
    name: str
    state: str


Condition = Callable[[EventData], bool]


class StateMachine:
    """Decides events for nominations of one programme. Pure: no I/O, no clock."""

    def __init__(self, program: Program) -> None:
        self.program = program
        self._transition_rows = {
            (row.event, source): row for row in program.transitions for source in row.sources
        }
        self._machine = Machine(
            model=None,
            states=list(program.states),
            initial=program.initial_state,
            transitions=[
                {
                    "trigger": row.event,
                    "source": list(row.sources),
                    "dest": row.dest,  # None: an internal move, the state unchanged
                    "conditions": self._conditions(row),
                }
                for row in program.transitions
            ],
            auto_transitions=False,
            send_event=True,
        )

    # -- decisions -------------------------------------------------------------------

    def transition(self, event: str, state: str, subject: str = "a nomination") -> Transition:
        """The declared row for ``event`` from ``state``, or a refusal saying why none is."""
        if event not in self._machine.events:
            raise Refused(
                f"unknown event {event!r}: the programme declares {', '.join(self.program.events)}"
            )
        row = self._transition_rows.get((event, state))
        if row is None:
            sources = [s for (e, s) in self._transition_rows if e == event]
            raise Refused(
                f"cannot {event} {subject}: it is {state}, and {event} applies only to "
                f"{', '.join(sources)}"
            )
        return row

    def needs(self, event: str, state: str) -> frozenset[str]:
        """The context parts (``quota``, ``target``, ``trail``) the rules of this move read."""
        row = self._transition_rows.get((event, state))
        if row is None:
            return frozenset()
        needs = frozenset().union(*(GUARDS[name].needs for name in row.guards))
        return needs | {"trail"} if row.needs_material is not None else needs

    def event_data(
        self, event: str, state: str, given: Mapping[str, Any] | None, context: DecisionContext
    ) -> dict[str, DataValue] | None:
        """The event's data as it is stored (checked against the move's declaration)."""
        row = self.transition(event, state)
        today = context.now.astimezone(self.program.timezone).date()
        return check_event_data(event, row.data, given, today)

    def decide(
        self,
        nomination: NominationFacts,
        event: str,
        actor: Actor,
        context: DecisionContext,
    ) -> str:
        """Return the state ``event`` moves ``nomination`` to, or raise why it may not.

        Checks, in the contract's order: the event is declared (Refused), it has a move
        from the current state (Refused), the actor's role and province (NotPermitted),
        the guards (Refused). ``actor`` must already be resolved against the programme.
        """
        return self.decide_with_data(nomination, event, actor, context)[0]

    def decide_with_data(
        self,
        nomination: NominationFacts,
        event: str,
        actor: Actor,
        context: DecisionContext,
    ) -> tuple[str, dict[str, DataValue] | None]:
        """:meth:`decide`, and the event's data as it is stored (checked once, on the way)."""
        self.transition(event, nomination.state, f"nomination {nomination.id}")
        subject = _Subject(nomination)
        try:
            moved = self._machine.events[event].trigger(subject, actor=actor, context=context)
        except MachineError as exc:  # unreachable after transition(), kept as a boundary
            raise Refused(f"cannot {event} nomination {nomination.id}: {exc.value}") from exc
        if not moved:
            assert subject.refusal is not None
            raise subject.refusal
        return subject.state, subject.data

    def allowed_events(
        self,
        nomination: NominationFacts,
        actor: Actor | None,
        context: DecisionContext,
    ) -> list[str]:
        """Events ``actor`` (anyone, when ``None``) could fire now, input checks aside."""
        allowed = []
        for event in self._machine.get_triggers(nomination.state):
            subject = _Subject(nomination)
            if self._machine.events[event].trigger(
                subject, actor=actor, context=context, probe=True
            ):
                allowed.append(event)
        return allowed

    def check_nominate(
        self,
        actor: Actor,
        province: str,
        kind: str,
        name: str,
        level: str,
        context: DecisionContext,
        *,
        name_taken: bool,
        piloted_in: str | None = None,
    ) -> None:
        """Refuse a new nomination the programme does not allow: the ``nominate`` roles
        and guards, then eligibility (the kind's administrative levels), then uniqueness
        (one name per kind, province and batch), then a place piloted once (``piloted_in``:
        the batch of a nomination of that place still counted as a pilot)."""
        prospective = _ProspectiveNomination(
            "(new)", province, kind, name, self.program.initial_state
        )
        refusal = self._role_refusal(
            self.program.nominate_roles, "nominate in", actor, prospective
        ) or self._guard_refusal(
            self.program.nominate_guards, "nominate", prospective, context, probe=False
        )
        if refusal is not None:
            raise refusal
        kind_spec = self.program.kinds[kind]
        if not kind_spec.levels[level]:
            raise Refused(
                f"cannot nominate {name!r}: a {level}-level {kind} is not eligible "
                f"({kind_spec.rule})"
            )
        if name_taken:
            raise Refused(
                f"cannot nominate {name!r}: {province} already has a {kind} of that name "
                f"in batch {context.batch.id}"
            )
        if piloted_in is not None:
            raise Refused(
                f"cannot nominate {name!r}: this {kind} of {province} is already a pilot, "
                f"confirmed in batch {piloted_in} (a place is piloted once)"
            )

    def check_attach(self, actor: Actor, nomination: NominationFacts) -> None:
        """Refuse an actor the programme does not let attach documents to this
        nomination (the ``attach`` roles; provincial roles for their own province)."""
        if not self.program.attach_roles:
            raise Refused("this programme keeps no materials (it declares no attach roles)")
        refusal = self._role_refusal(
            self.program.attach_roles, "attach materials to", actor, nomination
        )
        if refusal is not None:
            raise refusal

    # -- conditions ------------------------------------------------------------------

    def _conditions(self, row: Transition) -> list[Condition]:
        def allowed(event_data: EventData) -> bool:
            subject = cast(_Subject, event_data.model)
            kwargs: dict[str, Any] = event_data.kwargs
            actor: Actor | None = kwargs["actor"]
            refusal: PeakpilotError | None = None
            context: DecisionContext = kwargs["context"]
            probe = kwargs.get("probe", False)
            if actor is not None:
                refusal = self._role_refusal(row.roles, row.event, actor, subject.nomination)
            if refusal is None and not probe:
                try:  # the event's data is the command's input: checked after the role
                    subject.data = self.event_data(row.event, subject.state, context.data, context)
                    context = dataclasses.replace(context, data=subject.data)
                except InvalidInput as exc:
                    refusal = exc
            if refusal is None:
                context = dataclasses.replace(context, event=row.event)
                refusal = self._guard_refusal(
                    row.guards, row.event, subject.nomination, context, probe=probe
                ) or self._material_refusal(row, subject.nomination, context)
            subject.refusal = refusal
            return refusal is None

        return [allowed]

    def _role_refusal(
        self,
        roles: Iterable[str],
        action: str,
        actor: Actor,
        nomination: NominationFacts,
    ) -> NotPermitted | None:
        allowed = [self._actor_label(role, nomination.province) for role in roles]
        role = self.program.roles.get(actor.role)
        if (
            role is not None
            and actor.role in roles
            and (role.scope != "province" or actor.province == nomination.province)
        ):
            return None
        return NotPermitted(
            f"{actor} may not {action} {self._subject_label(nomination)}: "
            f"only {' or '.join(allowed)} may"
        )

    def _guard_refusal(
        self,
        guards: Iterable[str],
        action: str,
        nomination: NominationFacts,
        context: DecisionContext,
        *,
        probe: bool,
    ) -> Refused | None:
        for name in guards:
            guard = GUARDS[name]
            if probe and guard.on_input:
                continue
            why = guard.check(nomination, context)
            if why is not None:
                return Refused(f"cannot {action} {self._subject_label(nomination)}: {why}")
        return None

    def _material_refusal(
        self, row: Transition, nomination: NominationFacts, context: DecisionContext
    ) -> Refused | None:
        """A move that needs a document: one of its kind attached since the moment the
        programme names (the nomination entered its state, or this event last happened)."""
        rule = row.needs_material
        if rule is None:
            return None
        assert context.trail is not None, f"{row.event} needs the trail in the context"
        if rule.since == "entered_state":
            since = context.trail.entered_state(nomination.state)
            moment = f"since it became {nomination.state}"
        else:
            since = context.trail.last(row.event)
            moment = "" if since is None else f"since its last {row.event}"
        if context.trail.has_material(rule.kind, since):
            return None
        return Refused(
            f"cannot {row.event} {self._subject_label(nomination)}: attach its "
            f"{rule.kind} first (peakpilot attach ID FILE --kind {rule.kind}); none is "
            f"attached {moment}".rstrip()
        )

    def _actor_label(self, role: str, province: str) -> str:
        scope = self.program.roles[role].scope
        return f"{role}:{province}" if scope == "province" else role

    @staticmethod
    def _subject_label(nomination: NominationFacts) -> str:
        if isinstance(nomination, _ProspectiveNomination):
            return nomination.province
        return f"nomination {nomination.id}"

    # -- diagrams --------------------------------------------------------------------

    def diagram(self, fmt: str = "mermaid") -> str:
        """The machine as Mermaid ``stateDiagram-v2`` or Graphviz DOT text."""
        from peakpilot.states.diagram import render

        return render(self.program, fmt)
