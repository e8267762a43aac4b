"""Materials: attaching a document to a nomination, and reading them back.

Attaching is a command like ``fire``: one transaction stores the bytes (once per
content), the material's row and an ``attach`` record in the nomination's audit chain
whose data names the material, its kind, size and SHA-256, so the trail says what was
filed, when and by whom, and ``audit verify`` can check the bytes against it. The state
does not change; the version does (the chain grew).
"""

from __future__ import annotations

import builtins
import hashlib
from pathlib import Path

from peakpilot.errors import InvalidInput
from peakpilot.states.actors import Actor
from peakpilot.states.materials import check_material
from peakpilot.states.text_rules import check_label
from peakpilot.vocabulary import ATTACH_EVENT
from peakpilot.workflow.ids import new_id
from peakpilot.workflow.runtime import Runtime
from peakpilot.workflow.snapshots import Material
from peakpilot.workflow.store.materials import MaterialRecord
from peakpilot.workflow.store.transaction import Transaction

MAX_TITLE = 200
MAX_DOC_NUMBER = 100


class Attachments:
    """Attach, list and fetch materials."""

    def __init__(self, runtime: Runtime, max_bytes: int) -> None:
        self.rt = runtime
        self.max_bytes = max_bytes

    def attach(
        self,
        nomination_id: str,
        content: bytes | str | Path,
        *,
        kind: str,
        actor: Actor | str,
        title: str | None,
        doc_number: str | None,
        filename: str | None,
    ) -> Material:
        actor = self.rt.actor(actor)
        data, filename = _read(content, filename, self.max_bytes)
        now = self.rt.now()
        machine, program = self.rt.machine, self.rt.program

        def attach(tx: Transaction) -> Material:
            record = tx.nominations.get(nomination_id)  # exists (3), then who (4), then what (5)
            machine.check_attach(actor, self.rt.nomination(record))
            program.material_kind(kind)
            check_label("title", title, MAX_TITLE)
            check_label("document number", doc_number, MAX_DOC_NUMBER)
            media_type = check_material(data, filename, self.max_bytes)
            material = MaterialRecord(
                id=new_id(),
                nomination_id=record.id,
                kind=kind,
                sha256=hashlib.sha256(data).hexdigest(),
                size=len(data),
                media_type=media_type,
                title=title,
                doc_number=doc_number,
                actor=str(actor),
                attached_at=now,
            )
            tx.materials.add(material, data)
            tx.nominations.move(
                record,
                event=ATTACH_EVENT,
                actor=str(actor),
                at=now,
                reason=None,
                to_state=record.state,
                batch_id=record.batch_id,
                program_version=self.rt.program_version,
                data={
                    "material": material.id,
                    "kind": kind,
                    "sha256": material.sha256,
                    "size": material.size,
                    "title": title,
                    "doc_number": doc_number,
                },
            )
            return self.rt.material(material)

        return self.rt.write(attach)

    def materials(self, nomination_id: str, actor: Actor | str | None) -> builtins.list[Material]:
        reader = self.rt.reader(actor)

        def read(tx: Transaction) -> builtins.list[Material]:
            record = tx.nominations.get(nomination_id)
            self.rt.check_reader(reader, record.province)
            return [self.rt.material(m) for m in tx.materials.of_nomination(record.id)]

        return self.rt.db.run(read, write=False)

    def material(self, material_id: str, actor: Actor | str | None) -> tuple[Material, bytes]:
        reader = self.rt.reader(actor)

        def read(tx: Transaction) -> tuple[Material, bytes]:
            material = tx.materials.get(material_id)
            record = tx.nominations.get(material.nomination_id)
            self.rt.check_reader(reader, record.province)
            return self.rt.material(material), tx.materials.content(material.sha256)

        return self.rt.db.run(read, write=False)


def _read(content: bytes | str | Path, filename: str | None, max_bytes: int) -> tuple[bytes, str]:
    """The document's bytes and the name it goes by; a file larger than the limit is
    refused before it is read whole."""
    if isinstance(content, bytes | bytearray):
        return bytes(content), filename or "the document"
    path = Path(content)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise InvalidInput(
                f"{path.name} is {size:,} bytes, more than the {max_bytes:,} a material may "
                "have (PEAKPILOT_MAX_MATERIAL_BYTES)"
            )
        return path.read_bytes(), filename or path.name
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror or exc}") from exc


__all__ = ["Attachments"]
