"""How one number, WABA or account renders into the families: text format helpers and the render functions."""

from __future__ import annotations

import math
import platform
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from exporter import __version__, model
from exporter.exposition.families import (
    B_LIMIT,
    B_TIER,
    BUILD_INFO,
    N_BLOCKING,
    N_CAN_SEND,
    N_CODE,
    N_INFO,
    N_LIMIT,
    N_NAME,
    N_NEW_NAME,
    N_QUALITY,
    N_QUALITY_CHANGED,
    N_STATUS,
    N_STATUS_CHANGED,
    N_THROUGHPUT,
    N_TIER,
    N_TIER_CHANGED,
    NUMBER_FAMILIES,
    W_BAN,
    W_BAN_DATE,
    W_ENTITY,
    W_INFO,
    W_RESTRICTION,
    W_RESTRICTION_EXPIRY,
    W_REVIEW,
    W_VIOLATIONS,
    WABA_FAMILIES,
    Family,
)


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def labels(pairs: Iterable[tuple[str, str]]) -> str:
    return ",".join(f'{k}="{escape(v)}"' for k, v in pairs)


def fmt(value: float | bool) -> str:
    if value is True:
        return "1"
    if value is False:
        return "0"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


INFO_LABELS = ("verified_name", "space_id", "waba_id", "phone_number_id", "platform_type", "account_mode")


@dataclass(frozen=True)
class RenderOptions:
    """Cardinality controls (the ``metrics:`` section of the configuration).

    * ``state_sets``: ``active`` (the default) emits only the series of the
      current state (value 1); ``all`` emits every state of every state set
      (0 or 1), as kube-state-metrics and OpenMetrics do, at about five times
      the series.  Queries written ``== 1`` work in both modes.
    * ``disabled``: family names that are not emitted at all.
    * ``info_labels``: the descriptive labels of ``whatsapp_phone_number_info``.
    """

    state_sets: str = "active"
    disabled: frozenset[str] = frozenset()
    info_labels: tuple[str, ...] = INFO_LABELS

    @property
    def active_only(self) -> bool:
        return self.state_sets == "active"

    def enabled(self, family: Family) -> bool:
        return family.name not in self.disabled


DEFAULT_OPTIONS = RenderOptions()
DISABLEABLE = tuple(f.name for f in NUMBER_FAMILIES + WABA_FAMILIES)


_TAILS: dict[tuple[str, ...], dict[str, list[str]]] = {}


def _tails(states: Sequence[str]) -> dict[str, list[str]]:
    """For each current state, the end of every state's line (``STATE"} 0|1``), computed once."""
    key = tuple(states)
    tails = _TAILS.get(key)
    if tails is None:
        tails = _TAILS[key] = {current: [f'{s}"}} {1 if s == current else 0}\n' for s in states] for current in states}
    return tails


def _stateset(name: str, base: str, label: str, states: Sequence[str], current: str, active_only: bool) -> str:
    prefix = f'{name}{{{base},{label}="'
    if active_only:
        return f'{prefix}{current}"}} 1\n'
    # prefix + prefix.join(tails) puts the prefix in front of every line: one C-level join.
    return prefix + prefix.join(_tails(states)[current])


def render_number(
    base: str, suffix: str, tracked: model.TrackedNumber, opts: RenderOptions = DEFAULT_OPTIONS
) -> tuple[str, ...]:
    """All series of one number, one chunk per entry of NUMBER_FAMILIES ("" when disabled).

    ``base`` holds the identity labels (provider, account, phone_number);
    ``suffix`` the account's static labels, each with a leading comma.
    """
    n = tracked.number
    ch = tracked.changes
    b = base + suffix
    a = opts.active_only
    off = opts.disabled
    out = []
    if N_INFO.name not in off:
        info = labels((k, getattr(n, k)) for k in opts.info_labels)
        out.append(f"{N_INFO.name}{{{b},{info}}} 1\n" if info else f"{N_INFO.name}{{{b}}} 1\n")
    else:
        out.append("")
    # A tier that is the business portfolio's is exported once per business
    # (B_TIER, B_LIMIT), not repeated on every number of the portfolio.
    per_number = not n.shares_portfolio_limit
    limit = n.messaging_limit if per_number else None
    out += [
        "" if N_STATUS.name in off else _stateset(N_STATUS.name, b, "status", model.STATUS.states, n.status, a),
        ""
        if N_QUALITY.name in off
        else _stateset(N_QUALITY.name, b, "quality_rating", model.QUALITY_RATING.states, n.quality_rating, a),
        ""
        if N_TIER.name in off or not per_number
        else _stateset(
            N_TIER.name, f'{b},limit_scope="{n.limit_scope}"', "tier", model.TIER.states, n.messaging_limit_tier, a
        ),
        "" if limit is None or N_LIMIT.name in off else f"{N_LIMIT.name}{{{b}}} {fmt(limit)}\n",
        ""
        if N_CODE.name in off
        else _stateset(
            N_CODE.name,
            b,
            "code_verification_status",
            model.CODE_VERIFICATION_STATUS.states,
            n.code_verification_status,
            a,
        ),
        ""
        if N_NAME.name in off
        else _stateset(N_NAME.name, b, "name_status", model.NAME_STATUS.states, n.name_status, a),
        ""
        if N_NEW_NAME.name in off
        else _stateset(N_NEW_NAME.name, b, "new_name_status", model.NAME_STATUS.states, n.new_name_status, a),
        "" if N_STATUS_CHANGED.name in off else f"{N_STATUS_CHANGED.name}{{{b}}} {fmt(ch.status)}\n",
        "" if N_QUALITY_CHANGED.name in off else f"{N_QUALITY_CHANGED.name}{{{b}}} {fmt(ch.quality_rating)}\n",
        ""
        if N_TIER_CHANGED.name in off or not per_number
        else f"{N_TIER_CHANGED.name}{{{b}}} {fmt(ch.messaging_limit_tier)}\n",
        # Only numbers whose health_status/throughput was read get these: a state
        # set stuck on UNKNOWN for every NxCloud number (or a CAMS number not yet
        # swept) would be noise, and a fake UNKNOWN.
        ""
        if N_CAN_SEND.name in off or n.can_send_message == model.UNKNOWN
        else _stateset(N_CAN_SEND.name, b, "can_send_message", model.CAN_SEND_MESSAGE.states, n.can_send_message, a),
        ""
        if N_THROUGHPUT.name in off or n.throughput_level == model.UNKNOWN
        else _stateset(N_THROUGHPUT.name, b, "throughput_level", model.THROUGHPUT_LEVEL.states, n.throughput_level, a),
        ""
        if N_BLOCKING.name in off or not n.blocking_errors
        else "".join(f"{N_BLOCKING.name}{{{b},{labels(_error_pairs(e))}}} 1\n" for e in n.blocking_errors),
    ]
    return tuple(out)


def _error_pairs(e: model.BlockingError) -> tuple[tuple[str, str], ...]:
    return (
        ("entity_type", e.entity_type),
        ("entity_id", e.entity_id),
        ("error_code", e.error_code),
        ("error_description", e.error_description[:200]),
    )


def render_entities(
    base: str, suffix: str, entities: Iterable[model.EntityHealth], opts: RenderOptions = DEFAULT_OPTIONS
) -> str:
    """The WABA/BUSINESS/APP entities of an account's numbers, each once (sorted)."""
    if W_ENTITY.name in opts.disabled:
        return ""
    return "".join(
        _stateset(
            W_ENTITY.name,
            f'{base},entity_type="{escape(e.entity_type)}",entity_id="{escape(e.entity_id)}"{suffix}',
            "can_send_message",
            model.CAN_SEND_MESSAGE.states,
            e.can_send_message,
            opts.active_only,
        )
        for e in sorted(entities, key=lambda e: (e.entity_type, e.entity_id))
    )


def render_waba(base: str, suffix: str, waba: model.Waba, opts: RenderOptions = DEFAULT_OPTIONS) -> tuple[str, ...]:
    b = f'{base},waba_id="{escape(waba.waba_id)}"{suffix}'
    info = labels((("space_id", waba.space_id), ("name", waba.name), ("currency", waba.currency)))
    return (
        "" if W_INFO.name in opts.disabled else f"{W_INFO.name}{{{b},{info}}} 1\n",
        ""
        if W_REVIEW.name in opts.disabled
        else _stateset(
            W_REVIEW.name,
            b,
            "account_review_status",
            model.ACCOUNT_REVIEW_STATUS.states,
            waba.account_review_status,
            opts.active_only,
        ),
    )


def render_waba_facts(
    base: str, suffix: str, facts: model.WabaFacts, opts: RenderOptions = DEFAULT_OPTIONS
) -> tuple[str, str, str, str, str]:
    """Restrictions, ban state and violations of an account's WABAs (sorted), one chunk per family."""
    off = opts.disabled

    def waba(waba_id: str) -> str:
        return f'{base},waba_id="{escape(waba_id)}"{suffix}'

    restrictions = sorted(facts.restrictions.values(), key=lambda r: (r.waba_id, r.restriction_type))
    bans = sorted(facts.bans.values(), key=lambda b: b.waba_id)
    return (
        ""
        if W_RESTRICTION.name in off
        else "".join(
            f'{W_RESTRICTION.name}{{{waba(r.waba_id)},restriction_type="{escape(r.restriction_type)}"}} 1\n'
            for r in restrictions
        ),
        ""
        if W_RESTRICTION_EXPIRY.name in off
        else "".join(
            f'{W_RESTRICTION_EXPIRY.name}{{{waba(r.waba_id)},restriction_type="{escape(r.restriction_type)}"}} '
            f"{fmt(r.expiration)}\n"
            for r in restrictions
            if math.isfinite(r.expiration)
        ),
        ""
        if W_BAN.name in off
        else "".join(
            _stateset(
                W_BAN.name, waba(ban.waba_id), "ban_state", model.BAN_STATE.states, ban.ban_state, opts.active_only
            )
            for ban in bans
        ),
        ""
        if W_BAN_DATE.name in off
        else "".join(
            f"{W_BAN_DATE.name}{{{waba(ban.waba_id)}}} {fmt(ban.ban_date)}\n"
            for ban in bans
            if ban.ban_date is not None
        ),
        ""
        if W_VIOLATIONS.name in off
        else "".join(
            f'{W_VIOLATIONS.name}{{{waba(waba_id)},violation_type="{escape(kind)}"}} {count}\n'
            for (waba_id, kind), count in sorted(facts.violations.items())
        ),
    )


def render_businesses(
    base: str, suffix: str, businesses: Iterable[model.BusinessLimit], opts: RenderOptions = DEFAULT_OPTIONS
) -> tuple[str, str]:
    """The messaging limit of each business portfolio (sorted), one chunk per family."""
    ordered = sorted(businesses, key=lambda b: b.business_id)

    def b(limit: model.BusinessLimit) -> str:
        return f'{base},business_id="{escape(limit.business_id)}"{suffix}'

    return (
        ""
        if B_TIER.name in opts.disabled
        else "".join(
            _stateset(B_TIER.name, b(x), "tier", model.TIER.states, x.messaging_limit_tier, opts.active_only)
            for x in ordered
        ),
        ""
        if B_LIMIT.name in opts.disabled
        else "".join(
            f"{B_LIMIT.name}{{{b(x)}}} {fmt(x.messaging_limit)}\n" for x in ordered if x.messaging_limit is not None
        ),
    )


def build_info() -> str:
    pairs = (("version", __version__), ("python_version", platform.python_version()))
    return BUILD_INFO.header() + f"{BUILD_INFO.name}{{{labels(pairs)}}} 1\n"


def account_base(provider: str, account: str) -> str:
    return labels((("provider", provider), ("account", account)))


def static_suffix(extra: Mapping[str, str]) -> str:
    return "".join(f',{k}="{escape(v)}"' for k, v in sorted(extra.items()))
