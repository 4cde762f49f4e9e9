"""One-line configuration errors, ``<key path>: <what is wrong>``, and how pydantic's errors become them.

A file with several problems raises one :class:`ConfigError` holding them all.
Messages quote a value only as written in the file (before ``${VAR}``
expansion), and never a credential.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple, NoReturn

from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

#: the error type of this package's messages (pydantic's own become "invalid value (...)")
ERROR_TYPE = "config"


class Problem(NamedTuple):
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(Exception):
    """One or more :class:`Problem`; ``path`` and ``message`` are the first one's.

    ``str()`` joins every problem with "; " (one log line); :meth:`lines` gives one line each.
    """

    def __init__(self, path: str, message: str = "", *more: tuple[str, str]) -> None:
        self.problems = tuple(Problem(*(" ".join(str(t).split()) for t in p)) for p in ((path, message), *more))
        super().__init__(*self.problems)
        self.path, self.message = self.problems[0]

    @classmethod
    def of(cls, problems: Sequence[tuple[str, str]]) -> "ConfigError":
        return cls(*problems[0], *problems[1:])

    def __reduce__(self):
        return (type(self).of, (self.problems,))

    def __str__(self) -> str:
        return "; ".join(self.lines())

    def lines(self) -> list[str]:
        return [str(p) for p in self.problems]


# -- wording -----------------------------------------------------------------

_TYPE_NAMES = ((type(None), "null"), (bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"),
               (list, "list"), (dict, "mapping"))


def typename(value: Any) -> str:
    return next((name for kind, name in _TYPE_NAMES if isinstance(value, kind)), type(value).__name__)


def show(value: Any, limit: int = 60) -> str:
    """Quote a raw (pre-expansion, non-secret) value for a message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def join(path: str, key: Any) -> str:
    """``path.key`` for plain keys, ``path[0]`` for indexes, ``path['odd key']`` for others."""
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
    prefixed = [o for o in options if o.startswith(word) or word.startswith(o)] if len(word) >= 3 else []
    return prefixed[0] if len(prefixed) == 1 else None


def did_you_mean(word: str, options: Iterable[str], otherwise: str = "") -> str:
    """`` (did you mean "x"?)`` for the closest option, else *otherwise*."""
    hint = suggest(word, options)
    return f' (did you mean "{hint}"?)' if hint else otherwise


# -- pydantic's errors --------------------------------------------------------

def bad(message: str) -> NoReturn:
    """Fail the value being validated with *message* (final and one line)."""
    raise PydanticCustomError(ERROR_TYPE, message)


def custom(loc: tuple, message: str) -> dict:
    """An error entry at *loc* (relative to the model being validated)."""
    return {"type": ERROR_TYPE, "loc": loc, "msg": message, "input": None}


def raise_all(errors: Sequence[dict]) -> None:
    """Raise error entries (ours or ``ValidationError.errors()``) together, without their inputs (secrets)."""
    if errors:
        raise ValidationError.from_exception_data("config", [InitErrorDetails(
            type=PydanticCustomError(ERROR_TYPE, e["msg"]) if e["type"] == ERROR_TYPE else e["type"],
            loc=tuple(e["loc"]), input=None, ctx=e.get("ctx") or {}) for e in errors], hide_input=True)


def each(items: Iterable[tuple[Any, Any]], check: Callable[[Any, Any], Any],
         at: Callable[[Any], tuple] = lambda key: (key,)) -> list:
    """``check(key, value)`` for every item, every failure reported at once at ``at(key)``."""
    out, errors = [], []
    for key, value in items:
        try:
            out.append(check(key, value))
        except PydanticCustomError as e:
            errors.append(custom(at(key), e.message()))
    raise_all(errors)
    return out


def problems_from(err: ValidationError, root: str) -> list[Problem]:
    """One :class:`Problem` per entry of *err*; *root* names the document for entries at its top."""
    out = []
    for entry in err.errors(include_url=False):
        path = ""
        for part in entry["loc"]:
            path = join(path, part)
        out.append(Problem(path or root, entry["msg"] if entry["type"] == ERROR_TYPE
                           else f"invalid value ({entry['msg']})"))
    return out
