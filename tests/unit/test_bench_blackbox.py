"""The pure helpers of the black-box benchmarks (bench/_blackbox.py, bench/scrape_poll.py)."""

from __future__ import annotations

from bench._blackbox import Fleet, by_account, cams_config, family, polls
from bench.scrape_poll import classify
from exporter.config import parse_config

EXPOSITION = b"""# HELP whatsapp_phone_number_info Descriptive labels.
# TYPE whatsapp_phone_number_info gauge
whatsapp_phone_number_info{provider="alibaba_cams",account="a",phone_number="+1"} 1
# HELP whatsapp_exporter_last_poll_timestamp_seconds Unix time of the end of the last poll.
# TYPE whatsapp_exporter_last_poll_timestamp_seconds gauge
whatsapp_exporter_last_poll_timestamp_seconds{provider="alibaba_cams",account="a"} 1700000010.5
whatsapp_exporter_last_poll_timestamp_seconds{provider="alibaba_cams",account="b \\"x\\""} 1700000020
# HELP whatsapp_exporter_poll_duration_seconds Duration of the last poll.
# TYPE whatsapp_exporter_poll_duration_seconds gauge
whatsapp_exporter_poll_duration_seconds{provider="alibaba_cams",account="a"} 0.5
whatsapp_exporter_poll_duration_seconds{provider="alibaba_cams",account="b \\"x\\""} 2
# HELP process_cpu_seconds_total CPU.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 1.5
"""


def test_family_reads_one_family_only():
    samples = family(EXPOSITION, "whatsapp_exporter_last_poll_timestamp_seconds")
    assert [labels["account"] for labels, _ in samples] == ["a", 'b \\"x\\"']
    assert [value for _, value in samples] == [1700000010.5, 1700000020.0]
    assert family(EXPOSITION, "whatsapp_exporter_missing") == []
    assert family(EXPOSITION, "process_cpu_seconds_total") == [({}, 1.5)]


def test_polls_pair_end_and_duration_per_account():
    assert polls(EXPOSITION) == {"a": (1700000010.5, 0.5), 'b \\"x\\"': (1700000020.0, 2.0)}
    assert by_account(EXPOSITION, "whatsapp_exporter_poll_duration_seconds")["a"] == 0.5


def test_classify_busy_idle_and_first_scrape_of_a_generation():
    # scrapes every 0.1 s: [wall start, latency, status, bytes, generation]; a poll from 10.0 to 10.4 whose
    # exposition the scrape at 10.5 is the first to return (it waits 50 ms for its compression)
    scrapes = [[i / 10, 0.05 if i == 105 else 0.002, 200, 100, 1 if i < 105 else 2] for i in range(195)]
    result = classify(scrapes, [(10.4, 0.4)])
    ((start, stop, first),) = result["windows"]
    assert (start, first) == (10.0, 105)
    assert abs(stop - 10.55) < 1e-9
    assert len(result["busy"]) == 6  # 10.0 .. 10.5
    assert result["firsts"] == [0.05] and len(result["busy_later"]) == 5
    # idle: more than 0.5 s away from the window (up to 9.4, from 11.1 on)
    assert len(result["idle"]) == 95 + 84
    assert result["generations"] == 1 and result["other"] == [] and result["failed"] == 0


def test_classify_new_exposition_between_polls_is_not_idle():
    scrapes = [[i / 10, 0.002, 200, 100, 1 if i < 50 else 2] for i in range(100)]
    result = classify(scrapes, [])
    assert result["busy"] == [] and result["other"] == [0.002] and len(result["idle"]) == 99


def test_generated_config_is_valid_for_the_exporter():
    class FakeFleet(Fleet):  # the layout only: no emulator process
        def __init__(self, spaces: int, keys: int):
            self.spaces, self.per_space, self.keys, self.url = spaces, 5, keys, "http://127.0.0.1:1"

    text = cams_config(FakeFleet(12, 4), accounts=12, poll_interval=15, qps=2)
    config = parse_config(text, env={"BENCH_SECRET": "s"})
    assert len(config.accounts) == 12
    assert len(config.credential_groups()) == 4
    assert all(
        a.poll_jitter == 0 and a.waba_poll_interval == 0 and a.health_poll_interval == 0 for a in config.accounts
    )
    fast = parse_config(
        cams_config(FakeFleet(3, 1), poll_interval=5, qps=1000, concurrency=16, unpaced=True, state_sets="all"),
        env={"BENCH_SECRET": "s"},
    )
    (account,) = fast.accounts
    assert len(account.units) == 3 and account.concurrency == 16 and account.timeout == 2.5
    assert account.action_qps["QueryChatappPhoneNumbers"] == 1000
    assert fast.metrics.state_sets == "all"
