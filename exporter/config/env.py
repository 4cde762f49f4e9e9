"""``${VAR}``, ``${VAR:-default}`` and ``$$`` in configuration strings.

``${VAR}`` is the environment variable (an error when it is not set);
``${VAR:-default}`` the variable or, when it is unset or empty, the default;
``$$`` a literal ``$``.  ``$NAME`` without braces is an error (a likely typo);
any other ``$`` is kept.  Messages name the variable, never its value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from exporter.config.errors import bad, show

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_DOLLAR_RE = re.compile(r"\$(\$|\{[^}]*\}?|.?)", re.DOTALL)
_REF_RE = re.compile(rf"({_NAME})(?::-(.*))?", re.DOTALL)
_SOLE_RE = re.compile(rf"\s*\$\{{({_NAME})\}}\s*")
_SOLE_DEFAULT_RE = re.compile(rf"\s*\$\{{{_NAME}:-.*\}}\s*", re.DOTALL)


def expand(raw: str, env: Mapping[str, str]) -> str:
    """*raw* with every reference replaced; fails the value being validated when one cannot be."""
    def one(m: re.Match) -> str:
        token = m.group(1)
        if token == "$":
            return "$"
        if not token.startswith("{"):
            if token.isalpha() or token == "_":
                bad("use ${VAR} to reference an environment variable (write $$ for a literal $)")
            return "$" + token
        if not token.endswith("}"):
            bad("unterminated ${ (write $$ for a literal $)")
        ref = _REF_RE.fullmatch(token[1:-1])
        if not ref:
            bad(f"invalid environment reference {show('$' + token)}")
        name, default = ref.groups()
        value = env.get(name)
        if value is None or (default is not None and value == ""):
            if default is None:
                bad(f"environment variable {name} is not set")
            return default
        return value

    return _DOLLAR_RE.sub(one, raw) if "$" in raw else raw


def sole_reference(raw: str) -> str | None:
    """The variable name when *raw* is exactly ``${VAR}`` (spaces around allowed), else None."""
    m = _SOLE_RE.fullmatch(raw)
    return m.group(1) if m else None


def is_reference_with_default(raw: str) -> bool:
    return bool(_SOLE_DEFAULT_RE.fullmatch(raw))
