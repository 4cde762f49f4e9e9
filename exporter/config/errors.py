"""One-line configuration errors, and how pydantic's errors become them.

Every problem is one line ``<key path>: <what is wrong>``.  A configuration
with several problems raises one :class:`ConfigError` that holds them all;
``--check-config`` prints one line each.  Messages quote a value only as it is
written in the file (before ``${VAR}`` expansion) and never a credential.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple, NoReturn

from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

__all__ = ["ConfigError", "Problem", "bad", "fmt_seconds", "join", "problems_from", "raise_all", "show",
           "suggest", "typename"]

#: the error type of every message written by this package (pydantic's own are translated)
ERROR_TYPE = "config"


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


class Problem(NamedTuple):
    """One problem: the key path and what is wrong, each one line."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(Exception):
    """An invalid configuration: one or more :class:`Problem`.

    ``path`` and ``message`` are those of the first problem; ``str()`` joins
    every problem's line with "; " (one line, for a log record), and
    :meth:`lines` gives one line per problem (for ``--check-config``).
    """

    def __init__(self, path: str, message: str = "", *more: tuple[str, str]) -> None:
        self.problems = tuple(Problem(_one_line(p), _one_line(m)) for p, m in ((path, message), *more))
        super().__init__(*self.problems)
        self.path, self.message = self.problems[0]

    @classmethod
    def of(cls, problems: Sequence[tuple[str, str]]) -> "ConfigError":
        return cls(*problems[0], *problems[1:])

    def __reduce__(self):
        return (type(self).of, (self.problems,))

    def __str__(self) -> str:
        return "; ".join(map(str, self.problems))

    def lines(self) -> list[str]:
        return [str(p) for p in self.problems]


# -- wording -----------------------------------------------------------------

def typename(value: Any) -> str:
    if value is None:
        return "null"
    for kind, name in ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"),
                       (list, "list"), (dict, "mapping")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def show(value: Any, limit: int = 60) -> str:
    """Quote a raw (pre-expansion, non-secret) value for a message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def join(path: str, key: Any) -> str:
    """``path.key`` for plain keys; others (spaces, dots, colons, ...) as ``path['key']``, indexes as ``path[0]``."""
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{path}[{key}]"
    if isinstance(key, str) and re.fullmatch(r"[A-Za-z0-9_@+-]{1,64}", key):
        return f"{path}.{key}" if path else key
    return f"{path}[{show(key)}]"


def fmt_seconds(seconds: float) -> str:
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def suggest(word: str, options: Iterable[str]) -> str | None:
    """The closest option to a misspelt *word*, or None."""
    options = sorted(options)
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if close:
        return close[0]
    if len(word) >= 3:
        prefixed = [o for o in options if o.startswith(word) or word.startswith(o)]
        if len(prefixed) == 1:
            return prefixed[0]
    return None


# -- pydantic's errors --------------------------------------------------------

def bad(message: str) -> NoReturn:
    """Fail the value being validated with *message* (a final, one-line message)."""
    raise PydanticCustomError(ERROR_TYPE, message)


def custom(loc: tuple, message: str) -> dict:
    """A pydantic error entry at *loc* (relative to the model being validated) with *message*."""
    return {"type": ERROR_TYPE, "loc": loc, "msg": message, "input": None}


def raise_all(errors: Sequence[dict], title: str = "config") -> None:
    """Raise *errors* (pydantic error entries, e.g. from ``ValidationError.errors()``) together."""
    if not errors:
        return
    # The inputs are dropped: they may be secrets, and no message of this package shows them.
    details = [InitErrorDetails(type=PydanticCustomError(ERROR_TYPE, e["msg"]) if e["type"] == ERROR_TYPE
                                else e["type"], loc=tuple(e["loc"]), input=None, ctx=e.get("ctx") or {})
               for e in errors]
    raise ValidationError.from_exception_data(title, details, hide_input=True)


def problems_from(err: ValidationError, root: str, prefix: tuple = ()) -> list[Problem]:
    """One :class:`Problem` per entry of *err*; *root* names the document for entries at its top."""
    out = []
    for entry in err.errors(include_url=False):
        path = ""
        for part in (*prefix, *entry["loc"]):
            path = join(path, part)
        message = entry["msg"] if entry["type"] == ERROR_TYPE else f"invalid value ({entry['msg']})"
        out.append(Problem(path or root, message))
    return out
