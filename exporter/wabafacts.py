"""What only Meta's ``account_update`` webhook tells about a WABA: restrictions, bans, violations.

No API read returns these facts, so the exporter keeps them itself: in each
account's snapshot (:attr:`exporter.store.AccountSnapshot.waba_facts`), and in
a small SQLite file (:class:`StateFile`) so that a restart in the middle of a
restriction does not forget it.

* :func:`parse_account_update`: one change ``value`` → a :class:`WabaUpdate`
  (pure; tolerant of every odd value, None for events that carry no such fact).
* :func:`apply`: the facts before and an update → the facts after (pure).

How the events are read (Meta documents the payloads, not every rule):

* ``ACCOUNT_RESTRICTION`` lists restrictions, each with a type and an
  ``expiration`` (Unix seconds).  Meta does not say whether an event lists
  every current restriction or only new ones, so listed types are added or
  updated and the others kept until they expire; an event with an empty list
  lifts them all.  An expiration in milliseconds is accepted; a restriction
  without a readable expiration lasts until an event lifts it (no expiration
  series then).
* ``DISABLED_UPDATE``: ``ban_info.waba_ban_state`` (DISABLE,
  SCHEDULE_FOR_DISABLE, REINSTATE) replaces the WABA's ban state;
  ``waba_ban_date`` is free text (``"April 17, 2025"``), read as midnight UTC.
* ``ACCOUNT_VIOLATION``: ``violation_info.violation_type`` counts one violation
  of that type (UNKNOWN when missing).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from exporter import model

log = logging.getLogger(__name__)

EVENTS = ("ACCOUNT_RESTRICTION", "DISABLED_UPDATE", "ACCOUNT_VIOLATION")
MAX_TEXT = 64
MAX_RESTRICTIONS = 32  # per event
_DATE_FORMATS = ("%B %d, %Y", "%b %d, %Y", "%Y-%m-%d", "%d %B %Y")


@dataclass(frozen=True)
class WabaUpdate:
    """One account_update event about a WABA, reduced to the facts it carries."""

    waba_id: str
    event: str
    restrictions: tuple[model.WabaRestriction, ...] = ()
    ban: model.WabaBan | None = None
    violation_type: str = ""


def _text(value: Any, limit: int = MAX_TEXT) -> str:
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, (int, float)):
        value = str(value)
    if not isinstance(value, str):
        return ""
    return " ".join(value.split())[:limit]


def _unix(value: Any) -> float:
    """Unix seconds from an int, float or digit string (milliseconds folded); inf when unreadable."""
    if isinstance(value, bool):
        return math.inf
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return math.inf
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        return math.inf
    return value / 1000.0 if value > 1e11 else float(value)


def parse_ban_date(value: Any) -> float | None:
    """Meta's free-text ``waba_ban_date`` (``"April 17, 2025"``) → Unix time of that day at 00:00 UTC."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = _unix(value)
        return seconds if math.isfinite(seconds) else None
    text = _text(value)
    if not text:
        return None
    for fmt in _DATE_FORMATS:
        try:
            day = datetime.strptime(text, fmt)
        except ValueError:
            continue
        return day.replace(tzinfo=UTC).timestamp()
    return None


def _section(value: dict[str, Any], key: str) -> dict[str, Any]:
    """``value[key]`` when it is an object, else an empty one."""
    inner = value.get(key)
    return inner if isinstance(inner, dict) else {}


def parse_account_update(waba_id: str, value: Any, now: float) -> WabaUpdate | None:
    """An ``account_update`` change value → the update it makes, or None (another event, or garbage)."""
    if not waba_id or not isinstance(value, dict):
        return None
    event = _text(value.get("event")).upper()
    if event == "ACCOUNT_RESTRICTION":
        raw = value.get("restriction_info")
        items = raw if isinstance(raw, list) else [raw] if isinstance(raw, dict) else []
        restrictions = []
        for item in items[:MAX_RESTRICTIONS]:
            if not isinstance(item, dict):
                continue
            kind = _text(item.get("restriction_type")).upper() or model.UNKNOWN
            restrictions.append(
                model.WabaRestriction(waba_id, kind, _unix(item.get("expiration")), _text(item.get("remediation"), 256))
            )
        return WabaUpdate(waba_id, event, restrictions=tuple(restrictions))
    if event == "DISABLED_UPDATE":
        info = _section(value, "ban_info")
        state = model.BAN_STATE.normalize(_text(info.get("waba_ban_state")) or None, "meta")
        return WabaUpdate(
            waba_id, event, ban=model.WabaBan(waba_id, state, parse_ban_date(info.get("waba_ban_date")), now)
        )
    if event == "ACCOUNT_VIOLATION":
        info = _section(value, "violation_info")
        return WabaUpdate(waba_id, event, violation_type=_text(info.get("violation_type")).upper() or model.UNKNOWN)
    return None


def apply(facts: model.WabaFacts, update: WabaUpdate, now: float) -> model.WabaFacts:
    """The facts after ``update`` (expired restrictions dropped)."""
    restrictions = dict(facts.restrictions)
    bans = dict(facts.bans)
    violations = dict(facts.violations)
    if update.event == "ACCOUNT_RESTRICTION":
        if not update.restrictions:
            restrictions = {k: r for k, r in restrictions.items() if r.waba_id != update.waba_id}
        for r in update.restrictions:
            restrictions[(r.waba_id, r.restriction_type)] = r
    elif update.ban is not None:
        bans[update.waba_id] = update.ban
    elif update.violation_type:
        key = (update.waba_id, update.violation_type)
        violations[key] = violations.get(key, 0) + 1
    return model.WabaFacts(restrictions, bans, violations).active(now)


# --------------------------------------------------------------------------
# Persistence
# --------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS restriction (
    account TEXT NOT NULL, waba_id TEXT NOT NULL, restriction_type TEXT NOT NULL,
    expiration REAL, remediation TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (account, waba_id, restriction_type));
CREATE TABLE IF NOT EXISTS ban (
    account TEXT NOT NULL, waba_id TEXT NOT NULL, ban_state TEXT NOT NULL, ban_date REAL, received_at REAL NOT NULL,
    PRIMARY KEY (account, waba_id));
CREATE TABLE IF NOT EXISTS violation (
    account TEXT NOT NULL, waba_id TEXT NOT NULL, violation_type TEXT NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (account, waba_id, violation_type));
"""


class StateFile:
    """The WABA facts of every account in one SQLite file (standard library ``sqlite3``).

    Any failure (a corrupt file, a read-only directory, a full disk) is
    logged once and turns the file off: the exporter keeps the facts in memory
    and goes on; nothing else depends on the file.  ``path`` None keeps
    everything in memory from the start.
    """

    def __init__(self, path: str | None):
        self.path = path
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self.failed = False
        if path is None:
            return
        try:
            directory = os.path.dirname(os.path.abspath(path))
            os.makedirs(directory, exist_ok=True)
            db = sqlite3.connect(path, check_same_thread=False, timeout=5.0)
            db.executescript(_SCHEMA)
            db.execute("PRAGMA journal_mode=WAL").fetchone()
            db.commit()
            self._db = db
        except (sqlite3.Error, OSError) as err:
            self._fail("open", err)

    def _fail(self, what: str, err: Exception) -> None:
        if not self.failed:
            log.error(
                "state file unusable: WABA restrictions, bans and violations are kept in memory only and "
                "will not survive a restart",
                extra={
                    "path": self.path,
                    "operation": what,
                    "error": f"{type(err).__name__}: {err}"[:200],
                    "hint": "check that --storage.path is a writable directory; move a corrupt "
                    "state.db aside to start afresh",
                },
            )
        self.failed = True
        self._close()

    def _close(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
        self._db = None

    def load(self, now: float) -> dict[str, model.WabaFacts]:
        """Every account's facts, expired restrictions left out (and deleted)."""
        with self._lock:
            db = self._db
            if db is None:
                return {}
            try:
                db.execute("DELETE FROM restriction WHERE expiration IS NOT NULL AND expiration <= ?", (now,))
                db.commit()
                restrictions = db.execute(
                    "SELECT account, waba_id, restriction_type, expiration, remediation FROM restriction"
                ).fetchall()
                bans = db.execute("SELECT account, waba_id, ban_state, ban_date, received_at FROM ban").fetchall()
                violations = db.execute("SELECT account, waba_id, violation_type, count FROM violation").fetchall()
            except sqlite3.Error as err:
                self._fail("load", err)
                return {}
        out: dict[str, dict[str, dict[Any, Any]]] = {}

        def of(account: str) -> dict[str, dict[Any, Any]]:
            return out.setdefault(account, {"restrictions": {}, "bans": {}, "violations": {}})

        for account, waba, kind, expiration, remediation in restrictions:
            of(account)["restrictions"][(waba, kind)] = model.WabaRestriction(
                waba, kind, math.inf if expiration is None else float(expiration), remediation or ""
            )
        for account, waba, state, ban_date, received_at in bans:
            of(account)["bans"][waba] = model.WabaBan(waba, model.BAN_STATE.normalize(state), ban_date, received_at)
        for account, waba, kind, count in violations:
            of(account)["violations"][(waba, kind)] = int(count)
        return {account: model.WabaFacts(**parts) for account, parts in out.items()}

    def save(self, account: str, facts: model.WabaFacts) -> None:
        """Replace the stored facts of ``account``."""
        with self._lock:
            db = self._db
            if db is None:
                return
            try:
                with db:
                    for table in ("restriction", "ban", "violation"):
                        db.execute(f"DELETE FROM {table} WHERE account = ?", (account,))  # fixed table names
                    db.executemany(
                        "INSERT INTO restriction VALUES (?, ?, ?, ?, ?)",
                        [
                            (
                                account,
                                r.waba_id,
                                r.restriction_type,
                                r.expiration if math.isfinite(r.expiration) else None,
                                r.remediation,
                            )
                            for r in facts.restrictions.values()
                        ],
                    )
                    db.executemany(
                        "INSERT INTO ban VALUES (?, ?, ?, ?, ?)",
                        [(account, b.waba_id, b.ban_state, b.ban_date, b.received_at) for b in facts.bans.values()],
                    )
                    db.executemany(
                        "INSERT INTO violation VALUES (?, ?, ?, ?)",
                        [(account, waba, kind, count) for (waba, kind), count in facts.violations.items()],
                    )
            except sqlite3.Error as err:
                self._fail("save", err)

    def close(self) -> None:
        with self._lock:
            self._close()


def restored(facts: Mapping[str, model.WabaFacts], account: str, now: float) -> model.WabaFacts:
    """An account's restored facts, with restrictions that expired meanwhile dropped."""
    found = facts.get(account)
    return found.active(now) if found is not None else model.NO_FACTS
