"""Secrets: from an environment variable or a file, never written in the configuration itself.

A secret key ``X`` is given either as ``X: ${ENV_VAR}`` or as ``X_file: path``
(relative to the configuration file's directory).  A credential's id (the
non-secret half) may also be written inline.  Secret files are read as the
configuration is (regular files only, never blocking), capped at
:data:`SECRET_FILE_MAX_BYTES`, and stripped of surrounding whitespace.

Nothing here puts a secret value into a message: not the raw text, not the
expanded value, not a file's contents.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, ClassVar

from pydantic import Field, ValidationInfo, create_model, model_validator

from exporter import yamlfile
from exporter.config import env as envvars
from exporter.config.errors import bad, custom, raise_all, typename
from exporter.config.model import Credentials
from exporter.config.types import Section, ctx_of, value_type

__all__ = ["CredentialsBase", "SECRET_FILE_MAX_BYTES", "SecretPairs", "credentials_model", "secret_section"]

SECRET_FILE_MAX_BYTES = 64 * 1024


def _check(value: str, what: str | None) -> str:
    subject = f"{what} " if what else ""
    if value == "":
        bad(f"{subject}is empty" if what else "must not be empty")
    if any(c.isspace() or not c.isprintable() for c in value):
        bad(f"{subject}contains whitespace or control characters" if what
            else "must not contain whitespace or control characters")
    return value


def _inline(raw: Any, info: ValidationInfo) -> str:
    """A credential id: inline or ``${VAR}``."""
    if not isinstance(raw, str):
        bad(f"must be a string, got {typename(raw)}")
    try:
        return _check(envvars.expand(raw, ctx_of(info).env), None)
    except envvars.EnvError as e:
        bad(str(e))


def _from_env(raw: Any, info: ValidationInfo, key: str) -> str:
    """A secret: exactly ``${VAR}``."""
    inline = f"inline secrets are not allowed; use ${{ENV_VAR}} or {key}_file"
    if not isinstance(raw, str):
        bad(inline)
    var = envvars.sole_reference(raw)
    if var is None:
        if envvars.is_reference_with_default(raw):
            bad(f"a ${{VAR:-default}} fallback is an inline secret and is not allowed; use ${{ENV_VAR}} or {key}_file")
        bad(inline)
    value = ctx_of(info).env.get(var)
    if value is None:
        bad(f"environment variable {var} is not set")
    return _check(value, f"environment variable {var}")


def _from_file(raw: Any, info: ValidationInfo) -> str:
    if not isinstance(raw, str):
        bad(f"must be a file path (string), got {typename(raw)}")
    ctx = ctx_of(info)
    try:
        name = envvars.expand(raw, ctx.env).strip()
    except envvars.EnvError as e:
        bad(str(e))
    if not name:
        bad("must not be empty")
    full = name if os.path.isabs(name) or not ctx.base_dir else os.path.join(ctx.base_dir, name)
    try:
        text = yamlfile.read_text_file(full, SECRET_FILE_MAX_BYTES)
    except yamlfile.FileProblem as e:
        if e.kind == "unreadable":
            bad(f"cannot read {full}: {e.reason}")
        bad(f"{full} is too large (more than {SECRET_FILE_MAX_BYTES} bytes)" if e.kind == "too_large"
            else f"{full} is not valid UTF-8 text")
    return _check(text.strip(), f"file {full}")


_SECRET_SCHEMA = {"type": "string", "pattern": r"^\s*\$\{[A-Za-z_][A-Za-z0-9_]*\}\s*$",
                  "description": "${ENV_VAR} only: inline secrets are refused"}
CredentialId = value_type(str, _inline, {"type": "string"})
SecretFile = value_type(str, _from_file, {"type": "string", "description": "path of a file holding the value"})


def env_secret(key: str) -> Any:
    return value_type(str, lambda raw, info: _from_env(raw, info, key), _SECRET_SCHEMA)


def _fields(key: str, value: Any) -> dict[str, Any]:
    return {key: (value, Field(None, repr=False)), f"{key}_file": (SecretFile, Field(None, repr=False))}


class SecretPairs(Section):
    """A section whose keys are given as ``<key>`` or as ``<key>_file``, never both."""

    #: the keys given either way, and those of them that must be set
    pairs: ClassVar[tuple[str, ...]] = ()
    required: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _not_both(cls, data: Any) -> Any:  # before any file is read
        if isinstance(data, dict):
            raise_all([custom((), f"set only one of {key} and {key}_file") for key in cls.pairs
                       if data.get(key) is not None and data.get(f"{key}_file") is not None])
        return data

    @model_validator(mode="after")
    def _required(self) -> "SecretPairs":
        raise_all([custom((key,), f"required ({'as ${ENV_VAR} or ' if key in self.secrets() else 'or '}{key}_file)")
                   for key in self.required if self.value(key) is None])
        return self

    @classmethod
    def secrets(cls) -> tuple[str, ...]:
        return cls.pairs

    def value(self, key: str) -> str | None:
        """The value of ``key``, or read from ``key_file``."""
        value = getattr(self, key)
        return value if value is not None else getattr(self, f"{key}_file")


def _model(name: str, base: type, fields: dict[str, Any], doc: str, **class_vars: Any) -> Any:
    base = type(f"{name}Base", (base,), {**class_vars, "__module__": __name__})
    return create_model(name, __base__=base, __doc__=doc or None, **fields)


def secret_section(name: str, *keys: str, doc: str = "") -> type[SecretPairs]:
    """A section of required secrets *keys*, each as ``${ENV_VAR}`` or ``<key>_file``."""
    fields = {k: v for key in keys for k, v in _fields(key, env_secret(key)).items()}
    return _model(name, SecretPairs, fields, doc, pairs=keys, required=keys)


class CredentialsBase(SecretPairs):
    """A provider's credential: an id (inline, ``${VAR}`` or a file) and a secret (``${VAR}`` or a file)."""

    id_key: ClassVar[str]
    secret_key: ClassVar[str]

    @classmethod
    def secrets(cls) -> tuple[str, ...]:
        return (cls.secret_key,)

    def neutral(self) -> Credentials:
        secret = self.value(self.secret_key)
        # Without an id (a Meta token alone) accounts with the same secret still share one budget,
        # named by a short digest; the secret itself never leaves here.
        key_id = self.value(self.id_key) or "sha256:" + hashlib.sha256(secret.encode("utf-8")).hexdigest()[:16]
        return Credentials(access_key_id=key_id, access_key_secret=secret)


def credentials_model(name: str, id_key: str, secret_key: str, *, id_optional: bool = False,
                      doc: str = "") -> type[CredentialsBase]:
    """The credentials section of one provider, in its own key names (*id_optional*: a secret alone will do)."""
    fields = {**_fields(id_key, CredentialId), **_fields(secret_key, env_secret(secret_key))}
    return _model(name, CredentialsBase, fields, doc, id_key=id_key, secret_key=secret_key,
                  pairs=(id_key, secret_key), required=(secret_key,) if id_optional else (id_key, secret_key))
