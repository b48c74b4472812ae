"""Settings, loaded once from the environment (and optionally a TOML file) and validated at startup."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from domain.alerts import parse_routes
from domain.hooks import Endpoint, parse_endpoints, secret_problem
from domain.money import AmountError, parse_money
from domain.ratelimit import RateLimit, parse_rate_limit

SLACK_API_DEFAULT = "https://slack.com/api/"
STRIPE_API_DEFAULT = "https://api.stripe.com"
PAGERDUTY_EVENTS_DEFAULT = "https://events.pagerduty.com/v2/enqueue"

_CHANNEL_RE = re.compile(r"^[CGD][A-Z0-9]{2,}$")
_PRINCIPAL_RE = re.compile(r"^[USW][A-Z0-9]{2,}$")
_MIN_METRICS_TOKEN = 16


class ConfigError(Exception):
    """The configuration is incomplete or invalid."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("Configuration problems:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class Settings:
    """Everything the processes read from the environment, validated."""

    database_url: str | None = None
    data_dir: Path = Path(".data")
    slack_bot_token: str = ""
    slack_signing_secret: str = ""
    slack_app_token: str | None = None
    slack_api_url: str = SLACK_API_DEFAULT
    stripe_secret_key: str = ""
    stripe_webhook_secrets: tuple[str, ...] = ()
    stripe_api_base: str = STRIPE_API_DEFAULT
    stripe_timeout: float = 8.0
    stripe_max_network_retries: int = 2
    port: int = 3000
    approvals_channel: str | None = None
    refunds_feed_channel: str | None = None
    disputes_channel: str | None = None
    alerts_channel: str | None = None
    requesters: frozenset[str] | None = None
    approvers: frozenset[str] | None = None
    admins: frozenset[str] = frozenset()
    approval_threshold: Mapping[str, int] = field(default_factory=lambda: {"usd": 500000})
    second_approval_threshold: Mapping[str, int] = field(default_factory=dict)
    usergroup_cache_seconds: int = 300
    request_expiry: timedelta = timedelta(days=7)
    webhook_tolerance_seconds: int = 300
    webhook_max_attempts: int = 8
    slack_channel_pace_seconds: float = 1.0
    failure_rate_window: timedelta = timedelta(minutes=15)
    failure_rate_threshold: float = 0.05
    failure_rate_min_attempts: int = 20
    webhook_failure_threshold: float = 0.03
    # The worker's pace (issue #12).
    event_batch_size: int = 50
    event_threads: int = 2
    backlog_alert_seconds: float = 120.0
    event_retention_days: int = 90
    oncall_group: str | None = None
    alert_routes: Mapping[tuple[str, str], str] = field(default_factory=dict)
    # On-call that pages and escalates (issue #13).
    pagerduty_routing_key: str | None = None
    pagerduty_events_url: str = PAGERDUTY_EVENTS_DEFAULT
    incident_escalate: timedelta = timedelta(minutes=30)
    escalation_group: str | None = None
    outgoing_webhooks: tuple[Endpoint, ...] = ()
    outgoing_webhook_secret: str | None = None
    outgoing_webhook_max_attempts: int = 15
    webhook_silence: timedelta = timedelta(minutes=30)
    delivery_check_every: timedelta = timedelta(minutes=5)
    connect_lookup_accounts: int = 25
    db_pool_max: int = 8
    log_level: str = "INFO"
    metrics_token: str | None = None
    viewers: frozenset[str] | None = None
    api_rate_limit: RateLimit = field(default_factory=RateLimit)
    # Finance (issue #10): reconciliation reports and the monthly export.
    finance_channel: str | None = None
    reconciliation_tolerance: Mapping[str, int] = field(default_factory=lambda: {"usd": 500})

    @property
    def socket_mode(self) -> bool:
        """Socket Mode is used when an app-level token is configured."""
        return bool(self.slack_app_token)

    @property
    def finance_target(self) -> str | None:
        """Where finance reports go: FINANCE_CHANNEL, else ALERTS_CHANNEL."""
        return self.finance_channel or self.alerts_channel

    @property
    def stripe_livemode(self) -> bool:
        """Whether the Stripe key is a live-mode key (decides Dashboard links)."""
        return "_live_" in self.stripe_secret_key

    def __repr__(self) -> str:  # never print secrets, even by accident in a traceback
        return f"Settings(database={'external' if self.database_url else 'embedded'}, port={self.port})"


# What each process needs: the web process serves Slack and Stripe webhooks; the worker posts to
# Slack and calls Stripe; migrate and the CLI tools only need the database.
REQUIRED = {
    "web": ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"),
    "socket": ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "STRIPE_SECRET_KEY"),
    "worker": ("SLACK_BOT_TOKEN", "STRIPE_SECRET_KEY"),
    "db": (),
}

# Every variable we read, with the meaning shown by `refund-desk config`; the README mirrors it.
VARIABLES = {
    "DATABASE_URL": "Postgres URL; unset: embedded Postgres under REFUND_DESK_DATA_DIR",
    "REFUND_DESK_DATA_DIR": "folder for the embedded Postgres data (default .data)",
    "REFUND_DESK_CONFIG": "optional TOML file with any of these variables; the environment wins",
    "SLACK_BOT_TOKEN": "xoxb- bot token",
    "SLACK_SIGNING_SECRET": "signing secret of the Slack app (HTTP mode)",
    "SLACK_APP_TOKEN": "xapp- app-level token; when set, Socket Mode",
    "SLACK_API_URL": f"Slack Web API base URL (default {SLACK_API_DEFAULT})",
    "STRIPE_SECRET_KEY": "sk_ or rk_ key",
    "STRIPE_WEBHOOK_SECRET": "one or more whsec_ secrets, comma-separated",
    "STRIPE_API_BASE": f"Stripe API base URL (default {STRIPE_API_DEFAULT})",
    "STRIPE_TIMEOUT": "seconds before a Stripe call times out (default 8)",
    "STRIPE_MAX_NETWORK_RETRIES": "retries of failed Stripe calls (default 2)",
    "PORT": "HTTP port (default 3000)",
    "APPROVALS_CHANNEL": "channel ID for refund approvals",
    "REFUNDS_FEED_CHANNEL": "channel ID for refunds made outside the bot",
    "DISPUTES_CHANNEL": "channel ID for dispute and early-fraud-warning alerts",
    "ALERTS_CHANNEL": "channel ID for failure-rate, webhook and reconciliation alerts",
    "REQUESTERS": "user/user-group IDs who may ask for refunds, comma-separated; unset: everyone",
    "APPROVERS": "user/user-group IDs who may approve or reject, comma-separated",
    "ADMINS": "user/user-group IDs with every role, comma-separated",
    "APPROVAL_THRESHOLD": "above it, a second person approves; e.g. 5000 USD,4500 EUR (default 5000 USD)",
    "SECOND_APPROVAL_THRESHOLD": "above it, two different approvers; same format; unset: never",
    "USERGROUP_CACHE_SECONDS": "how long user-group members are cached (default 300)",
    "REQUEST_EXPIRY_HOURS": "pending refund requests expire after this many hours (default 168)",
    "WEBHOOK_TOLERANCE_SECONDS": "accepted age of a Stripe-Signature timestamp (default 300)",
    "WEBHOOK_MAX_ATTEMPTS": "processing attempts before an event is dead-lettered (default 8)",
    "SLACK_CHANNEL_PACE_SECONDS": "least time between two messages to one channel (default 1, Slack's limit)",
    "FAILURE_RATE_WINDOW_MINUTES": "sliding window of the failure-rate alerts (default 15)",
    "FAILURE_RATE_THRESHOLD": "percent of failed payments above which on-call is alerted (default 5)",
    "FAILURE_RATE_MIN_ATTEMPTS": "fewer payment attempts than this in the window never alert (default 20)",
    "WEBHOOK_FAILURE_THRESHOLD": "percent of webhook events failing to process that alerts (default 3)",
    "EVENT_BATCH_SIZE": "Stripe events the worker applies per transaction, 1 to 64 (default 50)",
    "EVENT_THREADS": "threads applying Stripe events in each worker process (default 2)",
    "BACKLOG_ALERT_SECONDS": "on-call is alerted when an urgent Stripe event has waited this long (default 120)",
    "EVENT_RETENTION_DAYS": "processed and ignored Stripe events are deleted after this many days (default 90)",
    "ONCALL_GROUP": "user group (S…) or user (U…) mentioned in reminders of unowned disputes",
    "ALERT_ROUTES": "per Connect account channels: acct_1=C0AAA,acct_2/disputes=C0BBB",
    "PAGERDUTY_ROUTING_KEY": "Events API v2 integration key (32 characters); set: every incident also pages",
    "PAGERDUTY_EVENTS_URL": f"PagerDuty Events API v2 enqueue URL (default {PAGERDUTY_EVENTS_DEFAULT})",
    "INCIDENT_ESCALATE_MINUTES": "an incident still open this long escalates once (default 30)",
    "ESCALATION_GROUP": "user group (S…) or user (U…) mentioned when an incident escalates",
    "OUTGOING_WEBHOOKS": "endpoints and the event types each wants: URL|type,type;URL|type (a type may end in .*)",
    "OUTGOING_WEBHOOK_SECRET": "whsec_ secret (base64 of 24-64 random bytes) signing outgoing hooks",
    "OUTGOING_WEBHOOK_MAX_ATTEMPTS": "delivery attempts of an outgoing hook before it is dead-lettered (default 15)",
    "WEBHOOK_SILENCE_MINUTES": "no Stripe webhook for this long while Stripe has new events alerts (default 30)",
    "DELIVERY_CHECK_MINUTES": "how often the worker asks Stripe for events it failed to deliver (default 5)",
    "CONNECT_LOOKUP_ACCOUNTS": "connected accounts a lookup tries for an id not on the platform (default 25)",
    "DB_POOL_MAX": "Postgres connections per process (default 8)",
    "LOG_LEVEL": "DEBUG, INFO, WARNING or ERROR (default INFO)",
    "METRICS_TOKEN": "bearer token GET /metrics requires (16+ printable ASCII characters); unset: /metrics is public",
    "VIEWERS": "user/user-group IDs who may see payment details (lookups, lists, Home tab); unset: everyone",
    "API_RATE_LIMIT": "requests per second per API key, and burst: e.g. 10/s burst 20 (the default)",
    "FINANCE_CHANNEL": "channel ID for reconciliation reports and the monthly export; unset: ALERTS_CHANNEL",
    "RECONCILIATION_TOLERANCE": "differences up to it are reported, not flagged; per currency, e.g. 5.00 USD,500 JPY "
    "(default 5.00 USD); a currency not listed has none",
}


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _read_config_file(path: str, problems: list[str]) -> dict[str, str]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        problems.append(f"REFUND_DESK_CONFIG: cannot read {path}: {exc.strerror}")
        return {}
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"REFUND_DESK_CONFIG: {path} is not valid TOML: {exc}")
        return {}
    unknown = sorted(k for k in data if k not in VARIABLES)
    if unknown:
        problems.append(f"REFUND_DESK_CONFIG: unknown setting(s) {', '.join(unknown)} in {path}")
    return {k: str(v) if not isinstance(v, list) else ",".join(map(str, v)) for k, v in data.items()}


def load_settings(env: Mapping[str, str] | None = None, *, require: str = "db") -> Settings:
    """Read and validate settings; raise ConfigError naming every missing or malformed variable."""
    env = dict(os.environ if env is None else env)
    problems: list[str] = []
    if env.get("REFUND_DESK_CONFIG"):
        env = {**_read_config_file(env["REFUND_DESK_CONFIG"], problems), **env}

    def get(name: str) -> str | None:
        value = env.get(name, "").strip()
        return value or None

    needed = REQUIRED["socket" if require == "web" and get("SLACK_APP_TOKEN") else require]
    for name in needed:
        if not get(name):
            problems.append(f"{name} is not set ({VARIABLES[name]})")

    def check_prefix(name: str, prefixes: tuple[str, ...]) -> None:
        value = get(name)
        if value and not value.startswith(prefixes):
            problems.append(f"{name} should start with {' or '.join(prefixes)}")

    check_prefix("SLACK_BOT_TOKEN", ("xoxb-",))
    check_prefix("SLACK_APP_TOKEN", ("xapp-",))
    check_prefix("STRIPE_SECRET_KEY", ("sk_", "rk_"))
    secrets = tuple(_split(get("STRIPE_WEBHOOK_SECRET") or ""))
    if any(not s.startswith("whsec_") for s in secrets):
        problems.append("STRIPE_WEBHOOK_SECRET: every secret should start with whsec_")

    def number(name: str, default: float, kind: type = int, low: float = 0, high: float = 1e12) -> Any:
        raw = get(name)
        if raw is None:
            return default
        try:
            value = kind(raw)
        except ValueError:
            problems.append(f"{name} should be a {'whole ' if kind is int else ''}number, got {raw!r}")
            return default
        if not low <= value <= high:
            problems.append(f"{name} should be between {low:g} and {high:g}, got {raw}")
            return default
        return value

    def channel(name: str) -> str | None:
        value = get(name)
        if value and not _CHANNEL_RE.match(value):
            problems.append(f"{name} should be a channel ID like C0123456789 (not a #name), got {value!r}")
        return value

    def principals(name: str) -> frozenset[str] | None:
        raw = get(name)
        if raw is None:
            return None
        ids = _split(raw)
        bad = [i for i in ids if not _PRINCIPAL_RE.match(i)]
        if bad:
            problems.append(f"{name}: {', '.join(bad)} should be user IDs (U…/W…) or user-group IDs (S…)")
        return frozenset(ids)

    def thresholds(name: str, default: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for part in _split(get(name) or default):
            try:
                money = parse_money(part)
            except AmountError as exc:
                problems.append(f"{name}: {exc}")
                continue
            out[money.currency] = money.amount
        return out

    def principal(name: str) -> str | None:
        value = get(name)
        if value and not _PRINCIPAL_RE.match(value):
            problems.append(f"{name} should be a user-group ID (S…) or user ID (U…), got {value!r}")
        return value

    def hooks() -> tuple[Endpoint, ...]:
        try:
            return parse_endpoints(get("OUTGOING_WEBHOOKS") or "")
        except ValueError as exc:
            problems.append(f"OUTGOING_WEBHOOKS: {exc}")
            return ()

    def hook_secret(endpoints: tuple[Endpoint, ...]) -> str | None:
        secret = get("OUTGOING_WEBHOOK_SECRET")
        if secret is None:
            if endpoints:
                problems.append("OUTGOING_WEBHOOK_SECRET is not set (OUTGOING_WEBHOOKS needs it to sign)")
            return None
        problem = secret_problem(secret)
        if problem:
            problems.append(f"OUTGOING_WEBHOOK_SECRET {problem}")
        return secret

    def pagerduty_key() -> str | None:
        key = get("PAGERDUTY_ROUTING_KEY")
        if key and not re.fullmatch(r"[A-Za-z0-9]{32}", key):
            problems.append(
                "PAGERDUTY_ROUTING_KEY should be the 32-character integration key of an Events API v2 integration"
            )
        return key

    def url(name: str, default: str) -> str:
        value = get(name) or default
        if not re.match(r"^https?://[^/\s]+", value):
            problems.append(f"{name} should be an http(s) URL, got {value!r}")
        return value

    def routes() -> dict[tuple[str, str], str]:
        try:
            parsed = parse_routes(get("ALERT_ROUTES") or "")
        except ValueError as exc:
            problems.append(f"ALERT_ROUTES: {exc}")
            return {}
        bad = [c for c in parsed.values() if not _CHANNEL_RE.match(c)]
        if bad:
            problems.append(f"ALERT_ROUTES: {', '.join(bad)} should be channel IDs like C0123456789")
        return parsed

    def rate_limit() -> RateLimit:
        try:
            return parse_rate_limit(get("API_RATE_LIMIT") or "10/s burst 20")
        except ValueError as exc:
            problems.append(f"API_RATE_LIMIT: {exc}")
            return RateLimit()

    log_level = (get("LOG_LEVEL") or "INFO").upper()
    if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        problems.append(f"LOG_LEVEL should be DEBUG, INFO, WARNING or ERROR, got {log_level!r}")

    metrics_token = get("METRICS_TOKEN")
    # What a bearer token may hold (RFC 6750) and what compare_digest compares; short ones are guessable.
    if metrics_token and not (len(metrics_token) >= _MIN_METRICS_TOKEN and all("!" <= c <= "~" for c in metrics_token)):
        problems.append(
            f"METRICS_TOKEN should be at least {_MIN_METRICS_TOKEN} printable ASCII characters without spaces"
        )

    settings = Settings(
        database_url=get("DATABASE_URL"),
        data_dir=Path(get("REFUND_DESK_DATA_DIR") or ".data"),
        slack_bot_token=get("SLACK_BOT_TOKEN") or "",
        slack_signing_secret=get("SLACK_SIGNING_SECRET") or "",
        slack_app_token=get("SLACK_APP_TOKEN"),
        slack_api_url=_with_slash(get("SLACK_API_URL") or SLACK_API_DEFAULT),
        stripe_secret_key=get("STRIPE_SECRET_KEY") or "",
        stripe_webhook_secrets=secrets,
        stripe_api_base=(get("STRIPE_API_BASE") or STRIPE_API_DEFAULT).rstrip("/"),
        stripe_timeout=number("STRIPE_TIMEOUT", 8.0, float, 0.1, 120),
        stripe_max_network_retries=number("STRIPE_MAX_NETWORK_RETRIES", 2, int, 0, 10),
        port=number("PORT", 3000, int, 1, 65535),
        approvals_channel=channel("APPROVALS_CHANNEL"),
        refunds_feed_channel=channel("REFUNDS_FEED_CHANNEL"),
        disputes_channel=channel("DISPUTES_CHANNEL"),
        alerts_channel=channel("ALERTS_CHANNEL"),
        requesters=principals("REQUESTERS"),
        approvers=principals("APPROVERS"),
        admins=principals("ADMINS") or frozenset(),
        approval_threshold=thresholds("APPROVAL_THRESHOLD", "5000 USD"),
        second_approval_threshold=thresholds("SECOND_APPROVAL_THRESHOLD", ""),
        usergroup_cache_seconds=number("USERGROUP_CACHE_SECONDS", 300, int, 0, 86400),
        request_expiry=timedelta(hours=number("REQUEST_EXPIRY_HOURS", 168, float, 0.01, 24 * 365)),
        webhook_tolerance_seconds=number("WEBHOOK_TOLERANCE_SECONDS", 300, int, 1, 3600),
        webhook_max_attempts=number("WEBHOOK_MAX_ATTEMPTS", 8, int, 1, 100),
        slack_channel_pace_seconds=number("SLACK_CHANNEL_PACE_SECONDS", 1.0, float, 0, 60),
        failure_rate_window=timedelta(minutes=number("FAILURE_RATE_WINDOW_MINUTES", 15, float, 1, 1440)),
        failure_rate_threshold=number("FAILURE_RATE_THRESHOLD", 5.0, float, 0, 100) / 100,
        failure_rate_min_attempts=number("FAILURE_RATE_MIN_ATTEMPTS", 20, int, 1, 1_000_000),
        webhook_failure_threshold=number("WEBHOOK_FAILURE_THRESHOLD", 3.0, float, 0, 100) / 100,
        # At most 64: Postgres caches 64 subtransactions (one savepoint per event) per session, and
        # beyond that every session's snapshots slow down.
        event_batch_size=number("EVENT_BATCH_SIZE", 50, int, 1, 64),
        event_threads=number("EVENT_THREADS", 2, int, 1, 16),
        backlog_alert_seconds=number("BACKLOG_ALERT_SECONDS", 120.0, float, 5, 86400),
        # Stripe keeps events 30 days and retries for 3: anything shorter could delete what a backfill needs.
        event_retention_days=number("EVENT_RETENTION_DAYS", 90, int, 31, 3650),
        oncall_group=principal("ONCALL_GROUP"),
        alert_routes=routes(),
        pagerduty_routing_key=pagerduty_key(),
        pagerduty_events_url=url("PAGERDUTY_EVENTS_URL", PAGERDUTY_EVENTS_DEFAULT),
        incident_escalate=timedelta(minutes=number("INCIDENT_ESCALATE_MINUTES", 30, float, 1, 7 * 1440)),
        escalation_group=principal("ESCALATION_GROUP"),
        outgoing_webhooks=(endpoints := hooks()),
        outgoing_webhook_secret=hook_secret(endpoints),
        outgoing_webhook_max_attempts=number("OUTGOING_WEBHOOK_MAX_ATTEMPTS", 15, int, 1, 100),
        webhook_silence=timedelta(minutes=number("WEBHOOK_SILENCE_MINUTES", 30, float, 1, 7 * 1440)),
        delivery_check_every=timedelta(minutes=number("DELIVERY_CHECK_MINUTES", 5, float, 0.5, 1440)),
        connect_lookup_accounts=number("CONNECT_LOOKUP_ACCOUNTS", 25, int, 0, 500),
        db_pool_max=number("DB_POOL_MAX", 8, int, 1, 200),
        log_level=log_level,
        metrics_token=metrics_token,
        viewers=principals("VIEWERS"),
        api_rate_limit=rate_limit(),
        finance_channel=channel("FINANCE_CHANNEL"),
        reconciliation_tolerance=thresholds("RECONCILIATION_TOLERANCE", "5.00 USD"),
    )
    if problems:
        raise ConfigError(problems)
    return settings


def _with_slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"
