"""Where compiled templates go (issue 10: no cache files outside the database's folder
unless asked). By default a Renderer compiles in memory and writes nothing, the system
temp folder included; given a ``cache_dir`` it keeps compiled templates there for the
next process, and a cache that cannot be used only costs speed."""

from __future__ import annotations

import stat
import tempfile
from pathlib import Path

import pytest

from peakpilot.notifications.render import LOCALES, Renderer, renderer_for
from tests.unit.test_templates import ALL_KINDS, context

SHIPPED_CACHE = "__peakpilot_shipped_*.cache"


def _render_everything(renderer: Renderer) -> None:
    renderer.check(ALL_KINDS)
    for kind in ALL_KINDS:
        for locale in LOCALES:
            renderer.render(kind, locale, context(kind, locale))


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    """Each file's name, inode and modification time: a file written again changes."""
    return {
        path.name: (path.stat().st_ino, path.stat().st_mtime_ns)
        for path in folder.iterdir()
        if path.is_file()
    }


@pytest.mark.parametrize("sandboxed", [False, True])
def test_rendering_writes_nothing_to_the_temp_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sandboxed: bool
) -> None:
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    overrides = tmp_path / "overrides"
    overrides.mkdir()
    folder = overrides if sandboxed else None
    _render_everything(Renderer(folder))
    _render_everything(renderer_for(folder))
    assert list(temp.iterdir()) == []


def test_a_cache_dir_keeps_compiled_templates_for_the_next_renderer(tmp_path: Path) -> None:
    expected = Renderer().render("shortfall", "en", context("shortfall", "en"))
    cache = tmp_path / "beside-the-database" / "templates"  # made with its parents

    first = Renderer(cache_dir=cache)
    assert first.render("shortfall", "en", context("shortfall", "en")) == expected
    assert list(cache.glob(SHIPPED_CACHE))
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700  # what is loaded from it runs
    _render_everything(first)
    written = _files(cache)

    second = Renderer(cache_dir=cache)
    _render_everything(second)
    assert second.render("shortfall", "en", context("shortfall", "en")) == expected
    assert _files(cache) == written  # every template loaded, none compiled and written again


def test_an_edited_template_is_compiled_afresh_from_a_cache_dir(tmp_path: Path) -> None:
    overrides = tmp_path / "overrides"
    (overrides / "en").mkdir(parents=True)
    subject = overrides / "en" / "approved.subject.j2"
    cache = tmp_path / "cache"
    subject.write_text("First: {{ nomination.name }}", encoding="utf-8")
    ctx = context("approved", "en")
    assert Renderer(overrides, cache_dir=cache).render("approved", "en", ctx).subject == (
        "First: 唐山市"
    )
    assert list(cache.glob("__peakpilot_sandboxed_*.cache"))
    assert not list(cache.glob(SHIPPED_CACHE))  # the sandbox's compilations are its own

    subject.write_text("Second: {{ nomination.name }}", encoding="utf-8")
    assert Renderer(overrides, cache_dir=cache).render("approved", "en", ctx).subject == (
        "Second: 唐山市"
    )


def test_a_cache_dir_that_cannot_be_used_only_costs_speed(tmp_path: Path) -> None:
    expected = Renderer().render("shortfall", "en", context("shortfall", "en"))
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder", encoding="utf-8")
    unmade = Renderer(cache_dir=blocked / "cache")  # cannot be made: compiled in memory
    assert unmade.render("shortfall", "en", context("shortfall", "en")) == expected

    cache = tmp_path / "cache"
    late = Renderer(cache_dir=cache)
    cache.rmdir()  # cleaned away before the first compilation: nothing can be stored
    assert late.render("shortfall", "en", context("shortfall", "en")) == expected
    assert not cache.exists()


def test_one_renderer_per_template_and_cache_folder(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert renderer_for(None, cache) is renderer_for(None, tmp_path / "." / "cache")
    assert renderer_for(None, cache) is not renderer_for(None)
    assert renderer_for(tmp_path) is not renderer_for(None)
