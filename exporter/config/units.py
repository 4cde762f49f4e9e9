"""The polling units and credentials of every provider, as written in the file (see :mod:`.providers`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import AfterValidator, BeforeValidator, Field, create_model

from exporter.config.errors import bad
from exporter.config.fields import PhoneList, SenderList, UnitId, listed
from exporter.config.model import Labels, Unit
from exporter.config.secrets import SecretPairs, secret_pairs
from exporter.config.values import Section, text_value, value_type

# -- Units -------------------------------------------------------------------


class UnitModel(Section):
    """One polling unit in the file: its id (the key ``id_key``), maybe the only numbers to poll, maybe params."""

    id_key: ClassVar[str]

    def unit(self) -> Unit:
        numbers = (
            getattr(self, "phone_numbers", None)
            or getattr(self, "business_phones", None)
            or getattr(self, "senders", None)
            or ()
        )
        isv_code = getattr(self, "isv_code", None)
        return Unit(
            id=getattr(self, self.id_key),
            phone_numbers=numbers,
            params=Labels({"isv_code": isv_code} if isv_code else {}),
        )


def unit_list(name: str, doc: str, noun: str, id_key: str, **extra: Any) -> Any:
    """A non-empty list of units (*noun* names one in messages): model *name*, its id *id_key* and *extra* keys."""
    fields: dict[str, Any] = {"id_key": (ClassVar, id_key), id_key: (UnitId, ...), **extra}
    model = create_model(name, __base__=UnitModel, __doc__=doc, __module__=__name__, **fields)

    check = BeforeValidator(lambda raw: listed(raw, noun, f"a list of {{{id_key}: ...}}"))
    return Annotated[list[model], check, Field(min_length=1)]


ONLY = "Only these numbers (default: all of the {}'s)."


def _required_senders(senders: tuple[str, ...] | None) -> tuple[str, ...]:
    return (
        senders if senders is not None else bad("required (a list of the sender numbers to watch, with country code)")
    )


if TYPE_CHECKING:  # the models are made at run time; statically, what they all are
    SPACES = list[UnitModel]
    APPS = list[UnitModel]
    WABAS = list[UnitModel]
    CamsCredentials = SecretPairs
    NxCloudCredentials = SecretPairs
    KaleyraCredentials = SecretPairs
    MetaCredentials = SecretPairs
    TWILIO_ACCOUNTS = list[UnitModel]
    SENDER_GROUPS = list[UnitModel]
    TwilioCredentials = SecretPairs
    InfobipCredentials = SecretPairs
else:
    SPACES = unit_list(
        "CamsSpace",
        "A CAMS space (CustSpaceId), optionally with the ISV code of the partner that owns it.",
        "space",
        "cust_space_id",
        isv_code=(value_type(str, text_value, {"type": "string"}), None),
    )
    APPS = unit_list(
        "NxCloudApp",
        "An NxCloud app (appkey), optionally limited to some of its business numbers.",
        "app",
        "appkey",
        business_phones=(PhoneList, Field(None, description=ONLY.format("app"))),
    )
    WABAS = unit_list(
        "Waba",
        "A WhatsApp Business Account id, optionally limited to some of its numbers.",
        "waba",
        "waba_id",
        phone_numbers=(PhoneList, Field(None, description=ONLY.format("WABA"))),
    )
    CamsCredentials = secret_pairs(
        "CamsCredentials", "A RAM user's AccessKey pair.", ids=("access_key_id",), secrets=("access_key_secret",)
    )
    NxCloudCredentials = secret_pairs(
        "NxCloudCredentials", "An NxCloud accessKey and its secret.", ids=("access_key",), secrets=("access_secret",)
    )
    KaleyraCredentials = secret_pairs(
        "KaleyraCredentials", "The account SID and an API key.", ids=("sid",), secrets=("api_key",)
    )
    MetaCredentials = secret_pairs(
        "MetaCredentials",
        "A system user's access token, and optionally the app's id.",
        ids=("app_id",),
        secrets=("access_token",),
        optional=("app_id",),
    )
    TWILIO_ACCOUNTS = unit_list(
        "TwilioAccountUnit",
        "The Twilio account the credential belongs to (its Account SID, the space_id label), "
        "optionally limited to some of its WhatsApp senders.",
        "Twilio account",
        "account_sid",
        senders=(
            SenderList,
            Field(
                None,
                description="Only these senders: SIDs or phone numbers (default: all of the account's WhatsApp "
                "senders, listed page by page).",
            ),
        ),
    )
    SENDER_GROUPS = unit_list(
        "InfobipSenderGroup",
        "A group of the account's WhatsApp senders (its name is the space_id label): Infobip has no endpoint "
        "that lists them, so they are configured.",
        "sender group",
        "group",
        senders=(
            Annotated[PhoneList, AfterValidator(_required_senders)],
            Field(..., description="The sender numbers (asked for in batches of at most 100)."),
        ),
    )
    TwilioCredentials = secret_pairs(
        "TwilioCredentials",
        "HTTP Basic: an API key SID (SK...) and its secret, or the Account SID (AC...) and its Auth Token.",
        ids=("sid",),
        secrets=("secret",),
    )
    InfobipCredentials = secret_pairs(
        "InfobipCredentials",
        "An API key (sent as Authorization: App <key>), and optionally a name for it.",
        ids=("key_name",),
        secrets=("api_key",),
        optional=("key_name",),
    )
