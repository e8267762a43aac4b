"""YAML loading that remembers where things are, so errors can name a line."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from peakpilot.errors import ConfigError


def load_yaml(source: str, where: str, what: str) -> tuple[Any, yaml.Node | None]:
    """Parse ``source`` safely; return the document and its node tree (for line numbers).

    A syntax error or a key given twice in one mapping is a :class:`ConfigError` naming
    ``where`` and the line: PyYAML would otherwise keep the last value silently.
    """
    loader = None
    try:
        loader = yaml.SafeLoader(source)
        root = loader.get_single_node()
        if root is not None:
            _refuse_duplicate_keys(root, where)
        document = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"{where}{line}: invalid YAML in {what} file: {problem}") from None
    except yaml.YAMLError as exc:  # e.g. a control character the reader refuses
        raise ConfigError(f"{where}: invalid YAML in {what} file: {exc}") from None
    except (ValueError, TypeError, OverflowError) as exc:  # an impossible date, !!int x
        raise ConfigError(f"{where}: invalid value in {what} file: {exc}") from None
    except AttributeError:  # PyYAML's own slip on a `!!timestamp` it cannot read
        raise ConfigError(f"{where}: invalid value in {what} file: a malformed timestamp") from None
    except RecursionError:
        raise ConfigError(f"{where}: the {what} file is nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()
    return document, root


def _refuse_duplicate_keys(node: yaml.Node, where: str) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    raise ConfigError(
                        f"{where}:{key.start_mark.line + 1}: {key.value!r} is given twice"
                    )
                seen.add(key.value)
            _refuse_duplicate_keys(value, where)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _refuse_duplicate_keys(item, where)


def line_of(root: yaml.Node | None, loc: Sequence[str | int]) -> str:
    """``":N"`` for the line of the deepest node of ``loc`` found in the tree, else ``""``."""
    node, line = root, None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(
                (
                    (k, v)
                    for k, v in node.value
                    if isinstance(k, yaml.ScalarNode) and k.value == str(part)
                ),
                None,
            )
            if match is None:
                break
            line, node = match[0].start_mark.line, match[1]
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            node = node.value[part]
            line = node.start_mark.line
        else:
            break
    if line is None and root is not None:
        line = root.start_mark.line
    return "" if line is None else f":{line + 1}"
