"""One-line problems, ``<key path>: <what is wrong>``: from pydantic's errors and from reading a file.

A file with several problems raises one :class:`ConfigError` holding them all.
Messages quote a value only as written in the file (before ``${VAR}``
expansion), and never a credential.  Shared with the web configuration.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple, NoReturn, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

from exporter import yamlfile

#: the error type of this package's messages (pydantic's own become "invalid value (...)")
ERROR_TYPE = "config"
CONFIG_FILE_MAX_BYTES = 4 * 1024 * 1024

T = TypeVar("T")


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

    def __reduce__(self) -> tuple[type[ConfigError], tuple[str | Problem, ...]]:
        return type(self), (*self.problems[0], *self.problems[1:])

    def __str__(self) -> str:
        return "; ".join(self.lines())

    def lines(self) -> list[str]:
        return [str(p) for p in self.problems]


# -- wording -----------------------------------------------------------------

_TYPE_NAMES = (
    (type(None), "null"),
    (bool, "boolean"),
    (int, "integer"),
    (float, "number"),
    (str, "string"),
    (list, "list"),
    (dict, "mapping"),
)


def typename(value: Any) -> str:
    return next((name for kind, name in _TYPE_NAMES if isinstance(value, kind)), type(value).__name__)


def show(value: Any, limit: int = 60) -> str:
    """Quote a raw (pre-expansion, non-secret) value for a message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
    hint = suggest(word, options)
    return f' (did you mean "{hint}"?)' if hint else otherwise


# -- pydantic's errors --------------------------------------------------------


def bad(message: str) -> NoReturn:
    """Fail the value being validated with *message* (final and one line)."""
    raise PydanticCustomError(ERROR_TYPE, message)


#: where an error is: keys and indexes from the model being validated
Loc = tuple[int | str, ...]


def custom(loc: Loc, message: str) -> ErrorDetails:
    """An error entry at *loc* (relative to the model being validated)."""
    return {"type": ERROR_TYPE, "loc": loc, "msg": message, "input": None}


def raise_all(errors: Sequence[ErrorDetails]) -> None:
    """Raise error entries (ours or ``ValidationError.errors()``) together, without their inputs (secrets)."""
    if errors:
        raise ValidationError.from_exception_data(
            "config",
            [
                InitErrorDetails(
                    type=PydanticCustomError(ERROR_TYPE, e["msg"]) if e["type"] == ERROR_TYPE else e["type"],
                    loc=tuple(e["loc"]),
                    input=None,
                    ctx=e.get("ctx") or {},
                )
                for e in errors
            ],
            hide_input=True,
        )


def fail(loc: Loc, message: str) -> NoReturn:
    """Raise one error entry at *loc* (relative to the model being validated)."""
    raise_all([custom(loc, message)])
    raise AssertionError("raise_all raised")  # for the type checker: raise_all raises when given errors


def each(
    items: Iterable[tuple[Any, Any]], check: Callable[[Any, Any], T], at: Callable[[Any], Loc] = lambda key: (key,)
) -> list[T]:
    """``check(key, value)`` for every item, every failure reported at once at ``at(key)``."""
    out: list[T] = []
    errors: list[ErrorDetails] = []
    for key, value in items:
        try:
            out.append(check(key, value))
        except PydanticCustomError as e:
            errors.append(custom(at(key), e.message()))
    raise_all(errors)
    return out


def _path(loc: Loc, root: str) -> str:
    """``a.b[0]`` for plain keys and indexes, ``a['odd key']`` for others; *root* for the top."""
    path = ""
    for key in loc:
        if isinstance(key, int) and not isinstance(key, bool):
            path = f"{path}[{key}]"
        elif isinstance(key, str) and re.fullmatch(r"[A-Za-z0-9_@+-]{1,64}", key):
            path = f"{path}.{key}" if path else key
        else:
            path = f"{path}[{show(key)}]"
    return path or root


# -- a document ----------------------------------------------------------------


def read_file(path: str, what: str, error: type[ConfigError] = ConfigError) -> str:
    """The text of the regular file *path*, at most 4 MiB (*what* names it in messages)."""
    try:
        return yamlfile.read_text_file(path, CONFIG_FILE_MAX_BYTES)
    except yamlfile.FileProblem as e:
        problem = f"cannot read {what}: {e.reason}" if e.kind == "unreadable" else f"{what} is {e.reason}"
    raise error(path, problem)


def load_yaml(text: str, root: str, error: type[ConfigError] = ConfigError) -> Any:
    try:
        return yamlfile.load_yaml(text, root)
    except yamlfile.YAMLProblem as e:
        problem = e
    raise error(problem.where, problem.message)


def validate(
    model: type[BaseModel], doc: Any, root: str, context: Any = None, error: type[ConfigError] = ConfigError
) -> Any:
    """*doc* validated by *model*, or *error* with one problem per error entry."""
    try:
        return model.model_validate(doc, context=context)
    except ValidationError as e:
        problems = [
            (_path(x["loc"], root), x["msg"] if x["type"] == ERROR_TYPE else f"invalid value ({x['msg']})")
            for x in e.errors(include_url=False)
        ]
    # raised outside the except block: pydantic's error (and the values in it) stays behind
    raise error(*problems[0], *problems[1:])
