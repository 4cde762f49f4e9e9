"""The optional webhook receiver: provider events trigger an early, debounced poll.

A provider that pushes an event about a number or a WABA (Meta's
``phone_number_quality_update``, Kaleyra's quality/limit callback, NxCloud's
phone webhook) does not tell the exporter the new state reliably; Meta's
quality event does not even carry the rating.  So an event never sets state:
it asks the poller to poll the accounts concerned once more, ``debounce``
seconds from now (:meth:`exporter.poller.Poller.request_refresh`).  A burst of
events for one account ends in one extra poll; polls never overlap and take
their tokens from the account's usual bucket.

Bounded (docs/webhooks-bounds.md): a signed delivery seen again within
``replay_window`` is answered 200 and counted as ``replayed``, never acted on;
an account gets at most one webhook refresh per ``min_refresh_interval``
(events inside it join one refresh at its end, their numbers added) and, for
Meta accounts, at most ``meta_refreshes_per_hour`` (more are deferred until the
hour allows, never dropped) -- :class:`RefreshGate`; an event about a number no
account knows is logged at most once an hour per number.  All of it in bounded
memory (:class:`ExpiringSet`).

Endpoints, on their own listener (``webhooks.listen_address``)::

    POST /webhooks/meta       X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app_secret, raw body)>
    GET  /webhooks/meta       ?hub.mode=subscribe&hub.verify_token=...&hub.challenge=... (subscription handshake)
    POST /webhooks/nxcloud    headers accessKey, ts (ms), bizType, action, sign (NxCloud's request signature)
    GET  /webhooks/kaleyra    ?token=...&display_phone_number=...&event=...&current_limit=...
    GET  /-/healthy

Requests that are unsigned, wrongly signed, expired or unparseable are
answered 400/401/403/413, counted by reason and never acted on; replays of a
valid delivery are answered 200 (providers retry until they get one) and
counted.  Secrets never
appear in answers, logs or metrics; the query string (which carries the
Kaleyra token and Meta's verify token) is never logged.

The listener is the aiohttp server of :mod:`exporter.web` (limits on the
request line, the header section, its deadline and idle time), without TLS or
basic auth: providers cannot send basic auth, and Meta needs a publicly
trusted certificate, which a reverse proxy or ingress usually terminates.

Counters are rendered here as Prometheus text and handed to the store
(:meth:`exporter.store.Store.set_section`), at most once a second and only
after a change.

The package, by concern: :mod:`~exporter.webhooks.vocabulary` (providers,
events, results, reasons, limits), :mod:`~exporter.webhooks.signatures`
(NxCloud's signature), :mod:`~exporter.webhooks.metrics` (the counters),
:mod:`~exporter.webhooks.routing` (events to accounts),
:mod:`~exporter.webhooks.bounds` (the replay cache and the refresh gate),
:mod:`~exporter.webhooks.receiver` (verification and refresh requests),
:mod:`~exporter.webhooks.handler` (the HTTP side and its listener) and
:mod:`~exporter.webhooks.manager` (the lifecycle across reloads).
"""

from exporter.webhooks.bounds import ExpiringSet, RefreshGate, replay_key
from exporter.webhooks.handler import BODY_TIMEOUT
from exporter.webhooks.manager import WebhookManager, WebhookPlan
from exporter.webhooks.metrics import EVENTS_FAMILY, REFRESHES_FAMILY, REJECTED_FAMILY, WebhookMetrics
from exporter.webhooks.receiver import Reply, WebhookReceiver
from exporter.webhooks.signatures import nxcloud_sign
from exporter.webhooks.vocabulary import (
    BUDGETED_PROVIDERS,
    HEALTH_FIELDS,
    KALEYRA_EVENTS,
    MAX_BODY_BYTES,
    MAX_CHALLENGE,
    NUMBER_EVENTS,
    NXCLOUD_MAX_SKEW,
    OTHER,
    PROVIDER_REASONS,
    PROVIDERS,
    PUBLISH_INTERVAL,
    REASONS,
    REFRESH_RESULTS,
    REPLAY_CACHE_SIZE,
    RESULTS,
    UNKNOWN,
    UNKNOWN_LOG_INTERVAL,
    UNKNOWN_LOG_SIZE,
)

__all__ = [
    "BODY_TIMEOUT",
    "BUDGETED_PROVIDERS",
    "EVENTS_FAMILY",
    "HEALTH_FIELDS",
    "KALEYRA_EVENTS",
    "MAX_BODY_BYTES",
    "MAX_CHALLENGE",
    "NUMBER_EVENTS",
    "NXCLOUD_MAX_SKEW",
    "OTHER",
    "PROVIDERS",
    "PROVIDER_REASONS",
    "PUBLISH_INTERVAL",
    "REASONS",
    "REFRESHES_FAMILY",
    "REFRESH_RESULTS",
    "REJECTED_FAMILY",
    "REPLAY_CACHE_SIZE",
    "RESULTS",
    "UNKNOWN",
    "UNKNOWN_LOG_INTERVAL",
    "UNKNOWN_LOG_SIZE",
    "ExpiringSet",
    "RefreshGate",
    "Reply",
    "WebhookManager",
    "WebhookMetrics",
    "WebhookPlan",
    "WebhookReceiver",
    "nxcloud_sign",
    "replay_key",
]
