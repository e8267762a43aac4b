"""Settings: the flags over the environment over the TOML file over the defaults, each
value converted and checked, and every mistake a one-line ConfigError naming what to fix
(DESIGN §4: a variable, or the file and its key or line)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import fields
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from peakpilot.config.settings import DEFAULT_DATABASE_URL, Secret, Settings, load_settings
from peakpilot.errors import ConfigError
from peakpilot.notifications.channels import SmtpChannel, channel_from_settings

BEIJING = timezone(timedelta(hours=8))


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("PEAKPILOT_"):
            monkeypatch.delenv(name)


def toml_file(tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Write ``text`` as the settings file and name it in PEAKPILOT_CONFIG."""
    path = tmp_path / "peakpilot.toml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("PEAKPILOT_CONFIG", str(path))
    return path


def refused(**overrides: object) -> str:
    """The message of the ConfigError that load_settings raises, checked for one line."""
    with pytest.raises(ConfigError) as info:
        load_settings(**overrides)
    message = str(info.value)
    assert "\n" not in message, message
    assert info.value.exit_code == 5
    return message


# --- the defaults and the order of sources ---------------------------------------------


def test_the_defaults() -> None:
    settings = load_settings()
    assert settings == Settings()
    assert settings.database_url == DEFAULT_DATABASE_URL == "sqlite:///peakpilot.db"
    assert (settings.now, settings.contacts, settings.templates_dir) == (None, None, None)
    assert (settings.notify_channel, settings.notify_max_attempts) == ("file", 8)
    assert settings.notify_from == "peakpilot <noreply@peakpilot.invalid>"
    assert settings.outbox_dir == Path("outbox")
    assert (settings.smtp_host, settings.smtp_port, settings.smtp_starttls) == (
        "localhost",
        25,
        False,
    )
    assert (settings.smtp_user, settings.smtp_password) == (None, None)
    assert settings.sweep_seconds == 5.0


def test_flags_over_environment_over_file_over_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    toml_file(
        tmp_path,
        'database_url = "sqlite:///file.db"\nsmtp_host = "file.example.cn"\nsmtp_port = 2525\n',
        monkeypatch,
    )
    monkeypatch.setenv("PEAKPILOT_DATABASE_URL", "sqlite:///env.db")
    monkeypatch.setenv("PEAKPILOT_SMTP_HOST", "env.example.cn")
    settings = load_settings(database_url="sqlite:///flag.db", now=None)
    assert settings.database_url == "sqlite:///flag.db"  # the flag
    assert settings.smtp_host == "env.example.cn"  # the environment over the file
    assert settings.smtp_port == 2525  # the file over the default
    assert settings.notify_max_attempts == 8  # the default
    assert settings.now is None  # a None override is not given


def test_environment_names_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("peakpilot_database_url", "sqlite:///lower.db")
    monkeypatch.setenv("Peakpilot_Smtp_Port", "2525")
    settings = load_settings()
    assert (settings.database_url, settings.smtp_port) == ("sqlite:///lower.db", 2525)


def test_one_setting_in_two_spellings_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEAKPILOT_DATABASE_URL", "sqlite:///upper.db")
    monkeypatch.setenv("Peakpilot_Database_Url", "sqlite:///mixed.db")
    message = refused()
    assert "PEAKPILOT_DATABASE_URL" in message and "Peakpilot_Database_Url" in message, message


def test_other_peakpilot_variables_are_not_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """PEAKPILOT_CONFIG, PEAKPILOT_LANG and the like belong to other readers."""
    monkeypatch.setenv("PEAKPILOT_LANG", "en")
    monkeypatch.setenv("PEAKPILOT_TEST_POSTGRES_URL", "x")
    assert load_settings() == Settings()


def test_an_empty_variable_is_a_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """As pydantic-settings read it: the URL is then refused by the database layer."""
    monkeypatch.setenv("PEAKPILOT_DATABASE_URL", "")
    assert load_settings().database_url == ""


# --- values from the environment -------------------------------------------------------

VALID = [
    ("DATABASE_URL", "sqlite:///env.db", "database_url", "sqlite:///env.db"),
    ("NOW", "2023-10-20T09:00:00+08:00", "now", datetime(2023, 10, 20, 9, tzinfo=BEIJING)),
    ("NOW", "2023-10-20T01:00:00Z", "now", datetime(2023, 10, 20, 1, tzinfo=UTC)),
    ("NOW", "2023-10-20 09:00:00+08:00", "now", datetime(2023, 10, 20, 9, tzinfo=BEIJING)),
    ("CONTACTS", "contacts.yaml", "contacts", Path("contacts.yaml")),
    ("TEMPLATES_DIR", "/srv/templates", "templates_dir", Path("/srv/templates")),
    ("TEMPLATE_CACHE_DIR", "/var/cache/pp", "template_cache_dir", Path("/var/cache/pp")),
    ("OUTBOX_DIR", "mail", "outbox_dir", Path("mail")),
    ("NOTIFY_CHANNEL", "smtp", "notify_channel", "smtp"),
    ("NOTIFY_FROM", "碳达峰 <a@b.cn>", "notify_from", "碳达峰 <a@b.cn>"),
    ("NOTIFY_MAX_ATTEMPTS", "1", "notify_max_attempts", 1),
    ("NOTIFY_MAX_ATTEMPTS", "100", "notify_max_attempts", 100),
    ("SMTP_HOST", "mail.example.cn", "smtp_host", "mail.example.cn"),
    ("SMTP_PORT", " 587 ", "smtp_port", 587),
    ("SMTP_PORT", "65535", "smtp_port", 65535),
    ("SMTP_USER", "peakpilot", "smtp_user", "peakpilot"),
    ("SMTP_PASSWORD", "s3cret", "smtp_password", Secret("s3cret")),
    ("SWEEP_SECONDS", "0.3", "sweep_seconds", 0.3),
    ("SWEEP_SECONDS", "3600", "sweep_seconds", 3600.0),
    ("SWEEP_SECONDS", "1e2", "sweep_seconds", 100.0),
    ("MAX_MATERIAL_BYTES", "1048576", "max_material_bytes", 1_048_576),
    ("HTTP", "127.0.0.1:9108", "http", "127.0.0.1:9108"),
    ("STALE_AFTER", "7", "stale_after", timedelta(days=7)),
    ("STALE_AFTER", "0.5", "stale_after", timedelta(hours=12)),
    ("STALE_AFTER", "36h", "stale_after", timedelta(hours=36)),
    ("STALE_AFTER", "90m", "stale_after", timedelta(minutes=90)),
    ("STALE_AFTER", "3600s", "stale_after", timedelta(hours=1)),
    *[("SMTP_STARTTLS", text, "smtp_starttls", True) for text in ("true", "True", "1", "yes")],
    *[("SMTP_STARTTLS", text, "smtp_starttls", True) for text in ("on", "ON", "t", "y")],
    *[("SMTP_STARTTLS", text, "smtp_starttls", False) for text in ("false", "0", "no", "NO")],
    *[("SMTP_STARTTLS", text, "smtp_starttls", False) for text in ("off", "f", "n")],
]


@pytest.mark.parametrize(("variable", "text", "name", "expected"), VALID)
def test_a_valid_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, text: str, name: str, expected: object
) -> None:
    monkeypatch.setenv(f"PEAKPILOT_{variable}", text)
    value = getattr(load_settings(), name)
    assert value == expected
    assert type(value) is type(expected)
    if isinstance(expected, datetime):
        assert value.utcoffset() == expected.utcoffset()


INVALID = [
    *[("STALE_AFTER", text) for text in ("0", "-1", "7w", "", " 7", "3651", "１", "7 d", "nan")],
    ("SMTP_PORT", "x"),
    ("SMTP_PORT", ""),
    ("SMTP_PORT", "0"),
    ("SMTP_PORT", "65536"),
    ("SMTP_PORT", "２５"),  # full-width digits, which int() alone would read
    ("NOTIFY_MAX_ATTEMPTS", "0"),
    ("NOTIFY_MAX_ATTEMPTS", "101"),
    ("NOTIFY_MAX_ATTEMPTS", "8.5"),
    ("SWEEP_SECONDS", "0"),
    ("SWEEP_SECONDS", "-1"),
    ("SWEEP_SECONDS", "3600.01"),
    ("SWEEP_SECONDS", "nan"),
    ("SWEEP_SECONDS", "inf"),
    ("SWEEP_SECONDS", "soon"),
    ("SMTP_STARTTLS", ""),
    ("SMTP_STARTTLS", "2"),
    ("SMTP_STARTTLS", " true"),
    ("NOTIFY_CHANNEL", "pigeon"),
    ("NOTIFY_CHANNEL", "SMTP"),
    ("NOTIFY_CHANNEL", ""),
    ("NOW", "2023-10-20T09:00:00"),  # naive: its zone would be a guess
    ("NOW", "2023-10-20"),
    ("NOW", "now"),
    ("NOW", ""),
    ("NOW", "2023-10-20T09:00:00+24:00"),
]


@pytest.mark.parametrize(("variable", "text"), INVALID)
def test_an_invalid_variable_is_named(
    monkeypatch: pytest.MonkeyPatch, variable: str, text: str
) -> None:
    monkeypatch.setenv(f"PEAKPILOT_{variable}", text)
    message = refused()
    assert message.startswith(f"PEAKPILOT_{variable}: "), message
    assert repr(text) in message, message


def test_an_invalid_variable_is_named_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("peakpilot_smtp_port", "x")
    assert refused().startswith("peakpilot_smtp_port: ")


def test_a_naive_now_says_to_add_an_offset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEAKPILOT_NOW", "2023-10-20T09:00:00")
    assert "no UTC offset" in refused()


# --- the TOML file ---------------------------------------------------------------------


def test_values_from_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    toml_file(
        tmp_path,
        "\n".join(
            [
                'database_url = "sqlite:///from-toml.db"',
                "now = 2023-10-20T09:00:00+08:00",
                'contacts = "contacts.yaml"',
                'notify_channel = "smtp"',
                "notify_max_attempts = 3",
                "smtp_port = 2525",
                'smtp_password = "from-file"',
                "smtp_starttls = true",
                "sweep_seconds = 2",
                "",
            ]
        ),
        monkeypatch,
    )
    settings = load_settings()
    assert settings.database_url == "sqlite:///from-toml.db"
    assert settings.now == datetime(2023, 10, 20, 9, tzinfo=BEIJING)
    assert settings.contacts == Path("contacts.yaml")
    assert (settings.notify_channel, settings.notify_max_attempts) == ("smtp", 3)
    assert (settings.smtp_port, settings.smtp_starttls) == (2525, True)
    assert settings.smtp_password == Secret("from-file")
    assert settings.sweep_seconds == 2.0 and type(settings.sweep_seconds) is float


def test_an_empty_config_variable_names_no_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEAKPILOT_CONFIG", "")
    assert load_settings() == Settings()


def test_a_missing_file_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    monkeypatch.setenv("PEAKPILOT_CONFIG", str(missing))
    message = refused()
    assert message == f"PEAKPILOT_CONFIG: cannot read settings file {missing}: " + (
        "No such file or directory"  # once: not the errno and the path again
    )


def test_an_unreadable_file_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PEAKPILOT_CONFIG", str(tmp_path))  # a folder
    assert refused().startswith(f"PEAKPILOT_CONFIG: cannot read settings file {tmp_path}: ")


def test_a_file_that_is_not_utf8_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('smtp_user = "Jos\xe9"\n'.encode("latin-1"))
    monkeypatch.setenv("PEAKPILOT_CONFIG", str(path))
    assert refused().startswith(f"PEAKPILOT_CONFIG: cannot read settings file {path}: ")


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('database_url = "sqlite:///x.db"\nsmtp_port = \n', 2),
        ("smtp_port = 25\nsmtp_port = 26\n", 2),
        ('[smtp\nhost = "x"\n', 1),
        ('smtp_host = "unterminated\n', 1),
    ],
    ids=["no value", "a key twice", "an unclosed table", "an unterminated string"],
)
def test_a_syntax_error_names_the_file_and_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str, line: int
) -> None:
    path = toml_file(tmp_path, text, monkeypatch)
    message = refused()
    assert message.startswith(f"{path}:{line}: invalid TOML in settings file: "), message


def test_a_key_the_settings_do_not_know_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = toml_file(tmp_path, 'smtp_host = "x"\nsmtp_prot = 2525\n', monkeypatch)
    message = refused()
    assert message.startswith(f"{path}: unknown setting 'smtp_prot' (known: "), message
    assert "smtp_port" in message


def test_a_table_is_an_unknown_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = toml_file(tmp_path, '[smtp]\nhost = "x"\n', monkeypatch)
    assert refused().startswith(f"{path}: unknown setting 'smtp' ")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('smtp_port = "x"', "smtp_port"),
        ("smtp_port = 25.0", "smtp_port"),
        ("smtp_port = true", "smtp_port"),
        ("notify_max_attempts = 0", "notify_max_attempts"),
        ("outbox_dir = 3", "outbox_dir"),
        ("smtp_starttls = 2", "smtp_starttls"),
        ('notify_channel = "pigeon"', "notify_channel"),
        ("now = 2023-10-20T09:00:00", "now"),  # a local date-time: no offset
        ("now = 2023-10-20", "now"),
        ("now = 09:00:00", "now"),
        ("sweep_seconds = nan", "sweep_seconds"),
    ],
)
def test_an_invalid_value_names_the_file_and_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str, key: str
) -> None:
    path = toml_file(tmp_path, text + "\n", monkeypatch)
    assert refused().startswith(f"{path}: {key}: ")


def test_the_environment_wins_over_an_invalid_value_in_the_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    toml_file(tmp_path, 'smtp_port = "x"\n', monkeypatch)
    monkeypatch.setenv("PEAKPILOT_SMTP_PORT", "2525")
    assert load_settings().smtp_port == 2525


# --- overrides, the password -----------------------------------------------------------


def test_overrides_are_converted_and_checked() -> None:
    at = datetime(2023, 10, 20, 9, tzinfo=BEIJING)
    assert load_settings(now=at, smtp_port="2525").smtp_port == 2525
    assert load_settings(now=at).now is at
    assert refused(now=datetime(2023, 10, 20, 9)).startswith("now: ")
    assert refused(notify_max_attempts=0).startswith("notify_max_attempts: ")


def test_an_unknown_override_is_a_mistake_in_the_caller() -> None:
    with pytest.raises(TypeError, match="smtp_prot"):
        load_settings(smtp_prot=2525)


def test_every_field_is_read_from_the_environment() -> None:
    """The table of valid variables above reaches every field of Settings."""
    assert {name for _, _, name, _ in VALID} == {field.name for field in fields(Settings)}


def test_the_password_shows_in_no_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEAKPILOT_SMTP_PASSWORD", "s3cret-value")
    monkeypatch.setenv("PEAKPILOT_NOTIFY_CHANNEL", "smtp")
    settings = load_settings()
    assert settings.smtp_password is not None
    assert settings.smtp_password.get_secret_value() == "s3cret-value"
    for text in (repr(settings), str(settings), repr(settings.smtp_password)):
        assert "s3cret" not in text, text
    channel = channel_from_settings(settings)
    assert isinstance(channel, SmtpChannel) and channel.password == "s3cret-value"


def test_importing_settings_loads_neither_pydantic_nor_yaml(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every command reads its settings: they must not pull in the validators (checked in
    a fresh interpreter, with a TOML file to read)."""
    toml_file(tmp_path, "smtp_port = 2525\n", monkeypatch)
    script = (
        "import sys\n"
        "from peakpilot.config.settings import load_settings\n"
        "assert load_settings().smtp_port == 2525\n"
        "print(sorted({m.split('.')[0] for m in sys.modules}"
        " & {'pydantic', 'pydantic_core', 'pydantic_settings', 'yaml'}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", proc.stdout
