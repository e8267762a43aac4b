"""The contacts file (DESIGN §4, ``PEAKPILOT_CONTACTS``): actors to addresses and a locale.

A valid file resolves every actor to its canonical id (``gov:130000`` is ``gov:hebei``); an
actor with no entry is addressed by its id, in zh-CN. An invalid file is refused with a
ConfigError naming the entry and its line (``c.yaml:LINE:``), and no text whatever makes
the parser fail any other way.
"""

from __future__ import annotations

import re
from functools import cache

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from peakpilot.config.program import Program, load_program
from peakpilot.errors import ConfigError
from peakpilot.notifications.contacts import Contacts, parse_contacts

WHERE = "c.yaml"

VALID = """\
# who receives the programme's notices
ndrc:
  email: [climate@ndrc.example.cn]
  locale: en
drc:hebei:
  email:
    - drc@hebei.example.cn
    - deputy@hebei.example.cn
gov:130000:
  email: [office@hebei.example.cn]
  locale: zh-CN
"""


@cache
def shipped_program() -> Program:
    return load_program()


@pytest.fixture
def program() -> Program:
    return shipped_program()


def line(text: str, needle: str, occurrence: int = 1) -> int:
    """The 1-based number of the line holding the ``occurrence``-th ``needle`` in ``text``."""
    found = [n for n, content in enumerate(text.splitlines(), start=1) if needle in content]
    assert len(found) >= occurrence, f"{needle!r} is not {occurrence} times in {text!r}"
    return found[occurrence - 1]


def refusal(text: str, program: Program) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_contacts(text, program, WHERE)
    message = str(caught.value)
    assert "\n" not in message.strip(), f"an error must be one line: {message!r}"
    return message


def lines_named(message: str) -> set[int]:
    return {int(n) for n in re.findall(rf"{re.escape(WHERE)}:(\d+):", message)}


# -- a valid file ------------------------------------------------------------------------


def test_a_valid_file_resolves_actors_to_their_canonical_ids(program: Program) -> None:
    contacts = parse_contacts(VALID, program, WHERE)
    assert isinstance(contacts, Contacts)
    assert set(contacts.entries) == {"ndrc", "drc:hebei", "gov:hebei"}
    assert contacts.for_actor("ndrc").locale == "en"
    assert contacts.for_actor("drc:hebei").locale == "zh-CN"  # the default
    assert contacts.for_actor("gov:hebei").addresses == ("office@hebei.example.cn",)


def test_an_actor_has_its_addresses_and_its_language(program: Program) -> None:
    contacts = parse_contacts(VALID, program, WHERE)
    assert (contacts.addresses("ndrc"), contacts.locale("ndrc")) == (
        ("climate@ndrc.example.cn",),
        "en",
    )
    assert contacts.addresses("drc:hebei") == ("drc@hebei.example.cn", "deputy@hebei.example.cn")
    assert contacts.addresses("gov:hebei") == ("office@hebei.example.cn",)


@pytest.mark.parametrize("actor", ["gov:guangdong", "drc:shanxi"])
def test_an_actor_with_no_entry_has_no_address_and_reads_chinese(
    program: Program, actor: str
) -> None:
    contacts = parse_contacts(VALID, program, WHERE)
    assert (contacts.addresses(actor), contacts.locale(actor)) == ((), "zh-CN")
    assert contacts.unaddressed(["ndrc", actor, "gov:hebei"]) == [actor]


def test_an_address_given_twice_is_one_recipient(program: Program) -> None:
    text = "ndrc:\n  email: [climate@ndrc.example.cn, climate@ndrc.example.cn]\n"
    contacts = parse_contacts(text, program, WHERE)
    assert contacts.addresses("ndrc") == ("climate@ndrc.example.cn",)


@pytest.mark.parametrize("text", ["", "\n\n", "# no contacts yet\n", "---\n", "~\n"])
def test_an_empty_file_gives_empty_contacts(program: Program, text: str) -> None:
    contacts = parse_contacts(text, program, WHERE)
    assert isinstance(contacts, Contacts)
    assert dict(contacts.entries) == {}
    assert (contacts.addresses("ndrc"), contacts.locale("ndrc")) == ((), "zh-CN")


# -- invalid files -----------------------------------------------------------------------

# (test id, text, the entry the message must name or None, the line it must name)
_UNKNOWN_PROVINCE = """\
ndrc:
  email: [climate@ndrc.example.cn]
drc:atlantis:
  email: [drc@atlantis.example.cn]
"""
_UNKNOWN_ROLE = """\
ndrc:
  email: [climate@ndrc.example.cn]
mayor:hebei:
  email: [mayor@hebei.example.cn]
"""
_MALFORMED_ACTOR = """\
ndrc:
  email: [climate@ndrc.example.cn]
drc hebei!:
  email: [drc@hebei.example.cn]
"""
_PROVINCE_MISSING = """\
ndrc:
  email: [climate@ndrc.example.cn]
gov:
  email: [office@hebei.example.cn]
"""
_SAME_ACTOR_TWICE = """\
gov:hebei:
  email: [office@hebei.example.cn]
ndrc:
  email: [climate@ndrc.example.cn]
gov:130000:
  email: [other@hebei.example.cn]
"""
_EMPTY_EMAIL = """\
ndrc:
  email: [climate@ndrc.example.cn]
drc:hebei:
  locale: en
  email: []
"""
_NO_AT = """\
ndrc:
  email:
    - climate@ndrc.example.cn
    - climate.ndrc.example.cn
"""
_SPACES = """\
ndrc:
  email: [climate@ndrc.example.cn]
drc:hebei:
  email: ["drc office@hebei.example.cn"]
"""
_CRLF = """\
ndrc:
  email: [climate@ndrc.example.cn]
drc:hebei:
  email: ["drc@hebei.example.cn\\r\\nBcc: spy@evil.example.com"]
"""
_TRAILING_LF = """\
ndrc:
  email: [climate@ndrc.example.cn]
drc:hebei:
  email: ["drc@hebei.example.cn\\n"]
"""
_BLOCK_SCALAR = """\
ndrc:
  email: [climate@ndrc.example.cn]
drc:hebei:
  email:
    - |
      drc@hebei.example.cn
"""
_UNKNOWN_LOCALE = """\
ndrc:
  email: [climate@ndrc.example.cn]
  locale: fr
"""
_SYNTAX = """\
ndrc:
  email: [climate@ndrc.example.cn]
drc:hebei:
  email: [drc@hebei.example.cn]]
gov:hebei:
  email: [office@hebei.example.cn]
"""

INVALID = [
    pytest.param(_SYNTAX, None, line(_SYNTAX, "]]"), id="yaml-syntax"),
    pytest.param(_UNKNOWN_PROVINCE, "drc:atlantis", 3, id="unknown-province"),
    pytest.param(_UNKNOWN_ROLE, "mayor:hebei", 3, id="unknown-role"),
    pytest.param(_MALFORMED_ACTOR, "drc hebei!", 3, id="malformed-actor"),
    pytest.param(_PROVINCE_MISSING, "gov", 3, id="provincial-role-without-province"),
    pytest.param(
        "ndrc:hebei:\n  email: [climate@ndrc.example.cn]\n",
        "ndrc:hebei",
        1,
        id="national-role-with-province",
    ),
    pytest.param(_SAME_ACTOR_TWICE, "gov:130000", 5, id="same-actor-twice"),
    pytest.param(_EMPTY_EMAIL, "drc:hebei", line(_EMPTY_EMAIL, "email: []"), id="empty-email"),
    pytest.param("ndrc:\n  locale: en\n", "ndrc", 1, id="no-email"),
    pytest.param(_NO_AT, "ndrc", line(_NO_AT, "climate.ndrc"), id="address-without-at"),
    pytest.param(_SPACES, "drc:hebei", line(_SPACES, "drc office"), id="address-with-spaces"),
    pytest.param(_CRLF, "drc:hebei", line(_CRLF, "Bcc"), id="address-with-crlf"),
    pytest.param(_TRAILING_LF, "drc:hebei", line(_TRAILING_LF, "drc@"), id="address-with-lf"),
    pytest.param(
        _BLOCK_SCALAR, "drc:hebei", line(_BLOCK_SCALAR, "- |"), id="address-as-block-scalar"
    ),
    pytest.param(_UNKNOWN_LOCALE, "ndrc", line(_UNKNOWN_LOCALE, "locale"), id="unknown-locale"),
    pytest.param("ndrc: climate@ndrc.example.cn\n", "ndrc", 1, id="entry-not-a-mapping"),
    pytest.param("- ndrc\n- drc:hebei\n", None, 1, id="top-level-list"),
]


@pytest.mark.parametrize(("text", "entry", "at_line"), INVALID)
def test_an_invalid_file_is_refused_naming_the_entry_and_the_line(
    program: Program, text: str, entry: str | None, at_line: int
) -> None:
    message = refusal(text, program)
    assert message.startswith(f"{WHERE}:{at_line}:"), (
        f"expected the message to start with {WHERE}:{at_line}: but got {message!r}"
    )
    if entry is not None:
        assert entry in message, f"the message does not name the entry {entry!r}: {message!r}"


def test_an_unknown_key_is_refused_naming_the_entry_and_the_key(program: Program) -> None:
    text = "ndrc:\n  email: [climate@ndrc.example.cn]\ndrc:hebei:\n  email: [d@h.cn]\n  phone: 1\n"
    message = refusal(text, program)
    assert "drc:hebei" in message, message
    # the entry's line or the offending key's line: either tells the clerk where to look
    assert lines_named(message) & {line(text, "drc:hebei"), line(text, "phone")}, message


def test_a_key_given_twice_in_the_yaml_is_refused_at_its_second_line(program: Program) -> None:
    text = "ndrc:\n  email: [a@ndrc.example.cn]\nndrc:\n  email: [b@ndrc.example.cn]\n"
    message = refusal(text, program)
    assert message.startswith(f"{WHERE}:3:"), message
    assert "ndrc" in message, message


# -- no other exception, whatever the text -----------------------------------------------

# Texts that once escaped as something other than a ConfigError: each is its own case so
# that every kind of failure shows, not only the first one hypothesis meets.
HOSTILE = [
    pytest.param("ndrc:\n  email: [a@b.cn]\x00\n", id="nul-character"),
    pytest.param("ndrc:\n  locale: \x07\n", id="control-character"),
    pytest.param("2023-02-30:\n  email: [a@b.cn]\n", id="impossible-date-key"),
    pytest.param("ndrc:\n  email: [a@b.cn]\n  locale: 2023-13-01\n", id="impossible-date-value"),
    pytest.param("ndrc: !!int twelve\n", id="bad-int-tag"),
    pytest.param("ndrc: !!float many\n", id="bad-float-tag"),
    pytest.param("[" * 3000, id="deep-flow-nesting"),
    pytest.param("? [a]\n: b\n", id="unhashable-key"),
    pytest.param("ndrc: !!python/object/apply:os.system [true]\n", id="python-tag"),
    pytest.param("a: *undefined\n", id="undefined-alias"),
    pytest.param("---\na\n---\nb\n", id="two-documents"),
]


def assert_contacts_or_config_error(text: str, program: Program) -> None:
    try:
        result = parse_contacts(text, program, WHERE)
    except ConfigError as error:
        assert str(error).startswith(WHERE), f"{text!r}: {error}"
    except BaseException as error:  # the property under test: nothing else escapes
        raise AssertionError(
            f"parse_contacts({text[:80]!r}) raised {type(error).__name__}: {error}"
        ) from error
    else:
        assert isinstance(result, Contacts)


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_yields_contacts_or_a_config_error(program: Program, text: str) -> None:
    assert_contacts_or_config_error(text, program)


_FRAGMENTS = st.sampled_from(
    [
        "ndrc",
        "drc:hebei",
        "gov:130000",
        "drc:atlantis",
        "email",
        "locale",
        "en",
        "zh-CN",
        "a@b.cn",
        ":",
        ": ",
        "- ",
        "[",
        "]",
        "{",
        "}",
        ",",
        "\n",
        "  ",
        "'",
        '"',
        "&a ",
        "*a",
        "!!",
        "? ",
        "#",
        "2023-02-30",
        "~",
        "\\r\\n",
    ]
)
YAMLISH = st.lists(_FRAGMENTS, max_size=40).map("".join)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(text=st.one_of(st.text(max_size=300), YAMLISH))
@example(text=VALID)
@example(text="")
def test_any_text_yields_contacts_or_a_config_error(text: str) -> None:
    assert_contacts_or_config_error(text, shipped_program())
