"""Reading, validating and describing the configuration file."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from exporter import yamlfile
from exporter.config.errors import ConfigError, problems_from, typename
from exporter.config.model import Config
from exporter.config.schema import ConfigFile
from exporter.config.types import Ctx

__all__ = ["CONFIG_FILE_MAX_BYTES", "config_schema", "load_config", "parse_config"]

CONFIG_FILE_MAX_BYTES = 4 * 1024 * 1024
#: where the committed schema is published, for the ``$id``
SCHEMA_ID = "https://github.com/whatsapp-number-exporter/whatsapp-number-exporter/blob/main/config.schema.json"


def read_file(path: str, what: str, max_bytes: int, error: type[ConfigError] = ConfigError) -> str:
    """The text of the configuration file *path* (*what* names it in messages)."""
    try:
        return yamlfile.read_text_file(path, max_bytes)
    except yamlfile.FileProblem as e:
        if e.kind == "unreadable":
            raise error(path, f"cannot read {what}: {e.reason}") from None
        raise error(path, f"{what} is {e.reason}") from None


def load_yaml(text: str, root: str, error: type[ConfigError] = ConfigError) -> Any:
    try:
        return yamlfile.load_yaml(text, root)
    except yamlfile.YAMLProblem as e:
        problem = e
    raise error(problem.where, problem.message)


def load_config(path: str, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate the configuration file at *path*; raises :class:`ConfigError` listing every problem.

    Relative ``*_file`` paths inside it are resolved against its directory.
    """
    path = os.fspath(path)
    return parse_config(read_file(path, "config file", CONFIG_FILE_MAX_BYTES), source=path, env=env)


def parse_config(text: str | bytes, source: str | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Validate configuration *text*; *source* names it in messages and is the base of relative paths."""
    root = source or "<config>"
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise ConfigError(root, f"config is not valid UTF-8 (invalid byte at offset {e.start})") from None
    doc = load_yaml(text, root)
    if doc is None:
        raise ConfigError(root, 'config is empty; expected a mapping with an "accounts" list')
    if not isinstance(doc, dict):
        raise ConfigError(root, f'top level must be a mapping with an "accounts" list, got {typename(doc)}')
    ctx = Ctx(env=os.environ if env is None else env, base_dir=os.path.dirname(source) if source else "")
    try:
        parsed = ConfigFile.model_validate(doc, context=ctx)
    except ValidationError as e:
        problems = problems_from(e, root)
    else:
        problems = []
    if problems:  # raised here, not in the except block: pydantic's error (and the values in it) stays behind
        raise ConfigError.of(problems)
    return Config(accounts=tuple(parsed.accounts), source=source, metrics=parsed.metrics.options(),
                  webhooks=parsed.webhooks.neutral() if parsed.webhooks else None)


def config_schema() -> dict:
    """The JSON Schema of the configuration file, generated from the models."""
    schema = ConfigFile.model_json_schema(by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def config_schema_json() -> str:
    return json.dumps(config_schema(), indent=2, sort_keys=False) + "\n"
