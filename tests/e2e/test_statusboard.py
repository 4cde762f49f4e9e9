"""The status board at ``/``: rendering, escaping, filters, caching, and a real browser against the metrics.

The browser test polls the demo's emulators (all four providers), serves the
board through the real HTTP server, loads it in Debian's headless Chromium,
checks what Chromium's DOM shows against ``/metrics``, and takes a screenshot
(into its temporary directory). The committed docs/status-board.png is made
from the demo itself by scripts/screenshots.sh.
"""

from __future__ import annotations

import dataclasses
import shutil
import struct
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest

from exporter import model, statusboard, web
from exporter.exposition import RenderOptions
from exporter.store import AccountSnapshot, PollResult, Store
from tests.helpers import samples
from tests.tools import ROOT

NOW = 1_700_000_000.0
SCREENSHOT = ROOT / "docs" / "status-board.png"
WINDOW = (1400, 1000)


# -- building a store by hand ----------------------------------------------------------------


def tracked(phone: str, changed=(60, 60, 60), **fields) -> model.TrackedNumber:
    """A number as the store keeps it: its PhoneNumber's ``fields``, changed ``changed`` seconds before NOW."""
    return model.TrackedNumber(model.PhoneNumber(phone, **fields), model.ChangeTimes(*(NOW - c for c in changed)))


def number(
    phone: str, status="CONNECTED", quality="GREEN", tier="TIER_1K", name="Shop", changed=(600, 600, 600), **more
):
    fields = dict(status=status, quality_rating=quality, messaging_limit_tier=tier, verified_name=name)
    return tracked(phone, changed, **fields, space_id="space-1", **more)


def account(name: str, provider: str, numbers=(), *, success=True, age=30.0, error="", polled=True, interval=60.0):
    poll = None
    if polled:
        poll = PollResult(
            success, NOW - 5, 0.2, None if age is None else NOW - age, {"space-1": success}, "" if success else error
        )
    return AccountSnapshot(
        name=name,
        provider=provider,
        poll_interval=interval,
        qps=10,
        numbers={n.number.phone_number: n for n in numbers},
        poll=poll,
    )


def store_with(*snapshots, options=None) -> Store:
    store = Store(options=options) if options else Store()
    store.update_many(list(snapshots))
    return store


@pytest.fixture
def fleet() -> Store:
    return store_with(
        account(
            "shop",
            "alibaba_cams",
            [
                number("+8613800000001", quality="RED", changed=(7200, 180, 7200)),
                number("+8613800000002", status="FLAGGED", quality="YELLOW", tier="TIER_250"),
                number("+8613800000003", tier="TIER_UNLIMITED", name="Shop Sales"),
            ],
        ),
        account(
            "nx-prod",
            "nxcloud",
            [number("+6281300000001", status="RATE_LIMITED", name="Nx")],
            success=False,
            age=600,
            error="throttled: Throttling.User (HTTP 429)",
            interval=60,
        ),
        account(
            "kaleyra-prod",
            "kaleyra",
            [number("+919876543210", status="BANNED", quality="UNKNOWN", tier="TIER_NOT_SET", name="Kal")],
        ),
        account("new-one", "kaleyra", polled=False),
    )


# -- reading a board back ---------------------------------------------------------------------


class Board(HTMLParser):
    """The rows, cells, tiles and links of a rendered board (from our HTML or from Chromium's DOM)."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.numbers: list[dict] = []
        self.accounts: list[dict] = []
        self.tiles: dict[str, int] = {}
        self.links: list[str] = []
        self.options: dict[str, list[tuple[str, bool]]] = {}
        self.tags: set[str] = set()
        self._row: dict | None = None
        self._cell: dict | None = None
        self._tile: str | None = None
        self._select: str | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.add(tag)
        if tag == "tr" and a.get("class") in ("number", "account"):
            self._row = {**{k[5:]: v for k, v in a.items() if k.startswith("data-")}, "cells": [], "fields": {}}
            (self.numbers if a["class"] == "number" else self.accounts).append(self._row)
        elif tag == "td" and self._row is not None:
            self._cell = {
                "class": a.get("class") or "",
                "text": "",
                **{k[5:]: v for k, v in a.items() if k.startswith("data-")},
            }
            self._row["cells"].append(self._cell)
            if "field" in self._cell:
                self._row["fields"][self._cell["field"]] = self._cell
        elif tag == "div" and "data-tile" in a:
            self._tile = a["data-tile"]
            self.tiles[self._tile] = None
        elif tag == "a" and "href" in a:
            self.links.append(a["href"])
        elif tag == "select":
            self._select = a.get("name")
            self.options[self._select] = []
        elif tag == "option" and self._select:
            self.options[self._select].append((a.get("value"), "selected" in a))

    def handle_endtag(self, tag):
        if tag == "tr":
            self._row = None
        elif tag == "td":
            self._cell = None
        elif tag == "div":
            self._tile = None
        elif tag == "select":
            self._select = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data
        if self._tile is not None and self.tiles[self._tile] is None and data.strip().isdigit():
            self.tiles[self._tile] = int(data.strip())

    def number_rows(self) -> dict[tuple[str, str, str], dict]:
        return {(r["provider"], r["account"], r["phone"]): r for r in self.numbers}

    def account_rows(self) -> dict[tuple[str, str], dict]:
        return {(r["provider"], r["account"]): r for r in self.accounts}


def board(store, query=None, **kw) -> tuple[str, Board]:
    html = statusboard.render(store, kw.pop("telemetry_path", "/metrics"), kw.pop("now", NOW), query, **kw).decode()
    return html, Board(html)


# -- rendering ----------------------------------------------------------------------------------


def test_every_number_with_colored_cells_worst_first(fleet):
    _html, b = board(fleet)
    rows = b.number_rows()
    assert set(rows) == {
        ("alibaba_cams", "shop", "+8613800000001"),
        ("alibaba_cams", "shop", "+8613800000002"),
        ("alibaba_cams", "shop", "+8613800000003"),
        ("nxcloud", "nx-prod", "+6281300000001"),
        ("kaleyra", "kaleyra-prod", "+919876543210"),
    }
    red = rows[("alibaba_cams", "shop", "+8613800000001")]["fields"]
    assert (red["status"]["value"], red["quality_rating"]["value"], red["messaging_limit_tier"]["value"]) == (
        "CONNECTED",
        "RED",
        "TIER_1K",
    )
    assert "good" in red["status"]["class"] and "bad" in red["quality_rating"]["class"]
    flagged = rows[("alibaba_cams", "shop", "+8613800000002")]["fields"]
    assert "bad" in flagged["status"]["class"] and "warn" in flagged["quality_rating"]["class"]
    assert "warn" in flagged["messaging_limit_tier"]["class"]  # TIER_250: a low tier
    rate_limited = rows[("nxcloud", "nx-prod", "+6281300000001")]["fields"]
    assert "warn" in rate_limited["status"]["class"]
    banned = rows[("kaleyra", "kaleyra-prod", "+919876543210")]["fields"]
    assert "bad" in banned["status"]["class"]
    assert "grey" in banned["quality_rating"]["class"] and "grey" in banned["messaging_limit_tier"]["class"]
    assert "good" in rows[("alibaba_cams", "shop", "+8613800000003")]["fields"]["messaging_limit_tier"]["class"]
    # Worst first: every row with a red cell comes before the amber-only ones, then the all-green one.
    order = [r["phone"] for r in b.numbers]
    assert order[-1] == "+8613800000003"
    assert order.index("+6281300000001") > max(
        order.index(p) for p in ("+8613800000001", "+8613800000002", "+919876543210")
    )
    assert [c["text"] for c in rows[("alibaba_cams", "shop", "+8613800000003")]["cells"][:4]] == [
        "alibaba_cams",
        "shop",
        "+8613800000003",
        "Shop Sales",
    ]
    # one "Cannot send" tile, whatever the reason (issue 12: no separate BLOCKED tile that overlaps it)
    assert b.tiles == {
        "numbers": 5,
        "Quality RED": 1,
        "FLAGGED": 1,
        "Cannot send": 1,
        "Quality YELLOW": 1,
        "RATE_LIMITED": 1,
        "LIMITED": 0,
        "failing accounts": 1,
    }
    banned = rows[("kaleyra", "kaleyra-prod", "+919876543210")]["fields"]["can_send_message"]
    assert banned["text"] == "cannot sendstatus BANNED" and "bad" in banned["class"]
    # none of these providers reports Meta's health: the column says so instead of UNKNOWN
    assert rows[("alibaba_cams", "shop", "+8613800000003")]["cells"][-1]["text"] == "\u2014"


def test_meta_health_column_and_tiles():
    error = model.BlockingError("PHONE_NUMBER", "1065", "141006", "Blocked.")
    meta = dict(tier="TIER_10K", name="", changed=(60, 60, 60))
    blocked = number("+15550100001", **meta, can_send_message="BLOCKED", blocking_errors=(error,))
    limited = number("+15550100002", **meta, can_send_message="LIMITED")
    _, b = board(
        store_with(
            account("meta-prod", "meta", [blocked, limited]),
            account("shop", "alibaba_cams", [number("+8613800000009")]),
        )
    )
    rows = b.number_rows()
    cell = rows[("meta", "meta-prod", "+15550100001")]["fields"]["can_send_message"]
    assert cell["value"] == "BLOCKED" and "bad" in cell["class"] and "error 141006" in cell["text"]
    assert "warn" in rows[("meta", "meta-prod", "+15550100002")]["fields"]["can_send_message"]["class"]
    assert b.tiles["Cannot send"] == 1 and b.tiles["LIMITED"] == 1
    assert next(r["phone"] for r in b.numbers) == "+15550100001"  # a BLOCKED number is among the worst


def test_changed_ago_and_account_health(fleet):
    _html, b = board(fleet)
    red = b.number_rows()[("alibaba_cams", "shop", "+8613800000001")]["fields"]
    assert red["status"]["text"] == "CONNECTEDchanged 2 h 0 min ago"
    assert red["quality_rating"]["text"] == "REDchanged 3 min ago"
    assert red["quality_rating"]["changed"] == f"{NOW - 180:.0f}"
    accounts = b.account_rows()
    shop = accounts[("alibaba_cams", "shop")]
    assert shop["poll"] == "ok" and shop["numbers"] == "3"
    assert [c["text"] for c in shop["cells"]][2:6] == ["ok", "30 s", "5 s ago", "3"]
    assert "good" in shop["cells"][2]["class"]
    nx = accounts[("nxcloud", "nx-prod")]
    assert nx["poll"] == "failing" and "bad" in nx["cells"][2]["class"]
    assert nx["cells"][3]["text"] == "10 min" and "warn" in nx["cells"][3]["class"]  # stale: > 3 poll intervals
    assert nx["cells"][-1]["text"] == "throttled: Throttling.User (HTTP 429)"
    pending = accounts[("kaleyra", "new-one")]
    assert pending["poll"] == "pending" and "grey" in pending["cells"][2]["class"]
    assert [c["text"] for c in pending["cells"]][3:5] == ["never", "not yet"]
    # Accounts in provider order, then by name.
    assert [r["account"] for r in b.accounts] == ["shop", "kaleyra-prod", "new-one", "nx-prod"]


def test_links_to_metrics_and_probes(fleet):
    _, b = board(fleet, telemetry_path="/custom/metrics")
    assert {"/custom/metrics", "/-/healthy", "/-/ready"} <= set(b.links)


@pytest.mark.parametrize(
    "seconds,text",
    [
        (0, "0 s"),
        (59, "59 s"),
        (60, "1 min"),
        (3599, "59 min"),
        (3600, "1 h 0 min"),
        (86399, "23 h 59 min"),
        (90000, "1 d 1 h"),
        (-5, "0 s"),
    ],
)
def test_ago(seconds, text):
    assert statusboard.ago(seconds) == text


def test_filters_by_provider_and_account(fleet):
    _, b = board(fleet, {"provider": "alibaba_cams"})
    assert {r["provider"] for r in b.numbers} == {"alibaba_cams"} and len(b.numbers) == 3
    assert [r["account"] for r in b.accounts] == ["shop"]
    assert ("alibaba_cams", True) in b.options["provider"]
    assert [v for v, _ in b.options["account"]] == ["", "shop"]  # only this provider's accounts to choose from
    assert b.tiles["numbers"] == 3 and b.tiles["FLAGGED"] == 1 and b.tiles["Cannot send"] == 0

    _, b = board(fleet, {"account": ["nx-prod"]})  # parse_qs style lists work too
    assert [r["phone"] for r in b.numbers] == ["+6281300000001"]
    assert ("nx-prod", True) in b.options["account"]

    _, b = board(fleet, {"provider": "kaleyra", "account": "shop"})
    assert not b.numbers and not b.accounts

    html, b = board(fleet, {"provider": "nope"})
    assert not b.numbers and "No account matches provider" in html

    _, b = board(fleet, {"provider": "", "account": ""})  # the form's "all"
    assert len(b.numbers) == 5
    # Quick links keep the other filter.
    _, b = board(fleet, {"account": "shop"})
    assert "?provider=nxcloud&account=shop" in b.links


def test_every_value_is_escaped():
    evil = '<script>alert("x")</script>'
    store = store_with(
        account(
            'acc"><img src=x onerror=alert(1)>',
            "alibaba_cams",
            [number("+100<b>", name=evil, status="OTHER")],
            success=False,
            error=evil,
        )
    )
    html, b = board(
        store,
        {"provider": '"><script>alert(2)</script>', "account": "<svg onload=alert(3)>"},
        telemetry_path='/m"><script>alert(4)</script>',
    )
    assert "<script" not in html and "<img" not in html and "<svg" not in html and "+100<b>" not in html
    assert "&quot;&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in html  # the unmatched filter, echoed
    html, b = board(store)
    assert "<script" not in html and "<img" not in html and "+100<b>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    (row,) = b.numbers
    assert row["cells"][3]["text"] == evil and row["phone"] == "+100<b>"
    assert row["fields"]["status"]["value"] == "OTHER" and "grey" in row["fields"]["status"]["class"]
    assert b.accounts[0]["cells"][-1]["text"] == evil
    assert b.accounts[0]["account"] == 'acc"><img src=x onerror=alert(1)>'


def test_self_contained_no_script_no_external_asset(fleet):
    html, b = board(fleet, shard=(1, 3))
    assert "script" not in b.tags and "link" not in b.tags and "img" not in b.tags and "iframe" not in b.tags
    assert "http://" not in html and "https://" not in html and "url(" not in html and "@import" not in html
    assert "<style>" in html and 'method="get"' in html
    assert "shard 1 of 3" in html
    for shard in (None, (0, 1)):
        assert 'class="shard"' not in board(fleet, shard=shard)[0]


def test_verified_name_follows_the_info_labels_option():
    store = store_with(
        account("a", "nxcloud", [number("+1", name="Secret Shop")]), options=RenderOptions(info_labels=("space_id",))
    )
    html, b = board(store)
    assert "Secret Shop" not in html and b.numbers[0]["cells"][3]["text"] == "\u2014"


def test_cached_per_generation_query_and_time_window(fleet):
    first = statusboard.render(fleet, "/metrics", NOW)
    assert statusboard.render(fleet, "/metrics", NOW + 1) is first  # same 10 s window
    assert statusboard.render(fleet, "/metrics", NOW, {"provider": "nxcloud"}) is not first
    later = statusboard.render(fleet, "/metrics", NOW + statusboard.CACHE_SECONDS)
    assert later is not first
    fleet.update(account("shop", "alibaba_cams", [number("+8613800000009")]))
    fresh = statusboard.render(fleet, "/metrics", NOW)
    assert fresh is not first and b"+8613800000009" in fresh


def test_long_fleets_are_cut_with_a_note(monkeypatch):
    monkeypatch.setattr(statusboard, "MAX_ROWS", 10)
    store = store_with(account("big", "alibaba_cams", [number(f"+86139{i:08d}") for i in range(25)]))
    html, b = board(store)
    assert len(b.numbers) == 10 and b.tiles["numbers"] == 25
    assert "15 more numbers are not listed" in html


def test_empty_store():
    html, b = board(Store())
    assert "No numbers yet." in html and not b.numbers and b.tiles["numbers"] == 0


# -- served by the exporter -----------------------------------------------------------------------


@pytest.fixture
def serve_board(monkeypatch):
    """Serve ``/`` through :func:`exporter.statusboard.render`.

    Until exporter/web.py routes ``/`` to the status board itself, this routes
    it here (the real server otherwise: every other path is web.py's own).
    Once web.py imports the status board, the monkeypatch is skipped, and these
    tests exercise web.py's own wiring.
    """
    # exporter.web is a package (issue 18): its modules' sources, not only __init__.py's
    source = Path(web.__file__)
    sources = sorted(source.parent.glob("*.py")) if source.name == "__init__.py" else [source]
    if not any("statusboard" in path.read_text() for path in sources):
        original = web.Handler._route

        def route(self):
            path, _, query = self.path.partition("?")
            if path != "/":
                return original(self)
            app = self.server.app
            params = {k: v[0] for k, v in parse_qs(query).items()}
            self._send(
                200, statusboard.render(app.store, app.telemetry_path, time.time(), params), "text/html; charset=utf-8"
            )

        monkeypatch.setattr(web.Handler, "_route", route)

    servers = []

    def start(store: Store) -> web.HttpServer:
        server = web.HttpServer(web.App(store), "127.0.0.1:0").start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def test_served_at_root_with_filters(fleet, serve_board):
    server = serve_board(fleet)
    response = httpx.get(server.url + "/", timeout=10)
    assert response.status_code == 200 and response.headers["content-type"] == "text/html; charset=utf-8"
    assert len(Board(response.text).numbers) == 5
    response = httpx.get(server.url + "/?provider=nxcloud", timeout=10)
    assert [r["provider"] for r in Board(response.text).numbers] == ["nxcloud"]
    assert httpx.get(server.url + "/metrics", timeout=10).status_code == 200


# -- in a real browser, against the metrics --------------------------------------------------------


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("chromium is not installed: run scripts/install-browser.sh (Debian's chromium package)", pytrace=False)


def run_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    profile.mkdir()
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        *args,
    ]
    result = subprocess.run(command, capture_output=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-3000:]
    return result


@pytest.fixture
def demo_store():
    """A store filled by real polls of the demo's four emulators, with change times spread over two hours.

    The poller's clock is moved back for the earlier rounds (the emulators are
    advanced through their scenarios in between), so the board shows changes
    of two hours, 25 minutes and one minute ago. The last round runs at the
    real time, with one CAMS credential refused, so one account is failing.
    """
    from emulators.scenario import Fault
    from exporter.demo import Demo
    from exporter.poller import Poller

    demo = Demo().start()
    store = Store(options=demo.config.metrics)
    offset = [0.0]
    poller = Poller(demo.config, store, clock=lambda: time.time() - offset[0])
    names = [a.name for a in demo.config.accounts]
    try:
        for back, advance in ((7200, 0), (1500, 60), (60, 40)):
            for fleet in demo.fleets:
                if advance:
                    fleet.emulator.advance(advance)
            offset[0] = back
            for name in names:
                poller.poll_account(name)
        offset[0] = 0
        refused = next(a for a in demo.config.accounts if a.credentials.access_key_id == "demo-ak-2")
        cams = next(f.emulator for f in demo.fleets if f.provider == "alibaba_cams")
        cams.inject(Fault(kind="error", code="Ram.PermissionDeny", access_key_id="demo-ak-2"))
        for name in names:
            poller.poll_account(name)
        yield store, refused.name
    finally:
        poller.stop()
        demo.stop()


def test_board_in_chromium_matches_the_metrics(demo_store, serve_board, tmp_path):
    store, failing = demo_store
    server = serve_board(store)
    s = samples(httpx.get(server.url + "/metrics", timeout=10).text)

    dom = run_chromium(tmp_path, "--dump-dom", server.url + "/").stdout.decode()
    b = Board(dom)
    rows = b.number_rows()
    info = {
        (dict(ls)["provider"], dict(ls)["account"], dict(ls)["phone_number"]): dict(ls)
        for (n, ls), v in s.items()
        if n == "whatsapp_phone_number_info"
    }
    demo_providers = {a.provider for a in store.accounts()}
    assert set(rows) == set(info) and len(rows) == sum(len(a.numbers) for a in store.accounts()) >= 20
    assert {p for p, _, _ in rows} == demo_providers >= {"alibaba_cams", "nxcloud", "kaleyra"}

    def active(family: str, label: str, key) -> str:
        provider, account, phone = key
        (state,) = [
            dict(ls)[label]
            for (n, ls), v in s.items()
            if n == f"whatsapp_phone_number_{family}"
            and v == 1
            and dict(ls)["provider"] == provider
            and dict(ls)["account"] == account
            and dict(ls)["phone_number"] == phone
        ]
        return state

    def changed(family: str, key) -> float:
        provider, account, phone = key
        (value,) = [
            v
            for (n, ls), v in s.items()
            if n == f"whatsapp_phone_number_{family}_last_change_timestamp_seconds"
            and dict(ls)["provider"] == provider
            and dict(ls)["account"] == account
            and dict(ls)["phone_number"] == phone
        ]
        return value

    def business_tier(key, business: str) -> str:
        provider, account, _ = key
        (state,) = [
            dict(ls)["tier"]
            for (n, ls), v in s.items()
            if n == "whatsapp_business_messaging_limit_tier"
            and v == 1
            and dict(ls)["provider"] == provider
            and dict(ls)["account"] == account
            and dict(ls)["business_id"] == business
        ]
        return state

    classes = set()
    portfolio = 0
    for key, row in rows.items():
        tier = row["fields"]["messaging_limit_tier"]
        if "portfolio " in tier["text"]:
            # since October 2025 the limit is the business portfolio's: the board shows that one
            business = tier["text"].split("portfolio ", 1)[1]
            assert (
                tier["value"] == business_tier(key, business) and tier["text"] == f"{tier['value']}portfolio {business}"
            )
            portfolio += 1
            fields = (("status", "status", "status"), ("quality_rating", "quality_rating", "quality_rating"))
        else:
            fields = (
                ("status", "status", "status"),
                ("quality_rating", "quality_rating", "quality_rating"),
                ("messaging_limit_tier", "messaging_limit_tier", "tier"),
            )
        for field, family, label in fields:
            cell = row["fields"][field]
            assert cell["value"] == active(family, label, key), (key, field)
            assert cell["text"].startswith(cell["value"] + "changed ")
            assert abs(float(cell["changed"]) - changed(family, key)) <= 0.5, (key, field)
            assert cell["class"].split()[-1] == statusboard.state_class(field, cell["value"])
            classes.add(cell["class"].split()[-1])
        assert row["cells"][3]["text"] == info[key].get("verified_name", "")
    assert {"good", "warn", "bad"} <= classes, "the demo shows green, amber and red cells"
    assert portfolio, "the demo shows portfolio limits"

    accounts = b.account_rows()
    for (n, ls), v in s.items():
        labels = dict(ls)
        if n == "whatsapp_exporter_poll_success":
            assert accounts[(labels["provider"], labels["account"])]["poll"] == ("ok" if v == 1 else "failing")
        if n == "whatsapp_exporter_numbers":
            assert int(accounts[(labels["provider"], labels["account"])]["numbers"]) == v
    assert len(accounts) == len(store.accounts())
    (failing_row,) = [r for (p, a), r in accounts.items() if a == failing]
    assert failing_row["poll"] == "failing" and failing_row["cells"][-1]["text"].strip()
    assert b.tiles["numbers"] == len(rows) and b.tiles["failing accounts"] == 1

    # A filter, in the browser too.
    b = Board(run_chromium(tmp_path, "--dump-dom", server.url + "/?provider=nxcloud").stdout.decode())
    assert {r["provider"] for r in b.numbers} == {"nxcloud"}
    assert len(b.numbers) == len([key for key in info if key[0] == "nxcloud"]) > 0

    # A screenshot, as scripts/screenshots.sh takes the documentation's from the demo.
    shot = tmp_path / "status-board.png"
    run_chromium(tmp_path, f"--screenshot={shot}", f"--window-size={WINDOW[0]},{WINDOW[1]}", server.url + "/")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", data[16:24]) == WINDOW
    assert len(data) > 20_000, "the screenshot is not blank"


def test_committed_screenshot_is_a_board_screenshot():
    assert SCREENSHOT.exists(), "docs/status-board.png is missing: run scripts/screenshots.sh"
    data = SCREENSHOT.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", data[16:24]) == WINDOW


def test_restrictions_bans_portfolio_limits_and_why_a_number_cannot_send():
    """Issue 12: a restrictions section with time left, ban decisions, the portfolio's tier on its numbers, and one
    Cannot send tile whose reasons are visible."""
    facts = model.WabaFacts(
        restrictions={
            ("w1", "RESTRICTED_BIZ_INITIATED_MESSAGING"): model.WabaRestriction(
                "w1", "RESTRICTED_BIZ_INITIATED_MESSAGING", NOW + 5400, "Appeal in Business Support Home"
            )
        },
        bans={"w2": model.WabaBan("w2", "DISABLE", 1744848000.0, NOW)},
    )
    in_portfolio = dict(limit_scope="business_portfolio", business_id="b1", can_send_message="AVAILABLE")
    portfolio = tracked("+15550100001", messaging_limit_tier="TIER_2K", **in_portfolio, waba_id="w1", space_id="w1")
    disabled = tracked("+15550100002", waba_id="w2", space_id="w2")
    error = model.BlockingError("BUSINESS", "39920000", "141006", "payment method")
    blocked = tracked("+8613800000001", can_send_message="BLOCKED", space_id="s", blocking_errors=(error,))
    meta = dataclasses.replace(
        account("meta-prod", "meta", [portfolio, disabled]),
        waba_facts=facts,
        businesses={"b1": model.BusinessLimit("b1", "TIER_10K", NOW, "webhook")},
    )
    html, b = board(store_with(meta, account("shop", "alibaba_cams", [blocked])))
    assert b.tiles["Cannot send"] == 2
    assert "1 WABA disabled, 1 health BLOCKED" in html
    rows = b.number_rows()
    tier = rows[("meta", "meta-prod", "+15550100001")]["fields"]["messaging_limit_tier"]
    assert tier["value"] == "TIER_10K" and tier["text"] == "TIER_10Kportfolio b1"  # the business's, not the number's
    cams = rows[("alibaba_cams", "shop", "+8613800000001")]["fields"]["can_send_message"]
    assert cams["text"] == "BLOCKEDerror 141006" and "bad" in cams["class"]
    ban = rows[("meta", "meta-prod", "+15550100002")]["fields"]["can_send_message"]
    assert ban["text"] == "cannot sendWABA disabled" and "bad" in ban["class"]
    assert 'data-type="RESTRICTED_BIZ_INITIATED_MESSAGING"' in html and "1 h 30 min left" in html
    assert "Appeal in Business Support Home" in html
    assert 'data-state="DISABLE"' in html and "2025-04-17" in html


def test_twilio_offline_cannot_send_with_its_reason_and_cams_offline_not():
    error = model.BlockingError("PHONE_NUMBER", "XE1", "63020", "x")
    fields = dict(status="OFFLINE", quality_rating="GREEN", messaging_limit_tier="TIER_10K", space_id="AC1")
    offline = tracked("+14155550101", **fields, blocking_errors=(error,))
    _, b = board(
        store_with(
            account("tw", "twilio", [offline]),
            account("shop", "alibaba_cams", [number("+8613800000009", status="OFFLINE")]),
        )
    )
    rows = b.number_rows()
    cell = rows[("twilio", "tw", "+14155550101")]["fields"]["can_send_message"]
    assert "bad" in cell["class"] and "error 63020" in cell["text"] and cell["reason"] == "status OFFLINE"
    assert rows[("alibaba_cams", "shop", "+8613800000009")]["fields"]["can_send_message"]["value"] == "UNKNOWN"
    assert b.tiles["Cannot send"] == 1
