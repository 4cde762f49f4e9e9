"""``${VAR}``, ``${VAR:-default}`` and ``$$`` in configuration strings.

``${VAR}`` is replaced by the environment variable (an error when it is not
set), ``${VAR:-default}`` by the variable or, when it is unset or empty, by the
default; ``$$`` is a literal ``$``.  ``$NAME`` without braces is an error (a
likely typo); any other ``$`` is kept.  Messages name the variable, never its
value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["EnvError", "ENV_NAME", "expand", "sole_reference"]

ENV_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_REF_RE = re.compile(r"(" + ENV_NAME + r")(?::-(.*))?", re.DOTALL)
_SOLE_RE = re.compile(r"\$\{(" + ENV_NAME + r")\}")
_SOLE_DEFAULT_RE = re.compile(r"\$\{" + ENV_NAME + r":-.*\}", re.DOTALL)


class EnvError(ValueError):
    """A reference that cannot be expanded; ``str()`` is the one-line reason."""


def _quote(text: str, limit: int = 60) -> str:
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def expand(raw: str, env: Mapping[str, str]) -> str:
    """*raw* with every reference replaced; raises :class:`EnvError`."""
    if "$" not in raw:
        return raw
    out: list[str] = []
    i, n = 0, len(raw)
    while i < n:
        j = raw.find("$", i)
        if j < 0:
            out.append(raw[i:])
            break
        out.append(raw[i:j])
        nxt = raw[j + 1] if j + 1 < n else ""
        if nxt == "$":
            out.append("$")
            i = j + 2
        elif nxt == "{":
            end = raw.find("}", j + 2)
            if end < 0:
                raise EnvError("unterminated ${ (write $$ for a literal $)")
            inner = raw[j + 2: end]
            m = _REF_RE.fullmatch(inner)
            if not m:
                raise EnvError(f"invalid environment reference {_quote('${' + inner + '}')}")
            name, default = m.group(1), m.group(2)
            value = env.get(name)
            if value is None or (default is not None and value == ""):
                if default is None:
                    raise EnvError(f"environment variable {name} is not set")
                value = default
            out.append(value)
            i = end + 1
        elif nxt.isalpha() or nxt == "_":
            raise EnvError("use ${VAR} to reference an environment variable (write $$ for a literal $)")
        else:
            out.append("$")
            i = j + 1
    return "".join(out)


def sole_reference(raw: str) -> str | None:
    """The variable name when *raw* is exactly ``${VAR}`` (spaces around allowed), else None."""
    m = _SOLE_RE.fullmatch(raw.strip())
    return m.group(1) if m else None


def is_reference_with_default(raw: str) -> bool:
    return bool(_SOLE_DEFAULT_RE.fullmatch(raw.strip()))
