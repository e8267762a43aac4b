"""Rendering notices with Jinja2: one subject, one plain-text and one HTML template per
notice kind and locale.

A missing variable is an error naming the template and line (``StrictUndefined``), never
an empty string in an official notice. HTML is autoescaped (decided on the name without
its ``.j2``, since ``select_autoescape`` would look only at the last extension). An
operator's folder (``PEAKPILOT_TEMPLATES_DIR``) overrides shipped templates by name and
is rendered in a sandbox, because its authors are not the code's authors.

Every template of a notice finds its locale's labels (``labels``) and, in text and HTML,
the macros of its format (``m``) as variables, loaded through the same folders.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import jinja2.bccache
from jinja2.sandbox import SandboxedEnvironment

from peakpilot.errors import ConfigError

LOCALES = ("zh-CN", "en")
PARTS = ("subject", "txt", "html")


@dataclass(frozen=True, slots=True)
class RenderedNotice:
    """The three parts of one notice: a one-line subject, plain text and HTML."""

    subject: str
    text: str
    html: str


# A template of a notice, and what every render of it starts from: the environment's and
# the template's globals, then the modules it is given (see Renderer._parts).
_Part = tuple[jinja2.Template, dict[str, Any], dict[str, Any]]


def _autoescape(name: str | None) -> bool:
    return name is not None and name.removesuffix(".j2").endswith((".html", ".htm"))


def template_name(locale: str, kind: str, part: str) -> str:
    """The name a template of a notice has, shipped or overridden: ``LOCALE/KIND.PART.j2``."""
    return f"{locale}/{kind}.{part}.j2"


def _label(code: Any, labels: dict[Any, Any]) -> Any:
    """The filter ``{{ code|label(labels.states) }}``: the code's label, or the code itself
    when it has none (a programme may add states and events the labels do not know).

    A filter rather than ``labels.states.get(code, code)``: Jinja calls a filter directly,
    a method through its generic call protocol, at several times the cost. Only a dict's
    ``get`` is called: a filter runs outside the sandbox's checks on what a call may reach.
    """
    if not isinstance(labels, dict):
        raise TypeError(f"label needs a dict of labels, not {type(labels).__name__}")
    return labels.get(code, code)


class Renderer:
    """Renders notices; build one per process and reuse it (templates compile once).

    Templates compile in memory when first used. ``cache_dir`` keeps the compiled
    templates in that folder (made if missing, for this user only) so that the next
    process loads them instead of compiling them again; nothing is written anywhere
    unless it is given.
    """

    def __init__(
        self, override_dir: str | Path | None = None, *, cache_dir: str | Path | None = None
    ) -> None:
        # The three templates of each (kind, locale) rendered so far, each with the
        # modules it reads (see _parts).
        self._notices: dict[tuple[str, str], tuple[_Part, ...]] = {}
        shipped = jinja2.PackageLoader("peakpilot.notifications", "templates")
        options: dict[str, Any] = {
            "undefined": jinja2.StrictUndefined,
            "autoescape": _autoescape,
            "keep_trailing_newline": True,
            "trim_blocks": True,
            "lstrip_blocks": True,
            # Templates are read once per process: no stat() of every file at every render
            # (an operator's changed template takes effect when the process restarts).
            "auto_reload": False,
            # ... and kept in a plain dict, not an LRU that reorders a deque (O(n)) at
            # every lookup, for each part and each layout or macro file it uses.
            "cache_size": -1,
        }
        if override_dir is None:
            self.env: jinja2.Environment = jinja2.Environment(
                loader=shipped, bytecode_cache=_compiled_templates(cache_dir, "shipped"), **options
            )
        else:
            folder = Path(override_dir)
            if not folder.is_dir():
                raise ConfigError(f"PEAKPILOT_TEMPLATES_DIR {folder} is not a folder")
            loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(folder), shipped])
            self.env = SandboxedEnvironment(
                loader=loader,
                bytecode_cache=_compiled_templates(cache_dir, "sandboxed"),
                **options,
            )
        self.env.filters["label"] = _label
        # numbered lists without Jinja's loop object, whose bookkeeping costs more than
        # the line itself in a shortfall notice's thousands of lines
        self.env.globals["enumerate"] = enumerate

    def check(self, kinds: Iterable[str], locales: Iterable[str] = LOCALES) -> None:
        """Compile every template the programme can need, and every layout or macro file
        they may include: a missing or broken one is refused now, at load, rather than at
        the moment a notice is due."""
        for locale in locales:
            for kind in kinds:
                for part in PARTS:
                    self._template(template_name(locale, kind, part))
        for name in self.env.list_templates(extensions=["j2"]):
            self._template(name)

    def render(self, kind: str, locale: str, context: Mapping[str, Any]) -> RenderedNotice:
        """Render the three parts of a notice for one recipient."""
        parts = self._notices.get((kind, locale))
        if parts is None:
            parts = self._notices[(kind, locale)] = self._parts(kind, locale)
        subject, text, html = (
            self._render(template, {**start, **context, **modules})
            for template, start, modules in parts
        )
        return RenderedNotice(subject=one_line(subject), text=text, html=html)

    def _parts(self, kind: str, locale: str) -> tuple[_Part, ...]:
        """The templates of a notice, each with the modules it reads: ``labels`` (the
        locale's ``_labels.j2``) and, in text and HTML, ``m`` (the locale's macros for the
        format).

        Given as variables rather than imported by each template, because Jinja copies
        its globals (a ``ChainMap``) at every ``{% import %}``: the four imports of an
        ``approved`` notice took about 80 of its 350 microseconds. A template may still
        import them itself.
        """
        labels = self._module(f"{locale}/_labels.j2")
        parts = []
        for part in PARTS:
            modules: dict[str, Any] = {"labels": labels}
            if part != "subject":
                modules["m"] = self._module(f"{locale}/_macros.{part}.j2")
            template = self._template(template_name(locale, kind, part))
            parts.append((template, dict(template.globals), modules))
        return tuple(parts)

    def _module(self, name: str) -> Any:
        """The template ``name`` as a module (its macros and top-level variables)."""
        template = self._template(name)
        try:
            return template.module
        except Exception as error:  # an operator's template may raise anything
            raise ConfigError(f"cannot render template {name}: {error}") from None

    @staticmethod
    def _render(template: jinja2.Template, variables: dict[str, Any]) -> str:
        """``template`` rendered with ``variables``, which already hold its globals.

        What ``Template.render`` does, less its two copies of the variables: it copies
        them into a dict, and its context copies that again together with the globals
        (a ``ChainMap``, slow to iterate) at each of the three renders of every notice.
        A context that shares ``variables`` (``new_context(shared=True)``, which adds no
        globals) costs neither. Errors go through ``handle_exception`` as ``render``'s
        do, so that their tracebacks name the template's lines."""
        try:
            try:
                return "".join(template.root_render_func(template.new_context(variables, True)))
            except Exception:
                template.environment.handle_exception()
        except Exception as error:  # an operator's template may raise anything
            raise ConfigError(
                f"cannot render template {template.name}{_where(error)}: {error}"
            ) from None

    def _template(self, name: str) -> jinja2.Template:
        try:
            return self.env.get_template(name)
        except jinja2.TemplateNotFound:
            raise ConfigError(f"template {name} is missing") from None
        except jinja2.TemplateSyntaxError as error:
            raise ConfigError(
                f"template {error.name or name}:{error.lineno}: {error.message}"
            ) from None
        except UnicodeDecodeError as error:
            raise ConfigError(f"template {name} is not UTF-8 text: {error.reason}") from None


class _CompiledTemplates(jinja2.FileSystemBytecodeCache):
    """Compiled templates kept between processes in a folder the caller chose.

    Compiling the ~100 templates costs a process about 0.3 s; loading them compiled, a
    tenth of that. Jinja stores each under the hash of its name and text and checks its
    own and Python's version on load, so an edited template or an upgrade compiles
    afresh. Only a speed-up: one that cannot be stored is compiled again next time.
    """

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        """Store a compiled template, or nothing when it cannot be written."""
        with contextlib.suppress(OSError):  # e.g. a full disk, or the folder removed
            super().dump_bytecode(bucket)


def _compiled_templates(cache_dir: str | Path | None, flavour: str) -> jinja2.BytecodeCache | None:
    """The cache of one kind of environment (shipped or sandboxed: they compile apart)
    in ``cache_dir``, or None (compile in memory) when none is asked for or the folder
    cannot be made.

    A folder this makes is the user's only (0700): what is loaded from it runs as code.
    """
    if cache_dir is None:
        return None
    folder = Path(cache_dir)
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        return None
    return _CompiledTemplates(str(folder), pattern=f"__peakpilot_{flavour}_%s.cache")


_RENDERERS: dict[tuple[str | None, str | None], Renderer] = {}


def renderer_for(override_dir: str | Path | None, cache_dir: str | Path | None = None) -> Renderer:
    """One renderer per template folder (and cache folder) per process: templates compile
    once."""
    key = (_folder_key(override_dir), _folder_key(cache_dir))
    renderer = _RENDERERS.get(key)
    if renderer is None:
        renderer = _RENDERERS[key] = Renderer(override_dir, cache_dir=cache_dir)
    return renderer


def _folder_key(folder: str | Path | None) -> str | None:
    return None if folder is None else str(Path(folder).resolve())


def one_line(text: str) -> str:
    """A subject on one line: CR, LF and other line breaks become spaces, so a subject can
    never start a new mail header."""
    return " ".join(text.split())


def _where(error: BaseException) -> str:
    """`` (at LOCALE/FILE:LINE)`` of the innermost template frame (maybe a layout)."""
    tb = error.__traceback__
    where = ""
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            path = Path(filename)
            where = f" (at {path.parent.name}/{path.name}:{tb.tb_lineno})"
        tb = tb.tb_next
    return where
