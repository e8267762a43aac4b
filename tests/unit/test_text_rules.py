"""Names and reasons (DESIGN §2): a name is 1 to 200 characters with no control
characters; a reason may hold line breaks but no other control characters."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peakpilot.errors import InvalidInput
from peakpilot.states.text_rules import check_name, check_reason

CONTROL = st.characters(categories=["Cc"])
LONE_SURROGATES = ["\udc80", "\ud800", "\udfff", "\udbff"]
OTHER_BAD = ["\u2028", "\u2029", *LONE_SURROGATES]


# --- names ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "石",
        "x" * 200,
        "城" * 200,
        "石家庄市",
        "内蒙古鄂尔多斯市",
        "苏州工业园区",
        "Xiong'an New Area",
        "a b",
        "中关村 科技园",
        "🏭" * 200,
    ],
)
def test_valid_names_are_returned_unchanged(name: str) -> None:
    assert check_name(name) is name


@pytest.mark.parametrize(
    ("name", "words"),
    [
        pytest.param("", ["empty"], id="empty"),
        pytest.param(" ", ["empty"], id="space"),
        pytest.param("   \t ", ["empty"], id="blanks"),
        pytest.param("\u3000", ["empty"], id="ideographic-space"),
        pytest.param("x" * 201, ["201", "200"], id="201-chars"),
        pytest.param("城" * 201, ["201", "200"], id="201-chinese"),
        pytest.param("x" * 5000, ["5000", "200"], id="5000-chars"),
        pytest.param(" 石家庄市", ["spaces"], id="leading-space"),
        pytest.param("石家庄市 ", ["spaces"], id="trailing-space"),
        pytest.param("\u3000石家庄市", ["spaces"], id="leading-ideographic-space"),
        pytest.param("石家庄市\u00a0", ["spaces"], id="trailing-nbsp"),
        pytest.param("石家庄市\n", [], id="trailing-newline"),
        pytest.param("石家\n庄市", ["U+000A"], id="inner-newline"),
        pytest.param("石家\x00庄市", ["U+0000"], id="nul"),
        pytest.param("石家\x1b[31m庄市", ["U+001B"], id="escape"),
        pytest.param("石家\x7f庄市", ["U+007F"], id="delete"),
        pytest.param("石家\x85庄市", ["U+0085"], id="next-line"),
        pytest.param("石家\u2028庄市", ["U+2028"], id="line-separator"),
        pytest.param("石家\u2029庄市", ["U+2029"], id="paragraph-separator"),
        pytest.param("石家\udc80庄市", ["UTF-8"], id="lone-surrogate"),
    ],
)
def test_invalid_names_are_refused_with_what_to_fix(name: str, words: list[str]) -> None:
    with pytest.raises(InvalidInput) as info:
        check_name(name)
    assert info.value.exit_code == 5
    message = str(info.value)
    assert "name" in message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


@pytest.mark.parametrize("value", [None, 42, b"hebei"])
def test_a_name_that_is_not_text_is_refused(value: object) -> None:
    with pytest.raises(InvalidInput):
        check_name(value)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(
    bad=st.one_of(CONTROL, st.sampled_from(OTHER_BAD)),
    prefix=st.text(alphabet="石家庄abc", min_size=1, max_size=10),
    suffix=st.text(alphabet="市区xyz", min_size=1, max_size=10),
)
def test_any_control_character_inside_a_name_is_refused(bad: str, prefix: str, suffix: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_name(prefix + bad + suffix)
    message = str(info.value)
    assert "remove" in message
    if "\ud800" <= bad <= "\udfff":
        assert "UTF-8" in message
    else:
        assert f"U+{ord(bad):04X}" in message


@settings(max_examples=200, deadline=None)
@given(bad=st.one_of(CONTROL, st.sampled_from(OTHER_BAD)), at_start=st.booleans())
def test_any_control_character_at_an_end_of_a_name_is_refused(bad: str, at_start: bool) -> None:
    with pytest.raises(InvalidInput):
        check_name(bad + "保定市" if at_start else "保定市" + bad)


@settings(max_examples=200, deadline=None)
@given(bad=st.one_of(CONTROL, st.sampled_from(OTHER_BAD)))
def test_a_name_of_only_a_control_character_is_refused(bad: str) -> None:
    with pytest.raises(InvalidInput):
        check_name(bad)


@settings(max_examples=300, deadline=None)
@given(
    name=st.text(
        alphabet=st.characters(exclude_categories=["Cc", "Cs", "Zl", "Zp", "Zs"]),
        min_size=1,
        max_size=200,
    )
)
def test_printable_names_are_accepted_unchanged(name: str) -> None:
    if name != name.strip():  # a few Cf characters count as spaces to str.strip
        return
    assert check_name(name) is name


# --- reasons -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reason",
    [
        None,
        "",
        "x",
        "材料不全，请补充。",
        "line one\nline two",
        "line one\r\nline two\r\n",
        "line one\u2028line two\u2029",  # Unicode's line and paragraph separators
        "\n",
        "trailing space ",
        " leading space",
        "tab-free text " * 200,
    ],
)
def test_valid_reasons_are_returned_unchanged(reason: str | None) -> None:
    assert check_reason(reason) is reason


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        ("bad\x00reason", "U+0000"),
        ("bad\x1b[2Jreason", "U+001B"),
        ("bad\x07", "U+0007"),
        ("\x7f", "U+007F"),
        ("a\tb", "U+0009"),
        ("a\x0bb", "U+000B"),
        ("a\x0cb", "U+000C"),
        ("a\x85b", "U+0085"),
    ],
)
def test_reasons_with_other_control_characters_are_refused(reason: str, code: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_reason(reason)
    assert "reason" in str(info.value)
    assert code in str(info.value)


def test_a_reason_with_a_lone_surrogate_is_refused() -> None:
    with pytest.raises(InvalidInput, match="UTF-8"):
        check_reason("bad \udc80 bytes")


@settings(max_examples=300, deadline=None)
@given(
    bad=CONTROL.filter(lambda c: c not in "\r\n"), text=st.text(alphabet="理由\n\r ", max_size=20)
)
def test_any_control_character_but_line_breaks_in_a_reason_is_refused(bad: str, text: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_reason(text + bad + text)
    assert f"U+{ord(bad):04X}" in str(info.value)
