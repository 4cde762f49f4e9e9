"""Soak: the real exporter, as a subprocess, against all three emulators with random faults.

What runs:

* In a child process (``bench/_soak_emulators.py``, so that the soak's own
  parsing never stalls them), one emulator per provider (standard library HTTP
  on loopback): CAMS with 5 AccessKeys x 60 spaces x 10 numbers (one key signs V2,
  two poll code verification too), NxCloud with 3 accessKeys x 25 apps x 20
  numbers (half the apps answer in the array shape), Kaleyra with 2 SIDs x 5
  WABAs x 50 numbers: 5,000 numbers.  About 40 % of the numbers loop through
  status / quality / tier changes every 2 to 10 minutes, so the exporter keeps
  seeing changes.  Every emulator enforces the same per-credential QPS as the
  exporter's budget (CAMS 10, NxCloud 5, Kaleyra 20).
* Random faults on every emulator, about ``--fault-share`` (10 %) of the
  requests in all, drawn from a seeded generator: delays of 0.3 s and 1 s
  (under the exporter's 2 s timeout) and 3 s (over it), the provider's HTTP 5xx,
  every documented throttling answer, the documented auth and permission
  errors, malformed JSON, HTML error pages, resets, bodies cut mid-way,
  refused connections, answers of 4 MiB and 40 MiB (over the exporter's
  32 MiB cap), unknown enum values, null and missing fields, duplicate numbers.
* The exporter: ``python -m exporter --config.file <generated> --log.format
  json --log.level info``, secrets from environment variables, poll interval
  15 s (Kaleyra 30 s), timeout 2 s.  Prometheus is imitated by a gzip scrape
  of ``/metrics`` every 15 s.  Its RSS is read from ``/proc/<pid>/status``
  every 10 s.

After ``--minutes`` the faults are cleared, every number's status, quality
rating and tier are pinned to their current values (runtime overrides, so the
looping timelines cannot move them during the check), and the exporter polls
every account twice more (two ``whatsapp_exporter_last_poll_timestamp_seconds``
changes after the pin, so the second poll started after it; up to 8 minutes, so
that an account the exporter paused for 5 minutes after an auth or permission
answer has come back).  Then:

* final state: for every number, the active ``status``, ``quality_rating`` and
  ``tier`` series of ``/metrics`` against the emulator's raw wire values.  The
  generated vocabularies are chosen so that the documented mapping is the
  identity (statuses from the API reference, GREEN/YELLOW/RED, Meta's tier
  names), so the raw value is the expected state; missing and extra numbers
  count as mismatches too;
* budget: requests per calendar second per credential from the emulators'
  request logs (every arrival: throttled and faulted ones included; refused
  connections carry no credential and are not counted) against its QPS;
* log: the exporter's JSON log scanned for unhandled exceptions (records of
  level error/critical with an ``exception`` key, lines starting with
  ``Traceback``) and lines that are not JSON; expected provider errors are
  logged without an exception key and are only counted;
* RSS drift: the last sample against the first sample at or after minute 2
  (for runs shorter than 4 minutes: at or after half the faulted duration).

Usage:  python -m bench.soak [--minutes 10] [--seed 1] [--fault-share 0.10] [--exclude KIND|CODE|auth,...]
                            [--workdir DIR]
``--minutes 1`` is a smoke run.  ``--exclude`` leaves fault kinds or error codes out (``auth``: every auth
and permission answer), to tell which fault a failing check comes from.  The exporter's config, its log
and the RSS samples (``rss.tsv``) stay in the work directory.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import _soak_emulators as emulators
from bench._blackbox import exporter_process, free_port, get, rss_kib, series, threads_of
from exporter.config import PROVIDERS, parse_config

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 2.0
POLL = {"alibaba_cams": 15, "nxcloud": 15, "kaleyra": 30}
QPS = emulators.QPS
PAUSE = 300.0  # the exporter's shortest hold of an account after an auth or permission refusal
SCRAPE_EVERY = 15.0
RSS_EVERY = 10.0
COMPARED = (
    ("status", "whatsapp_phone_number_status", "status"),
    ("quality_rating", "whatsapp_phone_number_quality_rating", "quality_rating"),
    ("messaging_limit_tier", "whatsapp_phone_number_messaging_limit_tier", "tier"),
)
LABELS = {"alibaba_cams": "cams", "nxcloud": "nx", "kaleyra": "kal"}


def config_text(hello: dict[str, Any], env: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The exporter's config (secrets as ${VAR} in ``env``) and the account of every unit (space, app, WABA)."""
    lines = ["global:", f"  timeout: {TIMEOUT:g}s", "accounts:"]
    unit_account: dict[str, str] = {}
    for provider, info in hello.items():
        spec = PROVIDERS[provider]
        for i, (key_id, secret, units) in enumerate(info["credentials"], 1):
            name = f"{LABELS[provider]}-{i}"
            unit_account.update((unit, name) for unit in units)
            var = f"SOAK_SECRET_{len(env)}"
            env[var] = secret
            lines += [
                f"  - name: {name}",
                f"    provider: {provider}",
                f"    endpoint: {info['url']}",
                "    credentials:",
                f"      {spec.id_key}: {key_id}",
                f"      {spec.secret_key}: ${{{var}}}",
                f"    poll_interval: {POLL[provider]}s",
                "    poll_jitter: 1s",
                f"    qps: {QPS[provider]}",
            ]
            if provider == "alibaba_cams":
                lines.append("    waba_poll_interval: 60s")
                if i in (2, 4):
                    # every kind of call has run before the minute-2 RSS baseline
                    lines.append("    verification_poll_interval: 60s")
                if i == 3:
                    lines.append("    signature_version: v2")
            lines.append(f"    {spec.units_key}:")
            lines += [f"      - {spec.unit_id_key}: '{unit}'" for unit in units]
    return "\n".join(lines) + "\n", unit_account


def last_polls(port: int) -> dict[str, float]:
    status, body = get(port, "/metrics", gz=True, decode=True)
    if status != 200:
        return {}
    return {
        labels["account"]: float(value)
        for _, labels, value in series(body.decode(), {"whatsapp_exporter_last_poll_timestamp_seconds"})
    }


# ---------------------------------------------------------------------------
# the run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="faulted duration (default 10)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--fault-share", type=float, default=0.10, help="sum of the random faults' probabilities (default 0.10)"
    )
    parser.add_argument(
        "--exclude",
        default="",
        help="comma-separated fault kinds or error codes to leave out ('auth': every auth and permission answer)",
    )
    parser.add_argument("--workdir", default=None, help="where the config and the exporter's log go")
    args = parser.parse_args(argv)
    exclude = frozenset(t.strip() for t in args.exclude.split(",") if t.strip())
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    progress = lambda msg: print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)  # noqa: E731

    # SIGTERM ends the run like Ctrl-C: the exporter and the emulators are stopped on the way out
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(f"soak: terminated by signal {signum}"))
    emu_proc, pipe, hello = emulators.start(args.seed, args.fault_share, exclude)

    def ask(*command: Any) -> Any:
        pipe.send(command)
        if not pipe.poll(300):
            raise RuntimeError(f"the emulator process did not answer {command[0]!r}")
        return pipe.recv()

    env: dict[str, str] = {}
    text, unit_account = config_text(hello, env)
    accounts = sorted(set(unit_account.values()))
    parse_config(text, source="<soak>", env=env)  # fail here, not in the subprocess
    config_path = workdir / "config.yaml"
    config_path.write_text(text)
    log_path = workdir / "exporter.log"
    port = free_port()
    numbers_total = sum(info["numbers"] for info in hello.values())
    progress(f"{numbers_total} numbers, {len(accounts)} accounts; workdir {workdir}")

    proc = exporter_process(ROOT, config_path, port, log_path, env, log_level="info")
    crashed_at: float | None = None
    rss: list[tuple[float, int]] = []
    threads: list[int] = []  # the exporter's thread count at each RSS sample
    scrapes = scrape_failures = 0
    settled = False
    mismatches: list[str] = []
    mismatched_accounts: collections.Counter[str] = collections.Counter()
    final_poll_success: dict[str, float] = {}
    exit_code: int | None = None
    faults_on = faults_off = 0.0
    expected: dict[str, tuple[str, str, dict[str, Any]]] = {}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if get(port, "/metrics", gz=True, timeout=5)[0] == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the exporter did not come up (exit {proc.poll()}); see {log_path}")
            time.sleep(0.2)

        faults_on = ask("faults_on")  # from the first poll on
        start = time.monotonic()
        next_rss = next_scrape = start
        last_report = start

        def sample_rss() -> None:
            nonlocal next_rss
            if time.monotonic() >= next_rss:
                value = rss_kib(proc.pid)
                if value is not None:
                    rss.append((time.monotonic() - start, value))
                    threads.append(threads_of(proc.pid) or 0)
                next_rss += RSS_EVERY

        while time.monotonic() - start < args.minutes * 60:
            if proc.poll() is not None:
                crashed_at = time.monotonic() - start
                break
            sample_rss()
            if time.monotonic() >= next_scrape:  # Prometheus
                scrapes += 1
                try:
                    if get(port, "/metrics", gz=True)[0] != 200:
                        scrape_failures += 1
                except OSError:
                    scrape_failures += 1
                next_scrape += SCRAPE_EVERY
            if time.monotonic() - last_report >= 60:
                last_report = time.monotonic()
                progress(
                    f"{(last_report - start) / 60:.0f} min: RSS {rss[-1][1] / 1024:.1f} MiB, {ask('count')} requests"
                )
            time.sleep(max(0.0, min(next_rss, next_scrape) - time.monotonic()))
        faulted_end = time.monotonic() - start

        # faults off, states pinned, two more polls of every account
        settle_start = time.monotonic()
        faults_off, expected = ask("faults_off")
        seen: dict[str, list[float]] = {a: [] for a in accounts}
        # long enough for an account paused after a credential refusal (the exporter holds it for 300 s) to
        # come back and poll twice
        settle_deadline = time.monotonic() + PAUSE + 3 * max(POLL.values()) + 60
        while crashed_at is None and time.monotonic() < settle_deadline:
            if proc.poll() is not None:
                crashed_at = time.monotonic() - start
                break
            sample_rss()
            try:
                for account, ts in last_polls(port).items():
                    if ts > faults_off and account in seen and ts not in seen[account]:
                        seen[account].append(ts)
            except OSError:
                pass
            if all(len(v) >= 2 for v in seen.values()):
                settled = True
                break
            time.sleep(2.0)
        settle_seconds = time.monotonic() - settle_start

        # every number's final state
        if crashed_at is None:
            text_metrics = get(port, "/metrics", gz=True, timeout=60, decode=True)[1].decode()
            exported: dict[str, dict[str, str]] = collections.defaultdict(dict)
            label_of = {family: label for _, family, label in COMPARED}
            for family, lbls, value in series(text_metrics, set(label_of)):
                if float(value) == 1:
                    exported[lbls["phone_number"]][family] = lbls[label_of[family]]
            for _, lbls, value in series(text_metrics, {"whatsapp_exporter_poll_success"}):
                final_poll_success[lbls["account"]] = float(value)
            for phone, (_provider, unit, state) in sorted(expected.items()):
                where = f"{phone} ({unit_account[unit]})"
                got = exported.get(phone)
                if got is None:
                    mismatches.append(f"{where}: missing from /metrics")
                    mismatched_accounts[unit_account[unit]] += 1
                    continue
                for attr, family, _ in COMPARED:
                    if got.get(family) != state.get(attr):
                        mismatches.append(f"{where}: {attr} {got.get(family)} != emulator {state.get(attr)}")
                        mismatched_accounts[unit_account[unit]] += 1
            mismatches += [f"{phone}: exported but in no emulator" for phone in sorted(set(exported) - set(expected))]
            sample_rss()
            value = rss_kib(proc.pid)
            if value is not None:
                rss.append((time.monotonic() - start, value))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                exit_code = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                exit_code = proc.wait()
        else:
            exit_code = proc.returncode
        report, emulator_warnings = ask("report", faults_on, faults_off)
        ask("stop")
        emu_proc.join(timeout=30)

    # ---------------------------------------------------------------- report
    total = sum(r["total"] for r in report.values())
    in_window = sum(r["window"] for r in report.values())
    faulted: collections.Counter[str] = collections.Counter()
    for r in report.values():
        faulted.update(r["faults"])
    budget_rows, over_detail = [], []
    over_total = 0
    for provider, r in report.items():
        for c in r["credentials"]:
            over_total += c["over"]
            over_detail += [f"- {d}" for d in c["details"]]
            budget_rows.append(
                f"| {provider} | {c['credential']} | {c['requests']} | {c['max']} | {c['budget']} | "
                f"{c['over']} | {c['throttled']} |"
            )

    levels: collections.Counter[str] = collections.Counter()
    messages: collections.Counter[tuple[str, str]] = collections.Counter()
    unhandled: list[str] = []
    with_exception: list[str] = []
    not_json = 0
    paused: list[str] = []
    for line in log_path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        if line.startswith("Traceback"):
            unhandled.append(line)
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            not_json += 1
            continue
        if not isinstance(rec, dict):
            not_json += 1
            continue
        level = str(rec.get("level"))
        levels[level] += 1
        messages[(level, re.sub(r"\d+", "N", re.sub(r'"[^"]*"', '"…"', str(rec.get("msg")))))] += 1
        if str(rec.get("msg")).startswith("credential refused"):
            paused.append(
                f"{rec.get('account')} at {rec.get('ts')} for {rec.get('paused_seconds')} s "
                f"({rec.get('reason')} {rec.get('code')})"
            )
        if "exception" in rec:
            with_exception.append(f"{level}: {rec.get('msg')}: {str(rec['exception']).splitlines()[-1][:200]}")
            if level in ("error", "critical"):
                unhandled.append(with_exception[-1])

    threads += [threads[-1] if threads else 0] * (len(rss) - len(threads))
    (workdir / "rss.tsv").write_text(
        "seconds\trss_kib\tthreads\n" + "".join(f"{t:.0f}\t{v}\t{n}\n" for (t, v), n in zip(rss, threads, strict=True))
    )
    minute2 = min(120.0, faulted_end / 2)
    baseline = next(((t, v) for t, v in rss if t >= minute2), None)
    end_rss = rss[-1] if rss else None
    drift = (end_rss[1] - baseline[1]) / baseline[1] * 100 if baseline and end_rss else math.nan
    middle = next(((t, v) for t, v in rss if t >= faulted_end / 2), None)
    late_drift = (end_rss[1] - middle[1]) / middle[1] * 100 if middle and end_rss else math.nan
    per_numbers = ", ".join(f"{LABELS[p]} {info['numbers']}" for p, info in hello.items())
    per_requests = ", ".join(f"{LABELS[p]} {r['total']}" for p, r in report.items())
    kinds = ", ".join(f"{k} {v}" for k, v in faulted.most_common())
    full_logs = [LABELS[p] for p, r in report.items() if r["full"]]
    by_account = (
        "; by account: " + ", ".join(f"{a} {n}" for a, n in mismatched_accounts.most_common())
        if mismatched_accounts
        else ""
    )
    crashed = f"crashed at {crashed_at:.0f} s" if crashed_at is not None else "ran throughout"
    poll_ok = bool(final_poll_success) and all(v == 1 for v in final_poll_success.values())

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    lines = [
        f"## Soak: {args.minutes:g} min with random faults (seed {args.seed}, fault share {args.fault_share:g}"
        f"{', excluded: ' + ', '.join(sorted(exclude)) if exclude else ''})",
        "",
        "| Check | Result | Verdict |",
        "|---|---|---|",
        f"| duration | {faulted_end / 60:.1f} min faulted + {settle_seconds / 60:.1f} min settling "
        f"({'two clean polls of every account' if settled else 'accounts did NOT all poll twice'}) | "
        f"{verdict(settled)} |",
        f"| numbers | {numbers_total} ({per_numbers}) | |",
        f"| requests | {total} ({per_requests}); {scrapes} gzip scrapes of /metrics, {scrape_failures} failed | "
        f"{verdict(scrape_failures == 0)} |",
        f"| faulted share | {sum(faulted.values()) / max(1, in_window) * 100:.1f} % of the {in_window} requests while "
        f"faults were on ({kinds}) | |",
        f"| exporter process | {crashed}; "
        f"exit code after SIGTERM {exit_code} | {verdict(crashed_at is None and exit_code == 0)} |",
        f"| RSS | at {baseline[0] / 60 if baseline else 0:.1f} min {baseline[1] / 1024 if baseline else 0:.1f} MiB, "
        f"at end {end_rss[1] / 1024 if end_rss else 0:.1f} MiB (drift {drift:+.1f} %), "
        f"max {max(v for _, v in rss) / 1024 if rss else 0:.1f} MiB; from {faulted_end / 120:.0f} min to the end "
        f"{late_drift:+.1f} %; {len(rss)} samples in rss.tsv | {verdict(abs(drift) < 10)} |",
        f"| one-second windows over budget | {over_total} (every credential, every arrival counted) | "
        f"{verdict(over_total == 0)} |",
        f"| final-state mismatches | {len(mismatches)} (of {len(expected)} numbers x 3 "
        f"fields){by_account}"
        f" | {verdict(not mismatches and crashed_at is None)} |",
        f"| accounts paused after a credential refusal | {'; '.join(paused) if paused else 'none'} | |",
        f"| unhandled exceptions in the log | {len(unhandled)} ({len(with_exception)} records with an exception "
        f"key at any level; {not_json} non-JSON lines) | {verdict(not unhandled and not not_json)} |",
        f"| poll_success at the end | {sum(1 for v in final_poll_success.values() if v == 1)} of "
        f"{len(final_poll_success)} accounts | {verdict(poll_ok)} |",
        f"| emulator warnings/errors | {len(emulator_warnings)} | {verdict(not emulator_warnings)} |",
        "",
        "| Provider | Credential | Requests | Max in any second | Budget | Seconds over | Throttled by emulator |",
        "|---|---|---|---|---|---|---|",
        *budget_rows,
        "",
        "Exporter log records by level: " + ", ".join(f"{k} {v}" for k, v in sorted(levels.items())),
        "",
        "| Level | Message | Count |",
        "|---|---|---|",
        *[f"| {lvl} | {msg} | {n} |" for (lvl, msg), n in messages.most_common(15)],
    ]
    if full_logs:
        lines += ["", f"Request logs full (oldest records dropped): {', '.join(full_logs)}"]
    if over_detail:
        lines += ["", "Seconds over budget:", *over_detail]
    if mismatches:
        lines += ["", "First mismatches:", *[f"- {m}" for m in mismatches[:15]]]
    if unhandled or with_exception:
        lines += ["", "Exceptions:", *[f"- {m}" for m in (unhandled + with_exception)[:15]]]
    if emulator_warnings:
        lines += ["", "Emulator log:", *[f"- {m}" for m in emulator_warnings[:10]]]
    lines += ["", f"Work directory (config, exporter log): {workdir}"]
    print("\n".join(lines))
    ok = (
        settled
        and crashed_at is None
        and exit_code == 0
        and not mismatches
        and not unhandled
        and not not_json
        and over_total == 0
        and abs(drift) < 10
        and scrape_failures == 0
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
