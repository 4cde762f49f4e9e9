"""The metric families: names, types and help texts, the public interface of dashboards and alert rules."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    name: str
    type: str
    help: str

    def header(self) -> str:
        return f"# HELP {self.name} {self.help}\n# TYPE {self.name} {self.type}\n"


CACHED = "Cached: refreshed by the poller, not by the scrape."

# Per-number families, in exposition order.
N_INFO = Family(
    "whatsapp_phone_number_info",
    "gauge",
    f"Descriptive labels of a WhatsApp Business number; always 1. {CACHED}",
)
N_STATUS = Family(
    "whatsapp_phone_number_status",
    "gauge",
    f"Provider status of the number: 1 for the current status, 0 for every other. {CACHED}",
)
N_QUALITY = Family(
    "whatsapp_phone_number_quality_rating",
    "gauge",
    f"Meta quality rating of the number: 1 for the current rating, 0 for every other. {CACHED}",
)
N_TIER = Family(
    "whatsapp_phone_number_messaging_limit_tier",
    "gauge",
    f"Messaging limit tier of the number: 1 for the current tier, 0 for every other. {CACHED}",
)
N_LIMIT = Family(
    "whatsapp_phone_number_messaging_limit",
    "gauge",
    "Business-initiated conversations allowed per 24 hours by the tier (+Inf when unlimited; absent when unknown). "
    f"{CACHED}",
)
N_CODE = Family(
    "whatsapp_phone_number_code_verification_status",
    "gauge",
    f"Code verification status of the number: 1 for the current status, 0 for every other. {CACHED}",
)
N_NAME = Family(
    "whatsapp_phone_number_name_status",
    "gauge",
    f"Review status of the number's display name: 1 for the current status, 0 for every other. {CACHED}",
)
N_NEW_NAME = Family(
    "whatsapp_phone_number_new_name_status",
    "gauge",
    f"Review status of a requested display-name change: 1 for the current status, 0 for every other. {CACHED}",
)
N_STATUS_CHANGED = Family(
    "whatsapp_phone_number_status_last_change_timestamp_seconds",
    "gauge",
    "Unix time when the exporter saw the status change (or first saw the number).",
)
N_QUALITY_CHANGED = Family(
    "whatsapp_phone_number_quality_rating_last_change_timestamp_seconds",
    "gauge",
    "Unix time when the exporter saw the quality rating change (or first saw the number).",
)
N_TIER_CHANGED = Family(
    "whatsapp_phone_number_messaging_limit_tier_last_change_timestamp_seconds",
    "gauge",
    "Unix time when the exporter saw the messaging limit tier change (or first saw the number).",
)
N_CAN_SEND = Family(
    "whatsapp_phone_number_can_send_message",
    "gauge",
    "Whether the number can send messages (Meta's health_status: the worst of the number and the WABA, business "
    "and app above it): 1 for the current state, 0 for every other; only numbers whose health was read. "
    f"{CACHED}",
)
N_THROUGHPUT = Family(
    "whatsapp_phone_number_throughput_level",
    "gauge",
    "Meta throughput level of the number: 1 for the current level, 0 for every other; "
    f"only for providers that report it. {CACHED}",
)
N_BLOCKING = Family(
    "whatsapp_phone_number_blocking_error_info",
    "gauge",
    "An error that Meta's health_status lists against the number or an entity above it (why it is BLOCKED); "
    f"always 1. {CACHED}",
)
NUMBER_FAMILIES: tuple[Family, ...] = (
    N_INFO,
    N_STATUS,
    N_QUALITY,
    N_TIER,
    N_LIMIT,
    N_CODE,
    N_NAME,
    N_NEW_NAME,
    N_STATUS_CHANGED,
    N_QUALITY_CHANGED,
    N_TIER_CHANGED,
    N_CAN_SEND,
    N_THROUGHPUT,
    N_BLOCKING,
)

W_INFO = Family("whatsapp_waba_info", "gauge", f"Descriptive labels of a WhatsApp Business Account; always 1. {CACHED}")
W_REVIEW = Family(
    "whatsapp_waba_account_review_status",
    "gauge",
    f"Meta review status of the WhatsApp Business Account: 1 for the current status, 0 for every other. {CACHED}",
)
W_ENTITY = Family(
    "whatsapp_entity_can_send_message",
    "gauge",
    "Meta health_status of an entity above the numbers (WABA, BUSINESS portfolio, APP): 1 for the current state, "
    f"0 for every other. {CACHED}",
)
W_RESTRICTION = Family(
    "whatsapp_waba_restriction_info",
    "gauge",
    "A restriction Meta put on the WhatsApp Business Account (account_update ACCOUNT_RESTRICTION webhook), "
    "present while it lasts; always 1.",
)
W_RESTRICTION_EXPIRY = Family(
    "whatsapp_waba_restriction_expiration_timestamp_seconds",
    "gauge",
    "Unix time at which a restriction of the WhatsApp Business Account expires, as Meta announced it.",
)
W_BAN = Family(
    "whatsapp_waba_ban_state",
    "gauge",
    "Last ban decision about the WhatsApp Business Account (account_update DISABLED_UPDATE webhook): 1 for the "
    "current state, 0 for every other; only WABAs Meta sent a decision about.",
)
W_BAN_DATE = Family(
    "whatsapp_waba_ban_timestamp_seconds",
    "gauge",
    "Unix time (midnight UTC of the date Meta gave) at which the ban decision takes or took effect.",
)
W_VIOLATIONS = Family(
    "whatsapp_waba_violations_total",
    "counter",
    "Policy violations Meta reported for the WhatsApp Business Account (account_update ACCOUNT_VIOLATION webhook), "
    "by violation type; kept across restarts.",
)
B_TIER = Family(
    "whatsapp_business_messaging_limit_tier",
    "gauge",
    "Messaging limit tier of the business portfolio, shared by all its numbers since October 2025: 1 for the "
    f"current tier, 0 for every other. {CACHED}",
)
B_LIMIT = Family(
    "whatsapp_business_messaging_limit",
    "gauge",
    "Business-initiated conversations the business portfolio may start per 24 hours (+Inf when unlimited; absent "
    f"when unknown). {CACHED}",
)
#: families of the entities above the numbers: WABAs, their health and webhook facts, business portfolios
WABA_FAMILIES = (
    W_INFO,
    W_REVIEW,
    W_ENTITY,
    W_RESTRICTION,
    W_RESTRICTION_EXPIRY,
    W_BAN,
    W_BAN_DATE,
    W_VIOLATIONS,
    B_TIER,
    B_LIMIT,
)

A_POLL_SUCCESS = Family(
    "whatsapp_exporter_poll_success",
    "gauge",
    "Whether the last poll of the account succeeded for every request (1) or not (0).",
)
A_SPACE_SUCCESS = Family(
    "whatsapp_exporter_space_poll_success",
    "gauge",
    "Whether the last poll of the space (CustSpaceId) succeeded (1) or not (0); "
    "a failed space keeps its last good data.",
)
A_LAST_SUCCESS = Family(
    "whatsapp_exporter_last_successful_poll_timestamp_seconds",
    "gauge",
    "Unix time of the end of the last fully successful poll of the account.",
)
A_LAST_POLL = Family(
    "whatsapp_exporter_last_poll_timestamp_seconds",
    "gauge",
    "Unix time of the end of the last poll of the account, successful or not.",
)
A_DURATION = Family("whatsapp_exporter_poll_duration_seconds", "gauge", "Duration of the last poll of the account.")
A_INTERVAL = Family("whatsapp_exporter_poll_interval_seconds", "gauge", "Configured poll interval of the account.")
A_BUDGET = Family(
    "whatsapp_exporter_api_qps_budget", "gauge", "Requests per second allowed to the credential the account signs with."
)
A_NUMBERS = Family("whatsapp_exporter_numbers", "gauge", "Numbers of the account exported from the last good data.")
A_REQUESTS = Family(
    "whatsapp_exporter_api_requests_total", "counter", "Provider API requests sent, by action (every attempt counts)."
)
A_ERRORS = Family(
    "whatsapp_exporter_api_request_errors_total",
    "counter",
    "Provider API requests that failed, by action and reason "
    "(throttled, auth, permission, request, upstream, timeout, parse).",
)
A_NUMBER_SUCCESS = Family(
    "whatsapp_exporter_number_poll_success",
    "gauge",
    "For numbers listed explicitly in the configuration: "
    "whether the last poll read the number (1) or the provider refused it (0).",
)
A_DROPPED = Family(
    "whatsapp_exporter_numbers_dropped",
    "gauge",
    "Numbers of the account left out of the metrics because the account's max_numbers cap was reached.",
)
A_USAGE = Family(
    "whatsapp_exporter_api_usage_ratio",
    "gauge",
    "Share of the provider's rate limit used, as the provider reports it (Meta's X-Business-Use-Case-Usage and "
    "X-App-Usage headers), 0 to 1; the provider throttles at 1.",
)
A_REGAIN = Family(
    "whatsapp_exporter_api_regain_access_seconds",
    "gauge",
    "Seconds until the provider lets the credential call again, as it last advertised (0 when not throttled).",
)
A_HEALTH_SWEEP = Family(
    "whatsapp_exporter_health_sweep_duration_seconds",
    "gauge",
    "How long the last complete sweep of health reads over the account's numbers took (CAMS "
    "GetWhatsappHealthStatus); longer than the configured health_poll_interval when the per-action budget is the "
    "limit.",
)
ACCOUNT_FAMILIES = (
    A_POLL_SUCCESS,
    A_SPACE_SUCCESS,
    A_LAST_SUCCESS,
    A_LAST_POLL,
    A_DURATION,
    A_INTERVAL,
    A_BUDGET,
    A_NUMBERS,
    A_REQUESTS,
    A_ERRORS,
    A_NUMBER_SUCCESS,
    A_DROPPED,
    A_USAGE,
    A_REGAIN,
    A_HEALTH_SWEEP,
)
RELOAD_OK = Family(
    "whatsapp_exporter_config_last_reload_successful",
    "gauge",
    "Whether the last configuration load or reload succeeded (1) or failed and the previous configuration is kept (0).",
)
RELOAD_TS = Family(
    "whatsapp_exporter_config_last_reload_success_timestamp_seconds",
    "gauge",
    "Unix time of the last successful configuration load or reload.",
)
SHARD = Family("whatsapp_exporter_shard_ordinal", "gauge", "This replica's shard (--shard), 0-based.")
TOTAL_SHARDS = Family("whatsapp_exporter_total_shards", "gauge", "The number of shards (--total-shards).")
BUILD_INFO = Family("whatsapp_exporter_build_info", "gauge", "Build information of the exporter; always 1.")
