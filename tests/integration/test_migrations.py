"""The Alembic migrations produce exactly the schema the tables declare."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from peakpilot import Engine, FrozenClock
from peakpilot.workflow import tables  # noqa: F401  (registers the tables)


def test_the_migrated_schema_matches_the_tables(engine: Engine) -> None:
    with engine.database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, SQLModel.metadata) == []
        assert context.get_current_revision() is not None


def test_init_upgrades_an_empty_database_and_then_changes_nothing(
    db_url: str, clock: FrozenClock
) -> None:
    with Engine(db_url, clock=clock) as engine:
        assert engine.init()["changed"] is True
        assert engine.init()["changed"] is False
        names = set(sa.inspect(engine.database.engine).get_table_names())
    assert {
        "programs",
        "batches",
        "quota_allocations",
        "nominations",
        "audit_records",
        "idempotency_keys",
        "alembic_version",
    } <= names
    assert any("audit" in name for name in names)


def test_a_changed_programme_moves_the_open_batch(
    db_url: str, clock: FrozenClock, tmp_path
) -> None:
    from peakpilot.config.program import load_program

    shipped = load_program().source
    changed = tmp_path / "changed.yaml"
    changed.write_text(
        shipped.replace(
            'deadline: "2023-11-15T00:00:00+08:00"', 'deadline: "2023-11-20T00:00:00+08:00"'
        ).replace("    hebei: 3\n", "    hebei: 4\n"),
        encoding="utf-8",
    )
    with Engine(db_url, clock=clock) as engine:
        engine.init()
        assert engine.init(changed)["changed"] is True
        board = engine.board()
        assert board.deadline.day == 20
        assert {p.province: p.quota for p in board.provinces}["hebei"] == 4
        assert engine.init(changed)["changed"] is False


def test_a_database_holds_one_programme(db_url: str, clock: FrozenClock, tmp_path) -> None:
    import pytest

    from peakpilot import Refused
    from peakpilot.config.program import load_program

    other = tmp_path / "other.yaml"
    other.write_text(
        load_program().source.replace("id: carbon_peak_2023", "id: other_programme"),
        encoding="utf-8",
    )
    with Engine(db_url, clock=clock) as engine:
        engine.init()
        with pytest.raises(Refused, match="holds programme carbon_peak_2023"):
            engine.init(other)


def test_a_database_of_schema_0007_gets_its_programme_as_version_1(
    db_url: str, clock: FrozenClock
) -> None:
    """The programme a database held before versions were kept is its version 1, and its
    nominations moved under version 1."""
    from alembic import command

    from peakpilot.config.program import load_program
    from peakpilot.workflow.migrations import alembic_config

    program = load_program()
    with Engine(db_url, clock=clock) as engine:
        with engine.database.engine.begin() as connection:
            command.upgrade(alembic_config(connection), "0007")
            connection.execute(
                sa.text(
                    "INSERT INTO programs (id, digest, source, compiled, loaded_at) "
                    "VALUES (:id, :digest, :source, :compiled, :at)"
                ),
                {
                    "id": program.id,
                    "digest": program.digest,
                    "source": program.source,
                    "compiled": program.to_compiled(),
                    "at": "2023-10-01 00:00:00.000000",
                },
            )
        result = engine.init()
        assert (result["version"], result["changed"]) == (1, True)  # the batch was missing
        [version] = engine.program_versions()
        assert (version.version, version.sha256, version.actor) == (1, program.digest, "system")
        n = engine.nominate(
            "drc:hebei", province="hebei", kind="city", name="唐山市", level="prefecture"
        )
        assert n.program_version == 1


def test_a_compiled_form_of_an_older_peakpilot_is_read_from_its_text(engine: Engine) -> None:
    """A stored compiled form this peakpilot cannot read (an older format) is rebuilt from
    the stored text by init, and a change or a diff reads the text meanwhile."""
    from peakpilot.config.program import load_program

    with engine.database.engine.begin() as connection:
        for table in ("programs", "program_versions"):
            connection.execute(sa.text(f"UPDATE {table} SET compiled = '{{\"format\": 1}}'"))
    with Engine(engine.database.engine, clock=engine.clock) as later:
        assert later.init()["version"] == 1  # kept, and its compiled form written again
        assert later.program == load_program()
        changed = load_program().source.replace("    hebei: 3\n", "    hebei: 4\n")
        assert later.change_program(changed).to_version == 2
        assert [d.item for d in later.program_diff(1, 2).differences] == ["hebei"]
