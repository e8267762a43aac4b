"""Diagrams of a programme's machine, drawn by ``transitions``' own graph support."""

from __future__ import annotations

from transitions.extensions import GraphMachine

from peakpilot.config.program import Program
from peakpilot.errors import InvalidInput

FORMATS = ("mermaid", "dot")


class _Figure:
    """A throwaway model: ``transitions`` draws a graph per model."""


def render(program: Program, fmt: str) -> str:
    """Mermaid ``stateDiagram-v2`` or DOT text; edges are labelled with roles and guards.

    Only the text is produced (no Graphviz binary is needed): a viewer renders it.
    """
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown diagram format {fmt!r}: use {' or '.join(FORMATS)}")
    machine = GraphMachine(
        model=None,
        states=list(program.states),
        initial=program.initial_state,
        transitions=[
            {
                "trigger": row.event,
                "source": list(row.sources),
                # "=": a loop back to each source (an event that leaves the state as it is)
                "dest": "=" if row.dest is None else row.dest,
                # Shown in the edge label as [role & guard ...]; never evaluated here.
                "conditions": [
                    *(f"by_{role}" for role in row.roles),
                    *row.guards,
                    *([f"{row.needs_material.kind}_attached"] if row.needs_material else []),
                ],
            }
            for row in program.transitions
        ],
        auto_transitions=False,
        graph_engine="mermaid" if fmt == "mermaid" else "graphviz",
        title=program.title.en,
        show_conditions=True,
    )
    figure = _Figure()
    machine.add_model(figure)
    graph = figure.get_graph()  # type: ignore[attr-defined]
    if fmt == "mermaid":
        return str(graph.draw(None))
    return str(graph.source)
