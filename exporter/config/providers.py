"""The providers: one model per provider, in its own words, and the registry.

Each provider's account model names its credential and its polling units as
the provider does, and maps them onto the neutral :class:`~exporter.config.model.Unit`
and :class:`~exporter.config.model.Credentials`.  To add a provider, write its
account model (a ``provider`` literal, a ``credentials`` model from
:func:`~exporter.config.secrets.credentials_model`, a list of its units, and a
tunables mixin if it has settings of its own) and add one :class:`ProviderSpec`
to :data:`PROVIDERS`; the file schema, the JSON Schema, ``global:`` and the
error messages pick it up from there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import BeforeValidator, Field, ValidationInfo

from exporter.config.accounts import AccountBase, CamsTunables, MetaTunables
from exporter.config.errors import bad, typename
from exporter.config.model import Labels, Unit
from exporter.config.secrets import CredentialsBase, credentials_model
from exporter.config.types import Section, choice, text_value, value_type
from exporter.config.values import PhoneList, UnitId

__all__ = ["PROVIDERS", "ProviderSpec"]


# --------------------------------------------------------------------------
# Units
# --------------------------------------------------------------------------

class UnitModel(Section):
    """One polling unit in the file."""

    id_key: ClassVar[str]

    def unit(self) -> Unit:
        numbers = getattr(self, "phone_numbers", None) or getattr(self, "business_phones", None) or ()
        return Unit(id=getattr(self, self.id_key), phone_numbers=numbers)


def unit_list(model: type[UnitModel], noun: str) -> Any:
    """A non-empty list of *model* (the noun names one unit in messages)."""
    def check(raw: Any, info: ValidationInfo) -> Any:
        if raw is None:
            bad(f"required (a list of {{{model.id_key}: ...}})")
        if not isinstance(raw, list):
            bad(f"must be a list, got {typename(raw)}")
        if not raw:
            bad(f"must contain at least one {noun}")
        return raw

    return Annotated[list[model], BeforeValidator(check), Field(min_length=1)]


class CamsSpace(UnitModel):
    """A CAMS space (CustSpaceId), optionally with the ISV code of the partner that owns it."""

    id_key: ClassVar[str] = "cust_space_id"
    cust_space_id: UnitId
    isv_code: value_type(str, text_value, {"type": "string"}) = None

    def unit(self) -> Unit:
        return Unit(id=self.cust_space_id, params=Labels({"isv_code": self.isv_code} if self.isv_code else {}))


class NxCloudApp(UnitModel):
    """An NxCloud app (appkey), optionally limited to some of its business numbers."""

    id_key: ClassVar[str] = "appkey"
    appkey: UnitId
    business_phones: PhoneList = Field(None, description="Only these numbers (default: all of the app's).")


class Waba(UnitModel):
    """A WhatsApp Business Account id, optionally limited to some of its numbers."""

    id_key: ClassVar[str] = "waba_id"
    waba_id: UnitId
    phone_numbers: PhoneList = Field(None, description="Only these numbers (default: all of the WABA's).")


# --------------------------------------------------------------------------
# Accounts
# --------------------------------------------------------------------------

class CamsAccount(AccountBase, CamsTunables):
    """An Alibaba Cloud CAMS account: an AccessKey pair and the spaces it polls."""

    units_key: ClassVar[str] = "spaces"
    provider: Literal["alibaba_cams"]
    credentials: credentials_model("CamsCredentials", "access_key_id", "access_key_secret")
    spaces: unit_list(CamsSpace, "space")


class NxCloudAccount(AccountBase):
    """An NxCloud account: an accessKey pair and the apps it polls."""

    units_key: ClassVar[str] = "apps"
    provider: Literal["nxcloud"]
    credentials: credentials_model("NxCloudCredentials", "access_key", "access_secret")
    apps: unit_list(NxCloudApp, "app")


KALEYRA_PODS = {"IN": "https://api.in.kaleyra.io", "SG": "https://api.ap.kaleyra.io",
                "EU": "https://api.eu.kaleyra.io", "NA": "https://api.na.kaleyra.io"}


class KaleyraAccount(AccountBase):
    """A Kaleyra account: an account SID and API key, a pod (or endpoint), and the WABAs it polls."""

    units_key: ClassVar[str] = "wabas"
    provider: Literal["kaleyra"]
    pod: choice(tuple(KALEYRA_PODS), "pod") = Field(None, description="Kaleyra's region; or set endpoint.")
    credentials: credentials_model("KaleyraCredentials", "sid", "api_key")
    wabas: unit_list(Waba, "waba")


class MetaAccount(AccountBase, MetaTunables):
    """A Meta Cloud API account: a system-user access token (and optionally its app id) and the WABAs it polls."""

    units_key: ClassVar[str] = "wabas"
    provider: Literal["meta"]
    credentials: credentials_model("MetaCredentials", "app_id", "access_token", id_optional=True)
    wabas: unit_list(Waba, "waba")


# --------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class ProviderSpec:
    """One provider: its account model and the facts its defaults come from."""

    model: type[AccountBase]
    description: str
    default_endpoint: str | None
    default_qps: float = 10.0
    #: the provider's own settings (a mixin of its model), also accepted under ``global:``
    tunables: type[Section] | None = None
    signature_versions: tuple[str, ...] = ()
    #: named endpoints (Kaleyra pods)
    pods: Mapping[str, str] = field(default_factory=dict)
    #: documented per-action limits (calls per second per credential) inside the
    #: credential's overall qps; ``action_qps`` in the configuration overrides them
    action_qps: Mapping[str, float] = field(default_factory=dict)

    # -- the model's key names, for code that writes configurations (the demo, benchmarks)
    @property
    def credentials_model(self) -> type[CredentialsBase]:
        return self.model.model_fields["credentials"].annotation

    @property
    def id_key(self) -> str:
        return self.credentials_model.id_key

    @property
    def secret_key(self) -> str:
        return self.credentials_model.secret_key

    @property
    def units_key(self) -> str:
        return self.model.units_key

    @property
    def unit_model(self) -> type[UnitModel]:
        return get_args(self.model.model_fields[self.units_key].annotation)[0]

    @property
    def unit_id_key(self) -> str:
        return self.unit_model.id_key

    @property
    def unit_keys(self) -> frozenset[str]:
        return frozenset(self.unit_model.file_keys())


PROVIDERS: dict[str, ProviderSpec] = {
    "alibaba_cams": ProviderSpec(
        CamsAccount, "Alibaba Cloud Chat App Message Service (CAMS)",
        default_endpoint="https://cams.ap-southeast-1.aliyuncs.com", tunables=CamsTunables,
        signature_versions=("v3", "v2"),
        # The per-user QPS of each action's API page (alibaba-cams reference, section 7).
        action_qps={"QueryChatappPhoneNumbers": 10.0, "QueryChatappBindWaba": 10.0,
                    "GetPhoneNumberVerificationStatus": 10.0, "GetWhatsappHealthStatus": 5.0}),
    # NxCloud documents no QPS for its WhatsApp API: stay conservative.
    "nxcloud": ProviderSpec(NxCloudAccount, "NxCloud WhatsApp API (getPhone)",
                            default_endpoint="https://api2.nxcloud.com", default_qps=2.0),
    # No public read limit; one call per WABA plus one per number each poll.
    "kaleyra": ProviderSpec(KaleyraAccount, "Kaleyra WhatsApp API v2", default_endpoint=None, default_qps=5.0,
                            pods=KALEYRA_PODS),
    # Graph budgets these reads per hour (200, or 5,000 once the WABA has a registered number,
    # per app per WABA); the usage headers steer the rest.
    "meta": ProviderSpec(MetaAccount, "Meta WhatsApp Cloud API (Graph API)",
                         default_endpoint="https://graph.facebook.com", default_qps=2.0, tunables=MetaTunables),
}

for _name, _spec in PROVIDERS.items():
    assert _spec.model.provider_name() == _name, (_name, _spec.model)
