"""The configuration: a YAML file validated by pydantic models into provider-neutral objects.

See ``examples/config.yaml`` for the format and ``config.schema.json`` (printed
by ``--config.schema``) for every key.  Modules:

* :mod:`~exporter.config.model`: what the rest of the exporter uses (:class:`Config`,
  :class:`Account`, :class:`Unit`, :class:`Credentials`, :class:`WebhooksConfig`);
* :mod:`~exporter.config.providers`: one file model per provider and the registry;
* :mod:`~exporter.config.accounts`: the settings shared with ``global:`` and the rules between them;
* :mod:`~exporter.config.schema`: the file as a whole;
* :mod:`~exporter.config.types`, :mod:`~exporter.config.secrets`, :mod:`~exporter.config.env`:
  values, secrets, ``${VAR}`` expansion;
* :mod:`~exporter.config.errors`: one-line problems; :mod:`~exporter.config.load`: entry points.
"""

from exporter.config.accounts import RESERVED_LABEL_NAMES, default_poll_jitter
from exporter.config.errors import ConfigError, Problem
from exporter.config.load import config_schema, config_schema_json, load_config, parse_config
from exporter.config.model import Account, Config, Credentials, Labels, Unit, WebhooksConfig
from exporter.config.providers import PROVIDERS, ProviderSpec
from exporter.config.types import parse_duration

__all__ = [
    "Account", "Config", "ConfigError", "Credentials", "Labels", "PROVIDERS", "Problem", "ProviderSpec",
    "RESERVED_LABEL_NAMES", "Unit", "WebhooksConfig", "config_schema", "config_schema_json", "default_poll_jitter",
    "load_config", "parse_config", "parse_duration",
]
