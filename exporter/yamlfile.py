"""Reading small YAML files safely: the one loader of the configuration, the web
configuration and the emulators' scenario files.

Only the standard library and PyYAML, so that the emulators can use it without
importing anything else of the exporter.

* :func:`read_text_file` reads regular files only.  The file is opened with
  ``O_NONBLOCK`` and checked with ``fstat`` before a byte is read, so a FIFO, a
  device such as ``/dev/zero``, a directory or a socket is refused at once
  instead of blocking or filling memory.  The size is capped and the text must
  be UTF-8 (a byte-order mark is allowed).
* :func:`load_yaml` is PyYAML's safe loader that also refuses duplicate keys
  and documents whose aliases would expand past :data:`MAX_NODES` nodes (the
  "billion laughs"), and whose messages never quote the document: a line of it
  could hold a secret.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from typing import TYPE_CHECKING, Any

import yaml

__all__ = ["MAX_NODES", "FileProblem", "YAMLProblem", "load_yaml", "read_text_file"]

#: nodes a document may expand to once every alias is followed
MAX_NODES = 1_000_000

_KINDS = (
    (stat.S_ISDIR, os.strerror(errno.EISDIR)),
    (stat.S_ISFIFO, "not a regular file (a named pipe)"),
    (stat.S_ISCHR, "not a regular file (a character device)"),
    (stat.S_ISBLK, "not a regular file (a block device)"),
    (stat.S_ISSOCK, "not a regular file (a socket)"),
)


class FileProblem(Exception):
    """A file that cannot be used: ``kind`` is ``unreadable``, ``too_large`` or ``not_utf8``.

    ``reason`` is one line that never quotes the file's contents.
    """

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(kind, reason)
        self.kind = kind
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


def _kind_reason(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    return next((reason for test, reason in _KINDS if test(mode)), "not a regular file")


def read_text_file(path: str, max_bytes: int) -> str:
    """The UTF-8 text of the regular file *path*, at most *max_bytes* long; raises :class:`FileProblem`."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        reason = e.strerror or type(e).__name__
        if e.errno == errno.ENXIO:  # a socket cannot be opened: say what it is
            with contextlib.suppress(OSError):
                reason = _kind_reason(os.stat(path).st_mode) or reason
        raise FileProblem("unreadable", reason) from None
    try:
        info = os.fstat(fd)
        kind = _kind_reason(info.st_mode)
        if kind:
            raise FileProblem("unreadable", kind)
        if info.st_size > max_bytes:
            raise FileProblem("too_large", f"too large (more than {max_bytes} bytes)")
        chunks, total = [], 0
        while total <= max_bytes:  # the size can change while reading, or be 0 in /proc
            try:
                chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
            except OSError as e:
                raise FileProblem("unreadable", e.strerror or type(e).__name__) from None
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > max_bytes:
            raise FileProblem("too_large", f"too large (more than {max_bytes} bytes)")
    finally:
        os.close(fd)
    data = b"".join(chunks)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise FileProblem("not_utf8", f"not valid UTF-8 (invalid byte at offset {e.start})") from None


class YAMLProblem(Exception):
    """A document that is not acceptable YAML; ``where`` is ``name`` or ``name:line:column``."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(where, message)
        self.where = where
        self.message = message

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def _show_key(key: Any) -> str:
    if isinstance(key, str):
        text = repr(key)
        return text if len(text) <= 60 else text[:57] + "..."
    return type(key).__name__


if TYPE_CHECKING:  # the loader the mixin goes into: SafeLoader or its libyaml twin, same interface
    _SafeLoaderBase = yaml.SafeLoader
else:
    _SafeLoaderBase = object


class _Checks(_SafeLoaderBase):
    """Refuse duplicate keys, and aliases that expand too far (mixed into a PyYAML safe loader)."""

    def get_single_node(self) -> yaml.Node | None:
        node = super().get_single_node()
        if node is not None:
            _check_expansion(node)
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _value in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:  # unhashable: SafeLoader reports it
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {_show_key(key)}", key_node.start_mark
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


class _Loader(_Checks, yaml.SafeLoader):
    """The pure-Python loader: slower, and the one whose messages (line and column) the errors quote."""


#: libyaml's parser when PyYAML has it (ten times faster on a long list of numbers)
_FastLoader = type("_FastLoader", (_Checks, getattr(yaml, "CSafeLoader", yaml.SafeLoader)), {})


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a node graph that is recursive or would expand past MAX_NODES once aliases are followed."""
    sizes: dict[int, int] = {}
    within: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key not in sizes:
            if key in within:
                raise yaml.composer.ComposerError(
                    None, None, "an alias refers to a node that contains it", node.start_mark
                )
            within.add(key)
            children = (
                node.value
                if isinstance(node, yaml.SequenceNode)
                else [n for pair in node.value for n in pair]
                if isinstance(node, yaml.MappingNode)
                else ()
            )
            sizes[key] = 1 + sum(map(size, children))
            within.discard(key)
            if sizes[key] > MAX_NODES:
                raise yaml.composer.ComposerError(
                    None, None, f"the aliases would expand the document past {MAX_NODES} nodes", node.start_mark
                )
        return sizes[key]

    size(root)


def load_yaml(text: str, name: str) -> Any:
    """Parse one YAML document; raises :class:`YAMLProblem` naming *name* (and the line and column)."""
    try:
        return yaml.load(text, Loader=_FastLoader)  # a safe loader
    except Exception:  # parsed again below, for the same message with or without libyaml
        pass
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as e:
        # Not str(e): that quotes the offending line, which could hold a secret.
        mark = e.problem_mark or e.context_mark
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark is not None else name
        problem = YAMLProblem(where, f"YAML syntax error: {e.problem or e.context or 'invalid YAML'}")
    except yaml.YAMLError:
        problem = YAMLProblem(name, "YAML syntax error")
    except RecursionError:
        problem = YAMLProblem(name, "YAML syntax error: document is nested too deeply")
    except Exception as e:  # e.g. ValueError from an impossible timestamp
        problem = YAMLProblem(name, f"YAML error: {type(e).__name__}")
    raise problem  # outside the except blocks: PyYAML's error, which holds the document, stays behind
