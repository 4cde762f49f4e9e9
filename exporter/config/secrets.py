"""Secrets: ``key: ${ENV_VAR}`` or ``key_file: path`` (relative to the configuration's directory), never inline.

A credential's id (its non-secret half) may also be written inline.  Secret
files are read as the configuration is (regular files only, never blocking),
at most 64 KiB, stripped of surrounding whitespace.  No message holds a secret:
not the raw text, not the expanded value, not a file's contents.
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Annotated, Any, ClassVar

from pydantic import Field, ValidationInfo, create_model, model_validator

from exporter import yamlfile
from exporter.config.errors import bad, custom, raise_all, typename
from exporter.config.model import Credentials
from exporter.config.values import Parsed, Section, expand, value_type

SECRET_FILE_MAX_BYTES = 64 * 1024
_SOLE_REF = r"\s*\$\{[A-Za-z_][A-Za-z0-9_]*\}\s*"


def _check(text: str, what: str | None) -> str:
    if text == "":
        bad(f"{what} is empty" if what else "must not be empty")
    if any(c.isspace() or not c.isprintable() for c in text):
        bad(
            f"{what} contains whitespace or control characters"
            if what
            else "must not contain whitespace or control characters"
        )
    return text


def _credential_id(raw: Any, info: ValidationInfo) -> str:
    """Inline or ``${VAR}``."""
    return _check(expand(raw, info), None) if isinstance(raw, str) else bad(f"must be a string, got {typename(raw)}")


CredentialId = Annotated[str | None, Parsed(_credential_id, {"type": "string"})]


def _secret_file(raw: Any, info: ValidationInfo) -> str:
    if not isinstance(raw, str):
        bad(f"must be a file path (string), got {typename(raw)}")
    full = os.path.join((info.context or {}).get("base_dir", ""), expand(raw, info).strip() or bad("must not be empty"))
    try:
        return _check(yamlfile.read_text_file(full, SECRET_FILE_MAX_BYTES).strip(), f"file {full}")
    except yamlfile.FileProblem as e:
        bad(
            f"cannot read {full}: {e.reason}"
            if e.kind == "unreadable"
            else f"{full} is too large (more than {SECRET_FILE_MAX_BYTES} bytes)"
            if e.kind == "too_large"
            else f"{full} is not valid UTF-8 text"
        )


SecretFile = Annotated[
    str | None, Parsed(_secret_file, {"type": "string", "description": "path of a file holding the value"})
]


def env_secret(key: str) -> Any:
    """Exactly ``${VAR}``."""

    def parse(raw: Any, info: ValidationInfo) -> str:
        if not isinstance(raw, str) or not re.fullmatch(_SOLE_REF, raw):
            fallback = isinstance(raw, str) and re.fullmatch(r"\s*\$\{[A-Za-z_][A-Za-z0-9_]*:-.*\}\s*", raw, re.DOTALL)
            bad(
                (
                    "a ${VAR:-default} fallback is an inline secret and is not allowed"
                    if fallback
                    else "inline secrets are not allowed"
                )
                + f"; use ${{ENV_VAR}} or {key}_file"
            )
        var = raw.strip()[2:-1]
        text = (info.context or {}).get("env", os.environ).get(var)
        return (
            bad(f"environment variable {var} is not set")
            if text is None
            else _check(text, f"environment variable {var}")
        )

    return value_type(
        str,
        parse,
        {"type": "string", "pattern": f"^{_SOLE_REF}$", "description": "${ENV_VAR} only: inline secrets are refused"},
    )


class SecretPairs(Section):
    """Keys given as ``<key>`` or as ``<key>_file``, never both: ids (inline allowed) and secrets (``${VAR}``)."""

    ids: ClassVar[tuple[str, ...]] = ()
    secrets: ClassVar[tuple[str, ...]] = ()
    required: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _not_both(cls, data: Any) -> Any:  # before any file is read
        if isinstance(data, dict):
            raise_all(
                [
                    custom((), f"set only one of {key} and {key}_file")
                    for key in (*cls.ids, *cls.secrets)
                    if data.get(key) is not None and data.get(f"{key}_file") is not None
                ]
            )
        return data

    @model_validator(mode="after")
    def _required(self) -> SecretPairs:
        raise_all(
            [
                custom((key,), f"required ({'as ${ENV_VAR} or ' if key in self.secrets else 'or '}{key}_file)")
                for key in self.required
                if self.value(key) is None
            ]
        )
        return self

    def value(self, key: str) -> str | None:
        """The value of ``key``, or read from ``key_file``."""
        inline: str | None = getattr(self, key)
        from_file: str | None = getattr(self, f"{key}_file")
        return inline if inline is not None else from_file

    def given_as(self, key: str) -> str:
        """Where ``key`` was given: ``key`` itself or ``key_file``."""
        return key if getattr(self, key) is not None else f"{key}_file"

    def neutral(self) -> Credentials:
        """The first id and the first secret."""
        secret = self.value(self.secrets[0])
        assert secret is not None, "the first secret is required (checked by _required)"
        # Without an id (a Meta token alone) accounts with the same secret still share one budget,
        # named by a short digest; the secret itself never leaves here.
        key_id = self.value(self.ids[0]) or "sha256:" + hashlib.sha256(secret.encode("utf-8")).hexdigest()[:16]
        return Credentials(access_key_id=key_id, access_key_secret=secret)


def secret_pairs(
    name: str, doc: str, *, ids: tuple[str, ...] = (), secrets: tuple[str, ...] = (), optional: tuple[str, ...] = ()
) -> type[SecretPairs]:
    """A section of *ids* and *secrets*, each as ``<key>`` or ``<key>_file``, required unless *optional*."""
    fields: dict[str, Any] = {
        "ids": (ClassVar, ids),
        "secrets": (ClassVar, secrets),
        "required": (ClassVar, tuple(k for k in (*ids, *secrets) if k not in optional)),
    }
    for key in (*ids, *secrets):
        fields[key] = (CredentialId if key in ids else env_secret(key), Field(None, repr=False))
        fields[f"{key}_file"] = (SecretFile, Field(None, repr=False))
    return create_model(name, __base__=SecretPairs, __doc__=doc, __module__=__name__, **fields)
