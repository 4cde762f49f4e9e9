"""What the providers' pure parsers share: reading fields of decoded JSON and mapping wire values to the model.

* :class:`WireMap`: a provider's own spelling of one field (Twilio's and
  Infobip's ``HIGH``/``MEDIUM``/``LOW``, ``LIMIT_1K``…) → the model's states,
  through a closed table; absent or empty is UNKNOWN, an unseen value OTHER.
* :func:`meta_states`: the vocabulary fields of a record in Meta's phone-number
  vocabulary (Meta, Kaleyra, NxCloud, and CAMS with its own field names).
* :func:`list_field`, :func:`first_per_number`, :func:`text`: the shapes every
  list answer has.

Nothing here raises on odd values, except :func:`list_field` on a list that is not one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypedDict, cast

from exporter import model
from exporter.providers.errors import ProviderError

#: the longest provider message kept in an error (the rest is cut)
MAX_MESSAGE = 300

#: Meta's quality rating as Twilio and Infobip spell it
QUALITY_LEVELS = {"HIGH": "GREEN", "MEDIUM": "YELLOW", "LOW": "RED", "UNKNOWN": model.UNKNOWN}

#: the fields of the model a Meta-style phone-number record carries, each with its vocabulary
META_VOCABULARIES: Mapping[str, model.Vocabulary] = {
    "status": model.STATUS,
    "quality_rating": model.QUALITY_RATING,
    "code_verification_status": model.CODE_VERIFICATION_STATUS,
    "name_status": model.NAME_STATUS,
    "new_name_status": model.NAME_STATUS,
}


def json_object(body: Any, http_status: int) -> dict[str, Any]:
    """The body of a successful answer, which must be a JSON object (else a ``parse`` error)."""
    if not isinstance(body, dict):
        raise ProviderError("parse", "response is not a JSON object", http_status=http_status)
    return body


def answered_error(
    reason: str, message: str, http_status: int, code: str = "", retry_after: float | None = None
) -> ProviderError:
    """An error the provider answered: its message cut to :data:`MAX_MESSAGE` (``HTTP <status>`` when it gave none)."""
    return ProviderError(
        reason,
        message[:MAX_MESSAGE] or f"HTTP {http_status}",
        code=code,
        http_status=http_status,
        retry_after=retry_after,
    )


def text(item: Any, key: str) -> str:
    """``item[key]`` stripped when it is a string, else ""."""
    value = item.get(key) if isinstance(item, dict) else None
    return value.strip() if isinstance(value, str) else ""


def list_field(body: Mapping[str, Any], key: str) -> list[Any]:
    """``body[key]``, a list: empty when absent, a ``parse`` error when it is something else."""
    items = body.get(key)
    if items is None:
        return []
    if not isinstance(items, list):
        raise ProviderError("parse", f"{key[:40]} is not a list")
    return items


def first_per_number(numbers: Iterable[model.PhoneNumber | None]) -> list[model.PhoneNumber]:
    """The numbers read, one per phone number (the first listed wins; None, an unreadable record, is left out)."""
    kept: dict[str, model.PhoneNumber] = {}
    for number in numbers:
        if number is not None:
            kept.setdefault(number.phone_number, number)
    return list(kept.values())


class MetaStates(TypedDict, total=False):
    """Keyword arguments of :class:`~exporter.model.PhoneNumber`: the fields of :data:`META_VOCABULARIES`."""

    status: str
    quality_rating: str
    code_verification_status: str
    name_status: str
    new_name_status: str


def meta_states(item: Mapping[str, Any], provider: str, keys: Mapping[str, str] | None = None) -> MetaStates:
    """The vocabulary fields of a number record, normalized: model field → state.

    ``keys`` maps each model field wanted to its key in ``item`` (default: every
    field of :data:`META_VOCABULARIES` under its own name, as Meta spells them).
    """
    wanted = keys if keys is not None else {name: name for name in META_VOCABULARIES}
    return cast(
        MetaStates, {name: META_VOCABULARIES[name].normalize(item.get(key), provider) for name, key in wanted.items()}
    )


def _upper(value: str) -> str:
    return value.upper()


class WireMap:
    """One field of a provider's own vocabulary → the model's states, through a closed table.

    ``token`` turns the stripped wire value into the table's key (default: upper case).
    """

    def __init__(
        self, provider: str, field: str, table: Mapping[str, str], token: Callable[[str], str] = _upper
    ) -> None:
        self.provider = provider
        self.field = field
        self.table = table
        self.token = token

    def __call__(self, raw: Any) -> str:
        if not isinstance(raw, str) or not raw.strip():
            return model.UNKNOWN
        state = self.table.get(self.token(raw.strip()))
        return model.note_other(self.field, raw, self.provider) if state is None else state
