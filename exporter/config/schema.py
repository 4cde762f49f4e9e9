"""The configuration file as a whole: ``global:``, ``accounts:``, ``metrics:`` and ``webhooks:``.

:class:`ConfigFile` is the root model; its JSON Schema is what editors use
(``--config.schema`` prints it).  Accounts are validated one by one, each with
the model of its ``provider``, so every account's problems are reported in the
same run, together with the rules between accounts (unique names, one budget
per shared credential).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, Optional, Union

from pydantic import BeforeValidator, Field, ValidationError, ValidationInfo, WrapValidator, create_model, \
    model_validator
from pydantic_core import PydanticCustomError

from exporter.config.accounts import Tunables, interval_rules
from exporter.config.errors import bad, custom, raise_all, show, suggest, typename
from exporter.config.model import Account, WebhooksConfig
from exporter.config.providers import PROVIDERS
from exporter.config.secrets import secret_section
from exporter.config.types import Duration, Section, between, choice, ctx_of, text_value, value_type
from exporter.exposition import DISABLEABLE, INFO_LABELS, RenderOptions

__all__ = ["ConfigFile", "GlobalSection"]


def _none_is_empty(value: Any) -> Any:
    return {} if value is None else value


# --------------------------------------------------------------------------
# global:
# --------------------------------------------------------------------------

class _GlobalRules(Section):
    @model_validator(mode="after")
    def _rules(self) -> "_GlobalRules":
        errors = []
        if self.poll_interval is not None:
            errors += interval_rules(self.poll_interval, lambda key: (getattr(self, key, None), ""))
        known = {a for spec in PROVIDERS.values() for a in spec.action_qps}
        for action in self.action_qps or {}:
            if action not in known:
                hint = suggest(action, known)
                errors.append(custom(("action_qps", action), "unknown action" + (
                    f' (did you mean "{hint}"?)' if hint else f" (known: {', '.join(sorted(known))})")))
        raise_all(errors)
        return self


GlobalSection = create_model(
    "GlobalSection", __doc__="Defaults for every account; a provider's own settings apply to its accounts only.",
    __base__=(_GlobalRules, Tunables, *dict.fromkeys(s.tunables for s in PROVIDERS.values() if s.tunables)))


# --------------------------------------------------------------------------
# accounts:
# --------------------------------------------------------------------------

AccountFile = Annotated[Union[tuple(spec.model for spec in PROVIDERS.values())], Field(discriminator="provider")]


def _provider(raw: Any, info: ValidationInfo) -> str:
    if not isinstance(raw, dict):
        bad(f"must be a mapping, got {typename(raw)}")
    value = raw.get("provider")
    where = ("provider",)
    if value is None:
        raise_all([custom(where, f"required (one of: {', '.join(PROVIDERS)})")])
    try:
        name = text_value(value, info)
    except PydanticCustomError as e:  # report it at the key
        raise_all([custom(where, e.message())])
    if name not in PROVIDERS:
        hint = suggest(name, PROVIDERS)
        options = ", ".join(f'"{p}"' for p in PROVIDERS)
        raise_all([custom(where, f"unknown provider {show(value)} (allowed: {options})"
                          + (f'; did you mean "{hint}"?' if hint else ""))])
    return name


def _accounts(raw: Any, handler: Any, info: ValidationInfo) -> list[Account]:
    """Each account with its provider's model, then the rules between accounts; all problems at once."""
    if raw is None:
        bad("required (a list of accounts)")
    if not isinstance(raw, list):
        bad(f"must be a list of accounts, got {typename(raw)}")
    if not raw:
        bad("must contain at least one account")
    glob = info.data.get("global_") or GlobalSection()
    ctx = ctx_of(info)
    errors: list[dict] = []
    names: dict[str, int] = {}
    accounts: dict[int, Account] = {}
    for i, item in enumerate(raw):
        try:
            provider = _provider(item, info)
            spec = PROVIDERS[provider]
            model = spec.model.model_validate({**item, "provider": provider}, context=replace(ctx, path=f"accounts[{i}]"))
            if model.name in names:
                errors.append(custom((i, "name"), f'duplicate account name "{model.name}" '
                                     f"(also accounts[{names[model.name]}])"))
            names.setdefault(model.name, i)
            accounts[i] = model.resolve(spec, glob)
        except ValidationError as e:
            errors += [dict(entry, loc=(i, *entry["loc"])) for entry in e.errors(include_url=False)]
        except PydanticCustomError as e:  # about the item itself
            errors.append(custom((i,), e.message()))
    errors += _shared_credentials(accounts)
    raise_all(sorted(errors, key=lambda entry: entry["loc"][0]))
    return list(accounts.values())


def _shared_credentials(accounts: dict[int, Account]) -> list[dict]:
    errors = []
    credentials: dict[tuple, int] = {}
    for i, account in accounts.items():
        # Accounts using one credential (same provider, endpoint host and id) are limited by the
        # provider as one caller: they share one token bucket, so they must declare one budget.
        j = credentials.setdefault(account.credential_key, i)
        other = accounts[j]
        if other.action_qps != account.action_qps:
            errors.append(custom((i, "action_qps"), f"accounts[{j}] ({other.name}) and accounts[{i}] ({account.name}) "
                                 "use the same credential and share its per-action limits, but declare different "
                                 "action_qps; set the same action_qps on both"))
        if other.qps != account.qps:
            errors.append(custom((i, "qps"), f"accounts[{j}] ({other.name}) and accounts[{i}] ({account.name}) use the "
                                 "same credential (same provider, endpoint host and access_key_id) and share one QPS "
                                 f"budget, but declare different qps ({other.qps:g} vs {account.qps:g}); "
                                 "set the same qps on both"))
    return errors


# --------------------------------------------------------------------------
# metrics:
# --------------------------------------------------------------------------

def _list_of(allowed: tuple[str, ...], what: str, plural: str) -> Any:
    item = choice(allowed, what, required=True)

    def check(raw: Any) -> Any:
        if not isinstance(raw, list):
            bad(f"must be a list of {plural}, got {typename(raw)}")
        return raw
    return Optional[Annotated[list[item], BeforeValidator(check)]]


class MetricsSection(Section):
    """Cardinality controls for the whole exporter."""

    state_sets: choice(("all", "active"), "state_sets mode") = Field(
        None, description="all: one series per state (default); active: only the current state's series.")
    disable: _list_of(DISABLEABLE, "metric", "metric names") = Field(None, description="Metric families not exposed.")
    info_labels: _list_of(INFO_LABELS, "info label", "label names") = Field(
        None, description="Labels of whatsapp_phone_number_info (default: all).")

    def options(self) -> RenderOptions:
        info = INFO_LABELS if self.info_labels is None else tuple(x for x in INFO_LABELS if x in self.info_labels)
        return RenderOptions(state_sets=self.state_sets or "all", disabled=frozenset(self.disable or ()),
                             info_labels=info)


# --------------------------------------------------------------------------
# webhooks:
# --------------------------------------------------------------------------

#: the Kaleyra token is the only thing that authenticates Kaleyra's callback
KALEYRA_WEBHOOK_TOKEN_MIN_LENGTH = 16


def _listen_address(raw: Any, info: ValidationInfo) -> str:
    # The rules of exporter.web.parse_listen_address (the configuration does not import the web stack).
    value = text_value(raw, info).strip()
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535 or any(c.isspace() for c in host):
        bad(f'invalid listen address {show(raw)} (expected [host]:port, e.g. ":10068")')
    return value


MetaHook = secret_section("MetaWebhookSecrets", "app_secret", "verify_token",
                          doc="The Meta app's secret (checks signatures) and the verify token of the subscription.")
KaleyraHook = secret_section("KaleyraWebhookSecrets", "token", doc="The token Kaleyra's callback URL carries.")


class NxCloudHook(Section):
    """NxCloud's callbacks carry no secret: an empty mapping turns them on."""


class WebhooksSection(Section):
    """A listener that turns provider events into early polls."""

    listen_address: value_type(str, _listen_address, {"type": "string", "pattern": r":[0-9]+$"}, required=True) = \
        Field(description='[host]:port, e.g. ":10068".')
    debounce: Annotated[Duration, between(0.0, 60.0)] = Field(None, description="Default 2s.")
    meta: Optional[MetaHook] = None
    kaleyra: Optional[KaleyraHook] = None
    nxcloud: Annotated[Optional[NxCloudHook], BeforeValidator(_none_is_empty)] = None

    @model_validator(mode="after")
    def _rules(self) -> "WebhooksSection":
        errors: list[dict] = []
        if self.kaleyra is not None:
            if len(self.kaleyra.value("token")) < KALEYRA_WEBHOOK_TOKEN_MIN_LENGTH:
                key = "token" if self.kaleyra.token is not None else "token_file"
                errors.append(custom(("kaleyra", key), "too short: the token is all that authenticates Kaleyra's "
                                     f"callback, use at least {KALEYRA_WEBHOOK_TOKEN_MIN_LENGTH} random characters"))
        if self.meta is None and self.kaleyra is None and self.nxcloud is None:
            errors.append(custom((), "enable at least one of meta, kaleyra or nxcloud"))
        raise_all(errors)
        return self

    def neutral(self) -> WebhooksConfig:
        meta, kaleyra = self.meta, self.kaleyra
        return WebhooksConfig(
            listen_address=self.listen_address, debounce=2.0 if self.debounce is None else self.debounce,
            meta_app_secret=meta and meta.value("app_secret"), meta_verify_token=meta and meta.value("verify_token"),
            kaleyra_token=kaleyra and kaleyra.value("token"), nxcloud=self.nxcloud is not None)


# --------------------------------------------------------------------------
# The file
# --------------------------------------------------------------------------

class ConfigFile(Section):
    """whatsapp-number-exporter configuration (--config.file)."""

    required_hints = {"accounts": "a list of accounts"}

    global_: Annotated[Optional[GlobalSection], BeforeValidator(_none_is_empty)] = Field(
        default_factory=GlobalSection, alias="global")
    #: validated one by one into neutral :class:`~exporter.config.model.Account` objects
    accounts: Annotated[list[AccountFile], WrapValidator(_accounts)] = Field(
        min_length=1, description="The provider accounts to poll.")
    metrics: Annotated[Optional[MetricsSection], BeforeValidator(_none_is_empty)] = Field(
        default_factory=MetricsSection)
    webhooks: Optional[WebhooksSection] = Field(None, description="The webhook receiver (default: off).")
