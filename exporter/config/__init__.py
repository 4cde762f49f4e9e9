"""The configuration: a YAML file validated by pydantic models into provider-neutral objects.

See ``examples/config.yaml`` for the format and ``config.schema.json`` (printed
by ``--config.schema``) for every key.  Modules, from the bottom up:
:mod:`~exporter.config.errors` (one-line problems, reading a file),
:mod:`~exporter.config.values` (sections, ``${VAR}``, value types), :mod:`~exporter.config.fields`,
:mod:`~exporter.config.secrets`, :mod:`~exporter.config.settings` (the tunables),
:mod:`~exporter.config.providers` (accounts and the registry), :mod:`~exporter.config.schema` (the file, reading it) and
:mod:`~exporter.config.model` (what the rest of the exporter uses).
"""

from exporter.config.errors import ConfigError, Problem
from exporter.config.model import Account, Config, Credentials, Labels, Unit, WebhooksConfig
from exporter.config.providers import PROVIDERS, ProviderSpec
from exporter.config.schema import config_schema, config_schema_json, load_config, parse_config
from exporter.config.settings import RESERVED_LABEL_NAMES, default_poll_jitter
from exporter.config.values import parse_duration

__all__ = [
    "PROVIDERS",
    "RESERVED_LABEL_NAMES",
    "Account",
    "Config",
    "ConfigError",
    "Credentials",
    "Labels",
    "Problem",
    "ProviderSpec",
    "Unit",
    "WebhooksConfig",
    "config_schema",
    "config_schema_json",
    "default_poll_jitter",
    "load_config",
    "parse_config",
    "parse_duration",
]
