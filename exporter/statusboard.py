"""The status board served at ``/``: every number and account at a glance, for people without Grafana.

The page is rendered on the server from the store's account snapshots, the
same immutable snapshots the metrics are rendered from, so it shows exactly
what a scrape sees. It never calls a provider. It is plain HTML with inline
CSS, with no script, font, image or any other external asset, so it works
offline and behind the exporter's own TLS and basic auth.

* **Numbers**: provider, account, phone number, verified name, and status,
  quality rating and tier as colored cells (red: RED, FLAGGED, BANNED,
  RESTRICTED, DISCONNECTED, DELETED; amber: YELLOW, RATE_LIMITED, PENDING,
  OFFLINE, PAUSED, UNVERIFIED and the low tiers TIER_50/TIER_250; green:
  GREEN, CONNECTED and tiers from TIER_1K up; grey: unknown), each with how
  long ago the exporter saw it change, and whether it can send (Meta's
  health_status, for every provider that relays it) with the blocking error
  codes. A number whose limit is its business portfolio's shows that tier.
  Worst first.
* **Cannot send**: one tile counts every number that cannot send, whatever
  the reason (a status such as BANNED, health_status BLOCKED, or a WABA that
  Meta disabled), with the count per reason beside it; LIMITED numbers have
  a tile of their own.
* **WABA restrictions and bans** (from Meta's webhooks): each active
  restriction with the time left, and each ban decision with its date.
* **Accounts**: poll health (ok, failing, pending), data age (since the last
  fully successful poll; amber past 3 poll intervals, as the
  WhatsAppExporterDataStale alert), last poll, number count and the last
  error (already free of secrets).
* **Filters** are query parameters handled here: ``?provider=…&account=…``,
  offered as links and as a GET form of ``<select>`` boxes: no script needed.

Rendering is cheap and cached: the page for a given store generation, query,
shard and 10-second window of the clock is rendered once (ages are shown to
that precision), and at most :data:`MAX_ROWS` numbers are listed (filter to
see the rest).
"""

from __future__ import annotations

import collections
import threading
import weakref
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from html import escape
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from exporter import __version__
from exporter.statusrows import BAN_CLASS, GREY, POLL_CLASS, TILES, WARN, number_rows, poll_state
from exporter.statusrows import state_class as state_class  # part of the board's interface

if TYPE_CHECKING:
    from exporter.store import AccountSnapshot, Store

#: Numbers listed at most (worst first); the summary counts cover all of them.
MAX_ROWS = 1000
#: Ages are exact to this many seconds: the cache keeps a rendered page this long.
CACHE_SECONDS = 10
CACHE_ENTRIES = 32
#: Data older than this many poll intervals is shown as stale (WhatsAppExporterDataStale uses 3).
STALE_INTERVALS = 3
#: Refresh the page on its own (for a board on a wall screen); no script involved.
REFRESH_SECONDS = 30

CSS = """
*{box-sizing:border-box}
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2328;background:#f6f8fa}
header{background:#1f2328;color:#fff;padding:.8em 1.5em;display:flex;flex-wrap:wrap;align-items:baseline;gap:.4em 1.5em}
header h1{font-size:1.25em;margin:0}header a{color:#9cd1ff}header .meta{color:#c9d1d9;font-size:.9em}
main{padding:1em 1.5em}
h2{font-size:1.05em;margin:1.4em 0 .5em}
.tiles{display:flex;flex-wrap:wrap;gap:.6em}
.tile{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:.4em .9em;min-width:8.5em}
.tile b{display:block;font-size:1.6em}
.tile.bad{background:#ffebe9;border-color:#ff8182}.tile.warn{background:#fff8c5;border-color:#d4a72c}
.tile small{display:block;color:#57606a;font-size:.85em}
form.filters{display:flex;flex-wrap:wrap;gap:.6em 1.2em;align-items:center;background:#fff;border:1px solid #d0d7de;
border-radius:6px;padding:.5em .9em;margin-top:1em}
form.filters select{font:inherit;padding:.1em .3em}form.filters button{font:inherit;padding:.15em .9em}
.quick a{margin-right:.7em}.quick a.on{font-weight:600;text-decoration:none;color:#1f2328}
table{border-collapse:collapse;background:#fff;border:1px solid #d0d7de;width:100%}
th,td{border-bottom:1px solid #eaeef2;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#eaeef2;font-weight:600;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.phone{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;white-space:nowrap}
td.state{font-weight:600;white-space:nowrap}
td.state small{display:block;font-weight:400;color:#57606a}
.good{background:#dafbe1}.warn{background:#fff8c5}.bad{background:#ffebe9}.grey{background:#eaeef2}
td.good{box-shadow:inset 4px 0 #1a7f37}td.warn{box-shadow:inset 4px 0 #bf8700}
td.bad{box-shadow:inset 4px 0 #cf222e}td.grey{box-shadow:inset 4px 0 #8c959f}
td.error{color:#82071e;max-width:40em;overflow-wrap:anywhere}
p.note{color:#57606a}
footer{padding:1em 1.5em;color:#57606a;font-size:.85em}
"""

_cache: weakref.WeakKeyDictionary[object, collections.OrderedDict[tuple[object, ...], bytes]] = (
    weakref.WeakKeyDictionary()
)
_cache_lock = threading.Lock()


def render(
    store: Store,
    telemetry_path: str,
    now: float,
    query: Mapping[str, object] | None = None,
    shard: tuple[int, int] | None = None,
) -> bytes:
    """The whole status board page, as UTF-8 bytes.

    ``store`` is the exporter's :class:`~exporter.store.Store`; ``query`` the
    request's query parameters (a value may be a string or a list, as from
    :func:`urllib.parse.parse_qs`: the first item counts); ``shard`` this
    replica's ``(shard, total_shards)`` when sharded.
    """
    provider = _param(query, "provider")
    account = _param(query, "account")
    key = (store.exposition.generation, telemetry_path, provider, account, shard, int(now // CACHE_SECONDS))
    with _cache_lock:
        pages = _cache.get(store)
        if pages is None:
            pages = _cache[store] = collections.OrderedDict()
        page = pages.get(key)
        if page is not None:
            pages.move_to_end(key)
            return page
    page = _render(store, telemetry_path, now, provider, account, shard)
    with _cache_lock:
        pages[key] = page
        while len(pages) > CACHE_ENTRIES:
            pages.popitem(last=False)
    return page


def _param(query: Mapping[str, object] | None, name: str) -> str:
    value = (query or {}).get(name, "")
    if isinstance(value, (list, tuple)):
        value = value[0] if value else ""
    return str(value).strip()


def ago(seconds: float) -> str:
    """A short human duration: ``12 s``, ``5 min``, ``3 h 20 min``, ``2 d 4 h``."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _href(**params: str) -> str:
    """A relative link to this page with the given filters (empty ones left out)."""
    kept = {k: v for k, v in params.items() if v}
    return escape("?" + urlencode(kept) if kept else "?")


def _render_wabas(w: Callable[[str], None], accounts: list[AccountSnapshot], now: float) -> None:
    """Restrictions and ban decisions Meta's webhooks told about the accounts' WABAs (nothing when none)."""
    restrictions = [(snap, r) for snap in accounts for r in snap.waba_facts.active(now).restrictions.values()]
    bans = [(snap, b) for snap in accounts for b in snap.waba_facts.bans.values()]
    if not restrictions and not bans:
        return
    w(
        "<h2>WABA restrictions and bans</h2>\n<table class=wabas><thead><tr><th>Provider</th><th>Account</th>"
        "<th>WABA</th><th>What</th><th>Until / when</th><th>Remediation</th></tr></thead><tbody>\n"
    )
    for snap, r in sorted(restrictions, key=lambda x: (x[1].expiration, x[1].waba_id, x[1].restriction_type)):
        if r.expiration == float("inf"):
            left = '<td class="num">until lifted</td>'
        else:
            left = (
                f'<td class="num" data-expires="{r.expiration:.0f}" title="{_utc(r.expiration)}">'
                f"{ago(r.expiration - now)} left</td>"
            )
        w(
            f'<tr class="restriction" data-account="{escape(snap.name)}" data-waba="{escape(r.waba_id)}" '
            f'data-type="{escape(r.restriction_type)}"><td>{escape(snap.provider)}</td><td>{escape(snap.name)}</td>'
            f'<td class="phone">{escape(r.waba_id)}</td><td class="state warn">{escape(r.restriction_type)}</td>'
            f"{left}<td>{escape(r.remediation)}</td></tr>\n"
        )
    for snap, b in sorted(bans, key=lambda x: x[1].waba_id):
        cls = BAN_CLASS.get(b.ban_state, GREY)
        when = _utc(b.ban_date)[:10] if b.ban_date is not None else "&mdash;"
        w(
            f'<tr class="ban" data-account="{escape(snap.name)}" data-waba="{escape(b.waba_id)}" '
            f'data-state="{escape(b.ban_state)}"><td>{escape(snap.provider)}</td><td>{escape(snap.name)}</td>'
            f'<td class="phone">{escape(b.waba_id)}</td><td class="state {cls}">ban: {escape(b.ban_state)}</td>'
            f'<td class="num">{when}</td><td></td></tr>\n'
        )
    w("</tbody></table>\n")


def _render(
    store: Store, telemetry_path: str, now: float, provider: str, account: str, shard: tuple[int, int] | None
) -> bytes:
    snapshots = sorted(store.accounts(), key=lambda a: (a.provider, a.name))
    providers = sorted({a.provider for a in snapshots})
    accounts = [a for a in snapshots if (not provider or a.provider == provider) and (not account or a.name == account)]
    show_names = "verified_name" in getattr(store.options, "info_labels", ("verified_name",))

    rows = number_rows(accounts)
    numbers = [r.tracked.number for r in rows]
    reasons = collections.Counter(r.reason for r in rows if r.reason)

    out: list[str] = []
    w = out.append
    title = "WhatsApp numbers: status board"
    w(
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>\n"
    )
    metrics = escape(telemetry_path)
    shard_text = ""
    if shard is not None and shard[1] > 1:
        shard_text = (
            f' &middot; <span class="shard" title="shards are numbered from 0; this replica polls only its own '
            f'accounts">shard {int(shard[0])} of {int(shard[1])}</span>'
        )
    w(
        f"<header><h1>{escape(title)}</h1>"
        f'<span class="meta">whatsapp-number-exporter {escape(__version__)}{shard_text} &middot; '
        f'as of <time datetime="{escape(datetime.fromtimestamp(now, UTC).isoformat())}">{_utc(now)}</time></span>'
        f'<span class="links"><a href="{metrics}">Metrics</a> &middot; <a href="/-/healthy">Health</a> &middot; '
        f'<a href="/-/ready">Readiness</a></span></header>\n<main>\n'
    )

    # -- summary ---------------------------------------------------------------
    w('<section class="tiles" aria-label="summary">')
    w(f'<div class="tile" data-tile="numbers"><b>{len(numbers)}</b>numbers</div>')
    cannot = sum(reasons.values())
    detail = ", ".join(f"{count} {escape(reason)}" for reason, count in sorted(reasons.items()))
    w(
        f'<div class="tile{" bad" if cannot else ""}" data-tile="Cannot send"><b>{cannot}</b>Cannot send'
        f"{f'<small>{detail}</small>' if detail else ''}</div>"
    )
    for label, test, color in TILES:
        count = sum(1 for n in numbers if test(n))
        w(
            f'<div class="tile{" " + color if count else ""}" data-tile="{escape(label)}">'
            f"<b>{count}</b>{escape(label)}</div>"
        )
    failing = sum(1 for a in accounts if poll_state(a) == "failing")
    w(
        f'<div class="tile{" bad" if failing else ""}" data-tile="failing accounts"><b>{failing}</b>'
        f"of {len(accounts)} accounts failing</div></section>\n"
    )

    # -- filters ---------------------------------------------------------------
    w('<form class="filters" method="get"><span class="quick">Provider: ')
    w(f'<a href="{_href(account=account)}"{" class=on" if not provider else ""}>all</a>')
    for p in providers:
        count = sum(len(a.numbers) for a in snapshots if a.provider == p)
        w(
            f'<a href="{_href(provider=p, account=account)}"{" class=on" if p == provider else ""}>'
            f"{escape(p)} ({count})</a>"
        )
    w('</span><label>Provider <select name="provider"><option value="">all</option>')
    for p in providers:
        w(f'<option value="{escape(p)}"{" selected" if p == provider else ""}>{escape(p)}</option>')
    w('</select></label><label>Account <select name="account"><option value="">all</option>')
    for a in snapshots:
        if not provider or a.provider == provider:
            w(f'<option value="{escape(a.name)}"{" selected" if a.name == account else ""}>{escape(a.name)}</option>')
    w('</select></label><button type="submit">Filter</button>')
    if provider or account:
        w('<a href="?">clear filters</a>')
    w("</form>\n")
    if (provider or account) and not accounts:
        w(
            f'<p class="note">No account matches provider <code>{escape(provider or "any")}</code> and account '
            f"<code>{escape(account or 'any')}</code>.</p>\n"
        )

    # -- accounts --------------------------------------------------------------
    w(
        "<h2>Accounts</h2>\n<table class=accounts><thead><tr><th>Provider</th><th>Account</th><th>Poll</th>"
        "<th>Data age</th><th>Last poll</th><th>Numbers</th><th>Last error</th></tr></thead><tbody>\n"
    )
    for snap in accounts:
        state = poll_state(snap)
        poll = snap.poll
        if poll is not None and poll.last_success_at is not None:
            age_s = now - poll.last_success_at
            age_class = WARN if age_s > STALE_INTERVALS * snap.poll_interval else ""
            age = (
                f'<td class="num {age_class}" data-age="{age_s:.0f}" title="last successful poll '
                f'{_utc(poll.last_success_at)}">{ago(age_s)}</td>'
            )
        else:
            age = f'<td class="num{" grey" if poll is None else " bad"}">never</td>'
        last = (
            f'<td class="num" title="{_utc(poll.finished_at)}">{ago(now - poll.finished_at)} ago</td>'
            if poll is not None
            else '<td class="num">not yet</td>'
        )
        kept = f"{len(snap.numbers)}" + (f" (+{snap.dropped} over max_numbers)" if snap.dropped else "")
        w(
            f'<tr class="account" data-provider="{escape(snap.provider)}" data-account="{escape(snap.name)}" '
            f'data-poll="{state}" data-numbers="{len(snap.numbers)}">'
            f"<td>{escape(snap.provider)}</td>"
            f'<td><a href="{_href(account=snap.name)}">{escape(snap.name)}</a></td>'
            f'<td class="state {POLL_CLASS[state]}">{state}</td>{age}{last}'
            f'<td class="num">{escape(kept)}</td>'
            f'<td class="error">{escape(poll.error) if poll is not None and not poll.success else ""}</td></tr>\n'
        )
    w("</tbody></table>\n")

    _render_wabas(w, accounts, now)

    # -- numbers ---------------------------------------------------------------
    w(f"<h2>Numbers ({len(rows)}, worst first)</h2>\n")
    if rows:
        w(
            "<table class=numbers><thead><tr><th>Provider</th><th>Account</th><th>Phone number</th>"
            "<th>Verified name</th><th>Status</th><th>Quality</th><th>Tier</th>"
            '<th title="Can the number send? Its status, and Meta&#39;s health_status where the provider relays it '
            '(Meta, Kaleyra, CAMS); &mdash; where not read yet">Can send</th>'
            "</tr></thead><tbody>\n"
        )
        for row in rows[:MAX_ROWS]:
            prov, name, classes, tier, reason = row.snap.provider, row.snap.name, row.classes, row.tier, row.reason
            n, changes = row.tracked.number, row.tracked.changes
            phone = n.phone_number
            verified = escape(n.verified_name) if show_names else "&mdash;"
            w(
                f'<tr class="number" data-provider="{escape(prov)}" data-account="{escape(name)}" '
                f'data-phone="{escape(phone)}">'
                f"<td>{escape(prov)}</td><td>{escape(name)}</td>"
                f'<td class="phone">{escape(phone)}</td><td>{verified}</td>'
            )
            for field, value, changed, cls in (
                ("status", n.status, changes.status, classes[0]),
                ("quality_rating", n.quality_rating, changes.quality_rating, classes[1]),
            ):
                w(
                    f'<td class="state {cls}" data-field="{field}" data-value="{escape(value)}" '
                    f'data-changed="{changed:.0f}" title="since {_utc(changed)}">{escape(value)}'
                    f"<small>changed {ago(now - changed)} ago</small></td>"
                )
            if n.shares_portfolio_limit:
                w(
                    f'<td class="state {classes[2]}" data-field="messaging_limit_tier" data-value="{escape(tier)}" '
                    f'title="the limit of business portfolio {escape(n.business_id)}, shared by all its numbers">'
                    f"{escape(tier)}<small>portfolio {escape(n.business_id)}</small></td>"
                )
            else:
                changed = changes.messaging_limit_tier
                w(
                    f'<td class="state {classes[2]}" data-field="messaging_limit_tier" data-value="{escape(tier)}" '
                    f'data-changed="{changed:.0f}" title="since {_utc(changed)}">{escape(tier)}'
                    f"<small>changed {ago(now - changed)} ago</small></td>"
                )
            codes = ", ".join(sorted({e.error_code for e in n.blocking_errors if e.error_code}))
            why = f"<small>{escape(reason)}</small>" if reason and reason != "health BLOCKED" else ""
            why += f"<small>error {escape(codes)}</small>" if codes else ""
            if n.can_send_message == "UNKNOWN" and not reason:  # not read (yet), or the provider does not relay it
                w('<td class="state" data-field="can_send_message" data-value="UNKNOWN">&mdash;</td>')
            else:
                # health_status' own word where it was read; otherwise the status or the WABA's ban says it
                shown = (
                    n.can_send_message
                    if n.can_send_message != "UNKNOWN"
                    and not why.startswith("<small>status")
                    and reason != "WABA disabled"
                    else "cannot send"
                )
                w(
                    f'<td class="state {classes[3]}" data-field="can_send_message" '
                    f'data-value="{escape(n.can_send_message)}" data-reason="{escape(reason)}">'
                    f"{escape(shown)}{why}</td>"
                )
            w("</tr>\n")
        w("</tbody></table>\n")
        if len(rows) > MAX_ROWS:
            w(
                f'<p class="note">{len(rows) - MAX_ROWS} more numbers are not listed: filter by provider or account, '
                f'or query <a href="{metrics}">the metrics</a>.</p>\n'
            )
    else:
        w('<p class="note">No numbers yet.</p>\n')

    w(
        f'</main><footer>Rendered from the same snapshot as <a href="{metrics}">{metrics}</a>; this page never calls '
        "a provider. &ldquo;Changed&rdquo; is when the exporter saw the value change (or first saw the number). "
        f"Refreshes every {REFRESH_SECONDS} s.</footer>\n</body></html>\n"
    )
    return "".join(out).encode("utf-8")
