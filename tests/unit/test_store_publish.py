"""Publishing on the event loop (issue 14): one generation per loop turn for every account that changed in it.

The store used to build the whole exposition again for each account's publish, so a cycle over N accounts
cost N builds of N accounts. These tests hold the coalescing to its promises: many publishes in one turn
make one build; each caller returns only once its snapshot is served; a cancelled caller stops nobody else.
"""

import asyncio

from exporter import exposition as ex
from exporter import model
from exporter.store import AccountSnapshot, PollResult, Store


def snap(i: int, quality: str = "GREEN", polled: float | None = 1700000100.0) -> AccountSnapshot:
    number = model.PhoneNumber(f"+86{i:06d}", quality_rating=quality, status="CONNECTED")
    return AccountSnapshot(
        name=f"acct-{i:04d}",
        provider="alibaba_cams",
        poll_interval=60,
        qps=2,
        actions=("QueryChatappPhoneNumbers",),
        numbers={number.phone_number: model.TrackedNumber(number, model.ChangeTimes.first_seen(1700000000.0))},
        poll=None if polled is None else PollResult(True, polled, 0.2, polled, {f"space-{i}": True}),
    )


def quality(body: bytes, i: int) -> str:
    """The quality rating /metrics shows for account i's number (the active state of the state set)."""
    for line in body.decode().splitlines():
        family = line.startswith("whatsapp_phone_number_quality_rating{")
        if family and f'phone_number="+86{i:06d}"' in line and line.endswith(" 1"):
            return line.split('quality_rating="')[1].split('"')[0]
    return ""


def fleet(n: int) -> Store:
    store = Store()
    store.update_many([snap(i) for i in range(n)])
    return store


def test_publishes_in_one_loop_turn_make_one_generation_holding_every_change():
    store = fleet(300)
    builds, generation = store.builds, store.exposition.generation

    async def run() -> None:
        await asyncio.gather(*(store.publish(snap(i, "RED")) for i in range(300)))

    asyncio.run(run())
    assert store.builds == builds + 1  # not 300: one build of the whole exposition for the turn
    assert store.exposition.generation == generation + 1
    body = store.exposition.body
    assert {quality(body, i) for i in range(300)} == {"RED"}
    assert store.exposition.length == len(body)


def test_a_publisher_returns_only_once_its_snapshot_is_served():
    store = fleet(50)
    seen: dict[int, str] = {}

    async def one(i: int) -> None:
        await asyncio.sleep(0.001 * (i % 5))  # publishes spread over several loop turns
        await store.publish(snap(i, "YELLOW"))
        seen[i] = quality(store.exposition.body, i)  # what a scrape right after the return serves

    async def run() -> None:
        await asyncio.gather(*(one(i) for i in range(50)))

    builds = store.builds
    asyncio.run(run())
    assert seen == dict.fromkeys(range(50), "YELLOW")
    assert builds < store.builds <= builds + 50


def test_a_publish_is_not_served_before_the_turn_ends():
    """Coalesced, not immediate: the build waits for the other accounts of the same turn."""
    store = fleet(10)

    async def run() -> tuple[str, str]:
        task = asyncio.create_task(store.publish(snap(3, "RED")))
        await asyncio.sleep(0)  # the task rendered its account and waits for the turn's build
        during = quality(store.exposition.body, 3)
        await task
        return during, quality(store.exposition.body, 3)

    assert asyncio.run(run()) == ("GREEN", "RED")


def test_a_cancelled_publisher_leaves_the_others_answered_and_its_snapshot_lands():
    store = fleet(10)

    async def run() -> None:
        first = asyncio.create_task(store.publish(snap(1, "RED")))
        second = asyncio.create_task(store.publish(snap(2, "RED")))
        await asyncio.sleep(0)  # both rendered, both waiting for the same build
        first.cancel()
        await second  # still answered
        assert first.cancelled()

    asyncio.run(run())
    body = store.exposition.body
    assert quality(body, 1) == "RED" and quality(body, 2) == "RED"  # rendered before the cancel: it lands


def test_an_update_from_elsewhere_meanwhile_publishes_it_and_the_waiters_are_still_answered():
    store = fleet(10)

    async def run() -> int:
        task = asyncio.create_task(store.publish(snap(4, "RED")))
        await asyncio.sleep(0)
        store.update(snap(5, "RED"))  # e.g. a reload: builds at once, holding account 4's change too
        builds = store.builds
        await task
        return builds

    builds_after_update = asyncio.run(run())
    assert store.builds == builds_after_update  # nothing left to build when the turn's publish came
    body = store.exposition.body
    assert quality(body, 4) == "RED" and quality(body, 5) == "RED"


def test_ready_once_the_last_first_poll_is_published_on_the_loop():
    store = Store()
    store.update_many([snap(i, polled=None) for i in range(20)])
    assert not store.ready()

    async def run() -> list[bool]:
        states = []
        for i in range(20):
            await store.publish(snap(i))
            states.append(store.ready())
        return states

    assert asyncio.run(run()) == [False] * 19 + [True]


def test_accounts_added_and_removed_keep_the_exposition_whole_and_in_name_order():
    store = fleet(40)
    store.update_many([snap(i) for i in range(40, 90)], remove=tuple(f"acct-{i:04d}" for i in range(0, 40, 3)))
    body = store.exposition.body.decode()
    names = [
        line.split('account="')[1].split('"')[0]
        for line in body.splitlines()
        if line.startswith(ex.A_POLL_SUCCESS.name + "{")
    ]
    expected = sorted(f"acct-{i:04d}" for i in range(90) if not (i < 40 and i % 3 == 0))
    assert names == expected
    for family in ex.NUMBER_FAMILIES + ex.ACCOUNT_FAMILIES:  # each family once, its samples together
        assert body.count(f"# TYPE {family.name} ") <= 1
    assert store.exposition.length == len(store.exposition.body)


def test_a_rendering_made_with_options_changed_meanwhile_is_made_again():
    """A worker thread renders outside the lock: options set while it did are applied when it installs."""
    store = fleet(3)
    rendered = store._render([snap(7, "RED")])  # a worker thread's render of a new account, under the old options
    store.set_options(ex.RenderOptions(state_sets="all"))
    with store._lock:
        store._install(rendered, ())
        store._publish()
    body = store.exposition.body.decode()
    assert 'phone_number="+86000007",quality_rating="GREEN"} 0' in body  # all states: rendered again
