"""Event data (``--data KEY=VALUE``) and document recognition: the pure rules."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peakpilot.config.construction import DataField
from peakpilot.errors import InvalidInput
from peakpilot.states.event_data import check_event_data, parse_pairs
from peakpilot.states.materials import check_material, recognise
from tests.construction_helpers import DOCX, JPEG, OFD, PDF, PNG, XLSX, zipped

TODAY = date(2024, 5, 1)
FIELDS = {
    "period": DataField("period", "year"),
    "grade": DataField("grade", "choice", ("excellent", "good", "pass"), required=False),
    "due": DataField("due", "date", future=True, required=False),
}


def test_values_are_stored_in_one_form_whoever_gave_them() -> None:
    typed = check_event_data("e", FIELDS, {"period": 2024, "due": date(2024, 6, 30)}, TODAY)
    text = check_event_data("e", FIELDS, {"period": "2024", "due": "2024-06-30"}, TODAY)
    assert typed == text == {"period": 2024, "due": "2024-06-30"}


def test_an_event_without_fields_takes_no_data() -> None:
    assert check_event_data("approve", {}, None, TODAY) is None
    assert check_event_data("approve", {}, {}, TODAY) is None
    with pytest.raises(InvalidInput, match="takes no data"):
        check_event_data("approve", {}, {"x": "1"}, TODAY)


@pytest.mark.parametrize(
    ("given", "words"),
    [
        ({}, "needs period=YYYY"),
        ({"period": "2024", "size": "1"}, "does not take 'size'"),
        ({"period": True}, "a year like 2024"),
        ({"period": "99"}, "a year like 2024"),
        ({"period": "1999"}, "from 2000 to 2100"),
        ({"period": "2024", "grade": "Good"}, "one of excellent, good, pass"),
        ({"period": "2024", "due": "2024-05-01"}, "must lie in the future"),
        ({"period": "2024", "due": "2024-02-30"}, "a day like"),
        ({"period": "2024", "due": "tomorrow"}, "a day like"),
    ],
)
def test_bad_data_is_refused_naming_the_key(given: dict[str, object], words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        check_event_data("e", FIELDS, given, TODAY)


@given(st.dictionaries(st.text(max_size=8), st.one_of(st.text(max_size=12), st.integers())))
def test_any_data_is_either_stored_whole_or_refused(given: dict[str, object]) -> None:
    try:
        stored = check_event_data("e", FIELDS, given, TODAY)
    except InvalidInput as error:
        assert "\n" not in str(error) or "\n" in repr(given)
        return
    assert stored is not None and set(stored) == set(given)


def test_pairs_of_the_command_line() -> None:
    assert parse_pairs(["period=2024", "note=a=b"]) == {"period": "2024", "note": "a=b"}
    for bad, words in (
        (["period"], "KEY=VALUE"),
        (["=1"], "KEY=VALUE"),
        (["a=1", "a=2"], "given twice"),
    ):
        with pytest.raises(InvalidInput, match=words):
            parse_pairs(bad)


@pytest.mark.parametrize(
    ("content", "found"),
    [
        (PDF, "pdf"),
        (PNG, "png"),
        (JPEG, "jpeg"),
        (DOCX, "docx"),
        (XLSX, "xlsx"),
        (OFD, "ofd"),
        (zipped("other.txt"), None),
        (b"PK\x03\x04", None),
        (b"GIF89a", None),
        (b"", None),
    ],
)
def test_documents_are_recognised_by_content(content: bytes, found: str | None) -> None:
    assert recognise(content) == found


def test_a_suffix_that_lies_is_refused_and_an_unknown_one_is_not() -> None:
    assert check_material(PDF, "a.PDF", 1000) == "application/pdf"
    assert check_material(PDF, "scan.bin", 1000) == "application/pdf"
    with pytest.raises(InvalidInput, match=r"named \.docx but its content is PDF"):
        check_material(PDF, "a.docx", 1000)
    with pytest.raises(InvalidInput, match="more than the 10"):
        check_material(PDF, "a.pdf", 10)
