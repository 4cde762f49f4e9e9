"""The configuration file as a whole (``global:``, ``accounts:``, ``metrics:``, ``webhooks:``), and reading it.

:class:`ConfigFile` is the root model, and its JSON Schema the one editors use.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import BeforeValidator, Field, ValidationError, ValidationInfo, WrapValidator, model_validator
from pydantic_core import ErrorDetails, PydanticCustomError

from exporter.config.errors import (
    ConfigError,
    bad,
    custom,
    fail,
    load_yaml,
    raise_all,
    read_file,
    show,
    typename,
    validate,
)
from exporter.config.fields import listed
from exporter.config.model import Account, Config, WebhooksConfig
from exporter.config.providers import PROVIDERS, GlobalSection
from exporter.config.secrets import SecretPairs, secret_pairs
from exporter.config.values import Duration, Parsed, Section, between, choice, choose, text_value, whole_number
from exporter.exposition import DISABLEABLE, INFO_LABELS, RenderOptions

#: where the committed schema is published, for the ``$id``
SCHEMA_ID = "https://github.com/whatsapp-number-exporter/whatsapp-number-exporter/blob/main/config.schema.json"
NULL_IS_EMPTY = BeforeValidator(lambda value: {} if value is None else value)


# -- accounts: ---------------------------------------------------------------


def _provider(item: Any, info: ValidationInfo) -> str:
    if not isinstance(item, dict):
        bad(f"must be a mapping, got {typename(item)}")
    try:
        if item.get("provider") is None:
            bad(f"required (one of: {', '.join(PROVIDERS)})")
        return choose(tuple(PROVIDERS), "provider")(item["provider"], info)
    except PydanticCustomError as e:  # reported at the key
        fail(("provider",), e.message())


def _accounts(raw: Any, handler: Any, info: ValidationInfo) -> list[Account]:
    """Each account with its provider's model, then the rules between accounts (all problems at once)."""
    listed(raw, "account", "a list of accounts", " of accounts")
    glob = info.data.get("global_") or GlobalSection()
    errors: list[ErrorDetails] = []
    names: dict[str, int] = {}  # name -> first index
    accounts: dict[int, Account] = {}  # index -> account
    for i, item in enumerate(raw):
        try:
            provider = _provider(item, info)
            spec = PROVIDERS[provider]
            model = spec.model.model_validate({**item, "provider": provider}, context=info.context)
            if names.setdefault(model.name, i) != i:
                errors.append(
                    custom((i, "name"), f'duplicate account name "{model.name}" (also accounts[{names[model.name]}])')
                )
            accounts[i] = model.resolve(spec, glob, f"accounts[{i}]")
        except ValidationError as e:
            for entry in e.errors(include_url=False):
                entry["loc"] = (i, *entry["loc"])
                errors.append(entry)
        except PydanticCustomError as e:  # about the item itself
            errors.append(custom((i,), e.message()))
    # Accounts using one credential (same provider, endpoint host and id) are limited by the provider
    # as one caller: they share one token bucket, so they must declare one budget.
    first: dict[tuple[str, str, str], int] = {}
    for i, account in accounts.items():
        j = first.setdefault(account.credential_key, i)
        other = accounts[j]
        for key, shared, values in (
            ("action_qps", "its per-action limits", ""),
            ("qps", "one QPS budget", f" ({other.qps:g} vs {account.qps:g})"),
        ):
            if getattr(other, key) != getattr(account, key):
                errors.append(
                    custom(
                        (i, key),
                        f"accounts[{j}] ({other.name}) and accounts[{i}] ({account.name}) use "
                        "the same credential (same provider, endpoint host and access_key_id) and share "
                        f"{shared}, but declare different {key}{values}; set the same {key} on both",
                    )
                )
    raise_all(sorted(errors, key=lambda entry: entry["loc"][0]))
    return list(accounts.values())


# -- metrics: ----------------------------------------------------------------


def _list_of(plural: str) -> BeforeValidator:
    def check(raw: Any) -> Any:
        return raw if isinstance(raw, list) else bad(f"must be a list of {plural}, got {typename(raw)}")

    return BeforeValidator(check)


class MetricsSection(Section):
    """Cardinality controls for the whole exporter."""

    state_sets: Annotated[str | None, choice(("all", "active"), "state_sets mode")] = Field(
        None,
        description="active: only the current state's series (default); all: one series per state, 0 or 1, "
        "about five times the series.",
    )
    disable: (
        Annotated[list[Annotated[str, choice(DISABLEABLE, "metric", required=True)]], _list_of("metric names")] | None
    ) = Field(None, description="Metric families not exposed.")
    info_labels: (
        Annotated[list[Annotated[str, choice(INFO_LABELS, "info label", required=True)]], _list_of("label names")]
        | None
    ) = Field(None, description="Labels of whatsapp_phone_number_info (default: all).")

    def options(self) -> RenderOptions:
        info = INFO_LABELS if self.info_labels is None else tuple(x for x in INFO_LABELS if x in self.info_labels)
        return RenderOptions(
            state_sets=self.state_sets or "active", disabled=frozenset(self.disable or ()), info_labels=info
        )


# -- webhooks: ---------------------------------------------------------------

#: the Kaleyra token is the only thing that authenticates Kaleyra's callback
KALEYRA_WEBHOOK_TOKEN_MIN_LENGTH = 16


def _listen_address(raw: Any, info: ValidationInfo) -> str:
    # The rules of exporter.web.parse_listen_address (the configuration does not import the web stack).
    value = text_value(raw, info).strip()
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535 or any(c.isspace() for c in host):
        bad(f'invalid listen address {show(raw)} (expected [host]:port, e.g. ":10068")')
    return value


class NxCloudHook(Section):
    """NxCloud's callbacks carry no secret: an empty mapping turns them on."""


if TYPE_CHECKING:  # made at run time; statically, what they are
    MetaWebhookSecrets = SecretPairs
    KaleyraWebhookSecrets = SecretPairs
else:
    MetaWebhookSecrets = secret_pairs(
        "MetaWebhookSecrets",
        "The Meta app's secret (checks signatures) and the verify token of the subscription.",
        secrets=("app_secret", "verify_token"),
    )
    KaleyraWebhookSecrets = secret_pairs(
        "KaleyraWebhookSecrets", "The token Kaleyra's callback URL carries.", secrets=("token",)
    )


class WebhooksSection(Section):
    """A listener that turns provider events into early polls."""

    listen_address: Annotated[
        str, Parsed(_listen_address, {"type": "string", "pattern": r":[0-9]+$"}, required=True)
    ] = Field(description='[host]:port, e.g. ":10068".')
    debounce: Annotated[Duration, between(0.0, 60.0)] = Field(None, description="Default 2s.")
    replay_window: Annotated[Duration, between(1.0, 86400.0)] = Field(
        None,
        description="A signed event received again within this time (same provider, body and signature) is a "
        "replay: answered 200, counted, never acted on. Default 10m.",
    )
    min_refresh_interval: Annotated[Duration, between(0.0, 3600.0)] = Field(
        None,
        description="At most one webhook-triggered refresh of an account per this interval; events inside it "
        "join one refresh at its end. Default 30s.",
    )
    meta_refreshes_per_hour: Annotated[float | None, whole_number(1, 5000, "1")] = Field(
        None,
        description="Webhook-triggered refreshes of one Meta account per hour, within Graph's documented "
        "200 calls/hour per app per WABA; more are deferred until the hour allows. Default 20.",
    )
    meta: MetaWebhookSecrets | None = None
    kaleyra: KaleyraWebhookSecrets | None = None
    nxcloud: Annotated[NxCloudHook | None, NULL_IS_EMPTY] = None

    @model_validator(mode="after")
    def _rules(self) -> WebhooksSection:
        errors: list[ErrorDetails] = []
        if self.kaleyra is not None and len(self.kaleyra.value("token") or "") < KALEYRA_WEBHOOK_TOKEN_MIN_LENGTH:
            errors.append(
                custom(
                    ("kaleyra", self.kaleyra.given_as("token")),
                    "too short: the token is all that authenticates Kaleyra's callback, use at least "
                    f"{KALEYRA_WEBHOOK_TOKEN_MIN_LENGTH} random characters",
                )
            )
        if self.meta is None and self.kaleyra is None and self.nxcloud is None:
            errors.append(custom((), "enable at least one of meta, kaleyra or nxcloud"))
        raise_all(errors)
        return self

    def neutral(self) -> WebhooksConfig:
        meta, kaleyra = self.meta, self.kaleyra
        return WebhooksConfig(
            listen_address=self.listen_address,
            debounce=2.0 if self.debounce is None else self.debounce,
            replay_window=600.0 if self.replay_window is None else self.replay_window,
            min_refresh_interval=30.0 if self.min_refresh_interval is None else self.min_refresh_interval,
            meta_refreshes_per_hour=20 if self.meta_refreshes_per_hour is None else int(self.meta_refreshes_per_hour),
            meta_app_secret=meta.value("app_secret") if meta is not None else None,
            meta_verify_token=meta.value("verify_token") if meta is not None else None,
            kaleyra_token=kaleyra.value("token") if kaleyra is not None else None,
            nxcloud=self.nxcloud is not None,
        )


# -- The file ----------------------------------------------------------------


if TYPE_CHECKING:
    AccountItem = Account  # what _accounts makes of each item
else:  # the schema of an item: every provider's account model, told apart by "provider"
    AccountItem = Annotated[
        Union[tuple(spec.model for spec in PROVIDERS.values())],  # noqa: UP007 - the registry's models, at run time
        Field(discriminator="provider"),
    ]


class ConfigFile(Section):
    """whatsapp-number-exporter configuration (--config.file)."""

    global_: Annotated[GlobalSection | None, NULL_IS_EMPTY] = Field(default_factory=GlobalSection, alias="global")
    accounts: Annotated[
        list[AccountItem],
        WrapValidator(_accounts),
    ] = Field(min_length=1, description="The provider accounts to poll.")
    metrics: Annotated[MetricsSection | None, NULL_IS_EMPTY] = Field(default_factory=MetricsSection)
    webhooks: WebhooksSection | None = Field(None, description="The webhook receiver (default: off).")


# -- Reading it -------------------------------------------------------------


def load_config(path: str, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate the configuration file at *path*; relative ``*_file`` paths are against its directory."""
    path = os.fspath(path)
    return parse_config(read_file(path, "config file"), source=path, env=env)


def parse_config(text: str | bytes, source: str | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Configuration *text* validated, or :class:`ConfigError` listing every problem.

    *source* names it in messages and is the base of relative paths.
    """
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
    parsed = validate(
        ConfigFile,
        doc,
        root,
        {"env": os.environ if env is None else env, "base_dir": os.path.dirname(source) if source else ""},
    )
    return Config(
        accounts=tuple(parsed.accounts),
        source=source,
        metrics=parsed.metrics.options(),
        webhooks=parsed.webhooks.neutral() if parsed.webhooks else None,
    )


def config_schema() -> dict[str, Any]:
    """The JSON Schema of the configuration file, generated from the models."""
    schema = ConfigFile.model_json_schema(by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def config_schema_json() -> str:
    return json.dumps(config_schema(), indent=2) + "\n"
