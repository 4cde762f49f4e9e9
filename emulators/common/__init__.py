"""Machinery shared by the provider emulators (CAMS, NxCloud, Kaleyra).

Every emulator is a :class:`ProviderEmulator` subclass.  The base class owns
everything that does not depend on a provider's wire format:

* an aiohttp HTTP/1.1 server on loopback, on an event loop in a thread of its
  own, with a clean start/stop lifecycle (``start()``, ``stop()``, ``url``,
  ``port``, ``running``, context manager);
* robust request reading: chunked bodies, bad or oversized ``Content-Length``
  and garbage request lines (aiohttp's parser; answered with the provider's
  error envelope), and a catch-all so a bug in a provider handler becomes an
  error answer instead of a dead server;
* an injectable wall clock plus *scenario time* (``scenario_time()``, ``advance()``);
* a thread-safe request log (:class:`RequestRecord`, ``requests``, ``calls()``,
  ``per_second_counts()``, ``max_requests_in_any_second()``, ``write_action_calls()``);
* per-second request counting against limits (:meth:`ProviderEmulator._admit`);
* fault selection and injection (``inject()``, ``clear_faults()``, ``count`` /
  ``from`` / ``until`` / ``probability`` / selectors), including ``delay``,
  ``malformed``, ``html``, ``reset``, ``truncate``, ``oversize``, ``refuse`` and
  ``hang`` (never answers: the request is held until the emulator stops, then
  reset and recorded with its arrival time; ``hanging()`` counts those held);
  ``error`` faults are turned into the provider's own error answer, and the data
  faults (``unknown_enum``, ``null_fields``, ``duplicate_numbers``) are applied by
  each provider to its successful answers through :meth:`ProviderEmulator._corrupt_answer`;
  ``probability`` draws from a random generator private to the emulator
  (``seed=`` on the constructor), so runs are reproducible;
* runtime overrides of numbers and WABAs (``set_number()``, ``set_waba()``,
  ``clear_overrides()``) on top of the scenario timelines;
* a state watcher (a thread started and stopped with the emulator) that
  evaluates every number's and WABA's observable state against scenario time
  every :attr:`ProviderEmulator.watch_interval` seconds (at once after
  ``advance()`` or an override) and records each change (``state_changes()``),
  whether or not a webhook is configured; the emulators that push webhooks
  (Meta, NxCloud, Kaleyra: ``set_webhook()``) turn the changes into events and
  send them asynchronously through :class:`~emulators.webhooks.WebhookSender`
  (``webhooks_sent()``), subject to the ``webhook_bad_signature`` and
  ``webhook_drop`` faults.

A subclass implements :meth:`ProviderEmulator._process` (authenticate, count,
apply faults, answer) and the few hooks that shape its error answers.  Like the
emulators themselves, this module never imports the exporter's client code.

How the mixins are typed
------------------------

:class:`ProviderEmulator` and the larger provider emulators (``emulators.meta``,
``emulators.cams``) are assembled from mixins, one per concern (``server``,
``faults``, ``requestlog``, ``state``, ``watcher`` here; routes, answers,
throttling, ... in the providers' packages).  A mixin's methods use attributes
that the final class's ``__init__`` sets and methods that other mixins define,
so every mixin states what it relies on, in one pattern applied everywhere:

* **attributes**: a class-level annotation without a value in the mixin's body,
  under the comment ``# what this mixin uses of the emulator``, e.g.
  ``_lock: threading.RLock`` (no value, so nothing changes at run time: the
  attribute is still set by ``ProviderEmulator.__init__`` or the provider's);
* **methods of other classes**: their exact signatures, as ``...`` stubs inside
  ``if TYPE_CHECKING:`` in the mixin's body, e.g. ``def scenario_time(self) ->
  float: ...`` (invisible at run time, so they never shadow the real method in
  the method resolution order; mypy checks that every declaration agrees with
  the definition where the classes meet);
* **overriding or extending** a method of a common mixin (a hook such as
  ``_error_reply``, or ``number_state`` called through ``super()``): the
  provider mixin subclasses that common mixin (``_MetaStateMixin(_StateMixin)``,
  ``_RoutesMixin(_ServerMixin)``), so mypy checks the override against the base
  signature and resolves ``super()``.  The final class lists
  :class:`ProviderEmulator` last, so the method resolution order is the same as
  with plain mixins.  Hook overrides keep the base signatures (``ctx:
  Context``) and narrow with ``isinstance`` where a provider needs its own
  context type.
* **building on another mixin** (Meta's routes dispatch into its answers, its events reuse their health;
  CAMS's actions answer from the scenario state): the mixin subclasses it (``_RoutesMixin(_AnswersMixin)``,
  ``_MetaEventsMixin(_AnswersMixin, _WatcherMixin)``, ``_ActionsMixin(_StateMixin)``) instead of declaring
  the methods it calls; the final class lists the subclass first, so the method resolution order stays that
  of plain mixins.
"""

from __future__ import annotations

from .base import (
    EmulatorOptions,
    ProviderEmulator,
)
from .records import (
    ActiveFault as ActiveFault,
)
from .records import (
    ApiError,
    BodyError,
    Context,
    Reply,
    Request,
    RequestRecord,
)
from .server import (
    MAX_REQUEST_LINE as MAX_REQUEST_LINE,
)
from .wire import (
    HEALTH_BY_REVIEW,
    HEALTH_BY_STATUS,
    HEALTH_RANK,
    MAX_BODY_BYTES,
    UNKNOWN_ENUM_VALUES,
    country_code_length,
    display_number,
    json_bytes,
    wire_fields,
    worst_health,
)
from .wire import (
    merge_wire_extra as merge_wire_extra,
)

__all__ = [
    "HEALTH_BY_REVIEW",
    "HEALTH_BY_STATUS",
    "HEALTH_RANK",
    "MAX_BODY_BYTES",
    "UNKNOWN_ENUM_VALUES",
    "ApiError",
    "BodyError",
    "Context",
    "EmulatorOptions",
    "ProviderEmulator",
    "Reply",
    "Request",
    "RequestRecord",
    "country_code_length",
    "display_number",
    "json_bytes",
    "wire_fields",
    "worst_health",
]
