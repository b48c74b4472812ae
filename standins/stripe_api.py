"""Local stand-in for the Stripe HTTP API (a v1 subset), driven by the real ``stripe`` SDK.

Stripe cannot be reached from tests or the demo, so this serves payment intents, charges,
refunds, disputes, balance transactions and events on 127.0.0.1 with Stripe's wire
conventions: bracketed form parameters, Stripe's error bodies and status codes, idempotency
keys, Connect scoping through ``Stripe-Account``, cursor pagination and signed webhooks.
Object shapes follow API version 2026-10-28.endive (charges do not embed ``refunds``;
payment intents carry ``latest_charge``).
"""

from __future__ import annotations

import base64
import copy
import fnmatch
import hashlib
import hmac
import http.client
import itertools
import json
import re
import secrets
import string
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from standins.stripe_ledger import LedgerMixin

__all__ = [
    "DEFAULT_API_VERSION",
    "StripeError",
    "StripeStandIn",
    "format_money",
    "new_id",
    "parse_form",
]

JSON = dict[str, Any]

DEFAULT_API_VERSION = "2026-10-28.endive"
IDEMPOTENCY_TTL = 24 * 3600.0  # Stripe prunes keys after 24 hours
MAX_IDEMPOTENCY_KEY = 255
MAX_EXPAND_DEPTH = 4  # Stripe refuses deeper expansions
WEBHOOK_MAX_TRIES = 5
WEBHOOK_FIRST_BACKOFF = 0.2
WEBHOOK_TIMEOUT = 5.0
DISPUTE_FEE = 1500  # US dispute fee, in cents

REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")
REFUND_ERROR_CODES = frozenset(
    {
        "balance_insufficient",
        "charge_disputed",
        "charge_already_refunded",
        "charge_expired_for_refund",
        "amount_too_large",
    }
)
REFUND_FAILURE_REASONS = frozenset(
    {
        "charge_for_pending_refund_disputed",
        "declined",
        "expired_or_canceled_card",
        "insufficient_funds",
        "lost_or_stolen_card",
        "merchant_request",
        "unknown",
    }
)
DISPUTE_STATUSES = frozenset(
    {
        "warning_needs_response",
        "warning_under_review",
        "warning_closed",
        "needs_response",
        "under_review",
        "won",
        "lost",
    }
)
DISPUTE_CLOSED = frozenset({"warning_closed", "won", "lost"})
DISPUTE_REASONS = frozenset(
    {
        "bank_cannot_process",
        "check_returned",
        "credit_not_processed",
        "customer_initiated",
        "debit_not_authorized",
        "duplicate",
        "fraudulent",
        "general",
        "incorrect_account_details",
        "insufficient_funds",
        "noncompliant",
        "product_not_received",
        "product_unacceptable",
        "subscription_canceled",
        "unrecognized",
    }
)
# Visa reason codes, enough for payment_method_details.card.network_reason_code.
_VISA_REASON_CODES = {
    "fraudulent": "10.4",
    "duplicate": "12.6.1",
    "product_not_received": "13.1",
    "subscription_canceled": "13.2",
    "product_unacceptable": "13.3",
    "credit_not_processed": "13.6",
}
# Fields that hold an id Stripe lets you expand (unknown ids are left as they are).
EXPANDABLE = frozenset(
    {
        "application",
        "application_fee",
        "balance_transaction",
        "charge",
        "customer",
        "failure_balance_transaction",
        "latest_charge",
        "on_behalf_of",
        "payment_intent",
        "payment_method",
        "review",
        "source",  # balance transactions: the charge, refund, dispute or payout behind it
        "source_transfer",
        "source_transfer_reversal",
        "transfer",
        "transfer_reversal",
        "balance_transactions",
        "refunds",  # charges: rendered on demand as a list, as the API does when expanded
        "data",  # lists: expand[]=data.charge
    }
)
_ZERO_DECIMAL = frozenset(
    {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"}
)
_THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})
_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "cad": "CA$", "aud": "A$"}
_CARD_BRANDS = {  # payment method brand -> (card object brand, country, funding)
    "visa": ("Visa", "US", "credit"),
    "mastercard": ("MasterCard", "US", "credit"),
    "amex": ("American Express", "US", "credit"),
    "discover": ("Discover", "US", "credit"),
    "jcb": ("JCB", "JP", "credit"),
    "unionpay": ("UnionPay", "CN", "debit"),
    "diners": ("Diners Club", "US", "credit"),
}
# Stripe's test PaymentMethod tokens accepted by POST /v1/payment_intents (confirm=true).
_TEST_PAYMENT_METHODS = {
    "pm_card_visa": ("visa", "4242", True),
    "pm_card_visa_debit": ("visa", "5556", True),
    "pm_card_mastercard": ("mastercard", "4444", True),
    "pm_card_amex": ("amex", "8431", True),
    "pm_card_chargeDeclined": ("visa", "0002", False),
    "pm_card_visa_chargeDeclined": ("visa", "0002", False),
}
_ALNUM = string.ascii_letters + string.digits
_SEGMENT = re.compile(r"\[([^\[\]]*)\]")
_INT = re.compile(r"-?\d+")
_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(\.[a-z]+)?")
_ACCOUNT = re.compile(r"acct_[A-Za-z0-9]+")
_NO_KEY_MESSAGE = (
    "You did not provide an API key. You need to provide your API key in the Authorization "
    "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See "
    "https://stripe.com/docs/api#authentication for details, or we can help at "
    "https://support.stripe.com/."
)
_BALANCE_INSUFFICIENT_MESSAGE = (
    "Insufficient funds in Stripe account. In test mode, you can add funds to your available "
    "balance (bypassing your pending balance) by creating a charge with 4000 0000 0000 0077 "
    "as the card number. You can use the /v1/balance endpoint to view your Stripe balance "
    "(for more details, see stripe.com/docs/api#balance)."
)


# --------------------------------------------------------------------------- helpers


def _rand(n: int, alphabet: str = _ALNUM) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def new_id(prefix: str) -> str:
    """A Stripe-looking id: prefix + 24 alphanumerics."""
    return f"{prefix}_{_rand(24)}"


def parse_form(pairs: Iterable[tuple[str, str]]) -> JSON:
    """Turn bracketed form pairs (``a[b][]=x``) into nested dicts and lists, as Stripe does.

    ``expand[]=a&expand[]=b`` and ``expand[0]=a&expand[1]=b`` both give a list; ``metadata``
    stays a dict even when its keys are digits.
    """
    root: JSON = {}
    for raw_key, value in pairs:
        base, bracket, rest = raw_key.partition("[")
        segments: list[str] = []
        if bracket:
            segments = _SEGMENT.findall(bracket + rest)
            if not base or "".join(f"[{s}]" for s in segments) != bracket + rest:
                base, segments = raw_key, []  # malformed brackets: keep the key literally
        keys = [base, *segments]
        node = root
        for i, key in enumerate(keys):
            if key == "":  # "[]" appends: give it the next free index
                n = len(node)
                while str(n) in node:
                    n += 1
                key = str(n)
            if i == len(keys) - 1:
                node[key] = value
            else:
                child = node.get(key)
                if not isinstance(child, dict):
                    child = node[key] = {}
                node = child
    return {k: _listify(v, k) for k, v in root.items()}


def _listify(node: Any, key: str) -> Any:
    if not isinstance(node, dict):
        return node
    out = {k: _listify(v, k) for k, v in node.items()}
    if key != "metadata" and out and all(k.isdigit() for k in out):
        return [out[k] for k in sorted(out, key=int)]
    return out


def _mask_key(key: str) -> str:
    """Mask an API key the way Stripe echoes it in errors: sk_test_****abcd."""
    match = re.match(r"([a-z]{2,4}_(?:test|live)_)(.*)", key, re.S)
    prefix, rest = (match.group(1), match.group(2)) if match else ("", key)
    if len(rest) <= 4:
        return prefix + "*" * len(rest)
    return prefix + "*" * (len(rest) - 4) + rest[-4:]


def _exponent(currency: str) -> int:
    if currency in _ZERO_DECIMAL:
        return 0
    return 3 if currency in _THREE_DECIMAL else 2


def format_money(amount: int, currency: str) -> str:
    """Amount in minor units -> "$12.34" (as Stripe's error messages show it)."""
    exp = _exponent(currency)
    whole, frac = divmod(abs(amount), 10**exp)
    text = f"{whole:,}" + (f".{frac:0{exp}d}" if exp else "")
    sign = "-" if amount < 0 else ""
    symbol = _SYMBOLS.get(currency)
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {currency.upper()}"


def _stripe_fee(amount: int, currency: str) -> int:
    # 2.9% + 30 minor units (scaled for 0/3-decimal currencies): close enough for net/fee math.
    fixed = {0: 0, 2: 30, 3: 300}[_exponent(currency)]
    return round(amount * 29 / 1000) + fixed


def _diff(old: JSON, new: JSON) -> JSON:
    """previous_attributes: old values of the keys that changed (nested dicts recurse)."""
    prev: JSON = {}
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        if isinstance(before, dict) and isinstance(after, dict):
            sub = _diff(before, after)
            if sub:
                prev[key] = sub
        else:
            prev[key] = copy.deepcopy(before)
    return prev


def _ordered(obj: JSON) -> JSON:
    """id and object first, then the rest alphabetically, like Stripe's JSON."""
    head = {k: obj[k] for k in ("id", "object") if k in obj}
    return head | {k: obj[k] for k in sorted(obj) if k not in head}


def _end_of_day(ts: int) -> int:
    return (ts // 86400) * 86400 + 86399


class StripeError(Exception):
    """A Stripe-shaped API error. ``saved=False`` marks validation errors, which Stripe's
    idempotency layer does not store (the endpoint never started executing)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        saved: bool = True,
        extra: JSON | None = None,
        headers: dict[str, str] | None = None,
        log_url: bool = True,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.param = param
        self.saved = saved
        self.extra = extra or {}
        self.headers = headers or {}
        self.log_url = log_url

    def body(self, request_id: str) -> JSON:
        """The ``{"error": {...}}`` body; Stripe leaves out null fields and sorts keys."""
        err: JSON = {"message": self.message, "type": self.type, **self.extra}
        if self.code:
            err["code"] = self.code
            err["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param:
            err["param"] = self.param
        if self.log_url:
            err["request_log_url"] = f"https://dashboard.stripe.com/test/logs/{request_id}?t={int(time.time())}"
        return {"error": dict(sorted(err.items()))}


def _invalid(message: str, param: str | None = None, code: str | None = None) -> StripeError:
    return StripeError(400, message, param=param, code=code, saved=False)


# --------------------------------------------------------------------------- request plumbing


@dataclass
class _Req:
    method: str
    path: str
    params: JSON
    headers: dict[str, str]
    request_id: str
    version: str
    api_key: str = ""
    account: str | None = None
    idempotency_key: str | None = None


@dataclass
class _Resp:
    status: int
    body: JSON
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Fault:
    kind: str  # "fail" | "hang"
    remaining: int
    path_prefix: str
    status: int = 500
    seconds: float = 0.0
    retry_after: float | None = None
    error_type: str = "api_error"
    code: str | None = None
    message: str | None = None


@dataclass
class _IdemEntry:
    fingerprint: str
    started: float
    request_id: str
    response: _Resp | None = None  # None while the first request is still executing


@dataclass
class _Route:
    method: str
    pattern: re.Pattern[str]
    handler: Callable[..., JSON]
    allowed: frozenset[str]


_LIST_PARAMS = frozenset({"limit", "starting_after", "ending_before", "expand", "created"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, standin: StripeStandIn, port: int) -> None:
        self.standin = standin
        super().__init__(("127.0.0.1", port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out hang up on us; that is expected, not worth a traceback.
        return


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # one request per connection: stop() then really refuses
    server_version = "nginx"
    sys_version = ""

    def do_GET(self) -> None:
        self.server.standin._serve(self)

    do_POST = do_GET
    do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        return  # keep test output clean; `requests` is the log


# --------------------------------------------------------------------------- the stand-in


class StripeStandIn(LedgerMixin):
    """An in-process fake of api.stripe.com/v1 for the real SDK.

    Use as ``with StripeStandIn() as s: StripeClient(key, base_addresses={"api": s.url})``.
    """

    def __init__(
        self,
        api_keys: Iterable[str] = ("sk_test_standin",),
        *,
        api_version: str = DEFAULT_API_VERSION,
    ) -> None:
        self.api_keys = set(api_keys)
        self.api_version = api_version
        self.latency: float = 0.0
        self.requests: list[JSON] = []
        self.events: list[JSON] = []
        self.webhook_attempts: list[JSON] = []  # one entry per delivery try
        self.internal_errors: list[str] = []  # tracebacks of bugs here, answered as 500s
        self.webhook_max_tries = WEBHOOK_MAX_TRIES  # tests lower it to give up on a dead endpoint fast
        self.platform_account = "acct_1StandInPlatform"  # named in permission errors, as Stripe does
        self._denied: dict[str, str] = {}  # path prefix -> the permission a restricted key lacks
        self._delivered: dict[str, bool | None] = {}  # event id -> delivered to every endpoint (None: trying)
        self._lock = threading.RLock()
        self._objects: dict[str, JSON] = {}
        self._scope: dict[str, str | None] = {}  # id -> connected account (None: platform)
        self._seq: dict[str, int] = {}  # id -> insertion order, breaks `created` ties
        self._counter = itertools.count()
        self._last_ts = 0
        self._init_ledger()  # payouts, fees, a settable clock, the balance-transaction index
        self._outcomes: dict[str, tuple[str | None, str]] = {}
        self._faults: list[_Fault] = []
        self._idem: dict[tuple[str, str | None, str], _IdemEntry] = {}
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._port = 0
        self._routes = self._build_routes()
        # Webhooks: own condition so the delivery thread never needs the state lock.
        self._wh_cond = threading.Condition()
        self._wh_queue: deque[tuple[JSON, str, str]] = deque()
        self._wh_endpoint: tuple[str, str] | None = None
        self._wh_thread: threading.Thread | None = None
        self._wh_stop = False

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """Base address for ``StripeClient(base_addresses={"api": url})``."""
        if not self._port:
            raise RuntimeError("StripeStandIn is not started")
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> StripeStandIn:
        """Listen on an ephemeral port (the same port again when restarted after stop())."""
        if self._server is not None:
            raise RuntimeError("already started")
        self._stopping.clear()
        self._server = _Server(self, self._port)
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"stripe-standin-{self._port}",
            daemon=True,
        )
        self._thread.start()
        with self._wh_cond:
            self._wh_stop = False
            if self._wh_endpoint is not None:
                self._start_webhook_thread()
        return self

    def stop(self) -> None:
        """Close the listening socket: new connections are refused ("Stripe is down")."""
        self._stopping.set()  # wakes hung/latent handlers, which then drop their connection
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        with self._wh_cond:
            self._wh_stop = True
            self._wh_cond.notify_all()
            wh_thread, self._wh_thread = self._wh_thread, None
        if wh_thread is not None:
            wh_thread.join(timeout=WEBHOOK_TIMEOUT + 1)

    def __enter__(self) -> StripeStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ fault injection

    def fail_next(
        self,
        n: int = 1,
        *,
        status: int = 500,
        path_prefix: str = "",
        retry_after: float | None = None,
        error_type: str = "api_error",
        code: str | None = None,
        message: str | None = None,
    ) -> None:
        """Answer the next ``n`` requests under ``path_prefix`` with ``status`` and a Stripe
        error body (before auth and idempotency, like a failing edge; never saved)."""
        with self._lock:
            self._faults.append(
                _Fault(
                    "fail",
                    n,
                    path_prefix,
                    status=status,
                    retry_after=retry_after,
                    error_type=error_type,
                    code=code,
                    message=message,
                )
            )

    def hang_next(self, n: int = 1, seconds: float = 30.0, path_prefix: str = "") -> None:
        """Make the next ``n`` matching requests wait ``seconds`` before being processed."""
        with self._lock:
            self._faults.append(_Fault("hang", n, path_prefix, seconds=seconds))

    def clear_faults(self) -> None:
        """Forget pending fail_next/hang_next injections."""
        with self._lock:
            self._faults.clear()

    def deny(self, path_prefix: str, permission: str) -> None:
        """Act as a restricted key without `permission` (e.g. 'rak_dispute_read') for paths under the prefix:
        403 with Stripe's message naming it, until allow()."""
        with self._lock:
            self._denied[path_prefix] = permission

    def allow(self) -> None:
        """Every permission again."""
        with self._lock:
            self._denied.clear()

    def add_account(
        self,
        account_id: str | None = None,
        *,
        name: str | None = None,
        charges_enabled: bool = True,
        payouts_enabled: bool = True,
    ) -> JSON:
        """Seed a connected account of the platform (GET /v1/accounts lists it; Stripe-Account reaches it)."""
        with self._lock:
            account = _ordered(
                {
                    "id": account_id or new_id("acct"),
                    "object": "account",
                    "business_profile": {"name": name, "url": None},
                    "capabilities": {"card_payments": "active", "transfers": "active"},
                    "charges_enabled": charges_enabled,
                    "country": "US",
                    "created": self._tick(),
                    "default_currency": "usd",
                    "details_submitted": True,
                    "email": None,
                    "metadata": {},
                    "payouts_enabled": payouts_enabled,
                    "requirements": {
                        "current_deadline": None,
                        "currently_due": [],
                        "disabled_reason": None,
                        "errors": [],
                        "eventually_due": [],
                        "past_due": [],
                        "pending_verification": [],
                    },
                    "type": "standard",
                }
            )
            self._store(account, None)
            return copy.deepcopy(account)

    def refund_outcome_for_charge(
        self, charge_id: str, *, error_code: str | None = None, refund_status: str = "pending"
    ) -> None:
        """Decide what POST /v1/refunds does for this charge from now on."""
        if error_code is not None and error_code not in REFUND_ERROR_CODES:
            raise ValueError(f"error_code must be one of {sorted(REFUND_ERROR_CODES)}")
        if refund_status not in ("pending", "succeeded"):
            raise ValueError("refund_status must be 'pending' or 'succeeded'")
        with self._lock:
            self._outcomes[charge_id] = (error_code, refund_status)

    # ------------------------------------------------------------------ inspection

    def object(self, obj_id: str) -> JSON:
        """Current state of any stored object (a deep copy). KeyError when unknown."""
        with self._lock:
            return copy.deepcopy(self._objects[obj_id])

    # ------------------------------------------------------------------ seeding

    def add_payment(
        self,
        amount: int,
        currency: str = "usd",
        *,
        email: str | None = "jenny@example.com",
        captured: bool = True,
        status: str = "succeeded",
        account: str | None = None,
        last4: str = "4242",
        brand: str = "visa",
        description: str | None = None,
        metadata: dict | None = None,
        payment_intent: bool = True,
        created: int | None = None,
    ) -> JSON:
        """Seed a customer-less PaymentIntent + Charge (+ balance transaction) and emit the
        events Stripe would. Returns ``{"payment_intent": pi or None, "charge": charge}``."""
        if not isinstance(amount, int) or isinstance(amount, bool) or amount < 1:
            raise ValueError("amount must be a positive integer (minor units)")
        if status not in ("succeeded", "failed", "pending"):
            raise ValueError("status must be 'succeeded', 'failed' or 'pending'")
        if brand not in _CARD_BRANDS:
            raise ValueError(f"brand must be one of {sorted(_CARD_BRANDS)}")
        with self._lock:
            pi, charge, _pm = self._new_payment(
                amount,
                currency.lower(),
                billing_email=email,
                receipt_email=email,
                captured=captured,
                status=status,
                account=account,
                last4=last4,
                brand=brand,
                description=description,
                metadata={str(k): str(v) for k, v in (metadata or {}).items()},
                with_intent=payment_intent,
                created=created,
                req=None,
            )
            return {"payment_intent": copy.deepcopy(pi), "charge": copy.deepcopy(charge)}

    def add_dispute(
        self,
        charge_id: str,
        *,
        amount: int | None = None,
        reason: str = "fraudulent",
        status: str = "needs_response",
        due_in_days: int = 7,
        account: str | None = None,
    ) -> JSON:
        """Open a dispute on a charge (sets ``charge.disputed``) and emit its events.

        ``warning_*`` statuses are inquiries: no funds withdrawn, charge still refundable.
        """
        if status not in DISPUTE_STATUSES:
            raise ValueError(f"status must be one of {sorted(DISPUTE_STATUSES)}")
        if reason not in DISPUTE_REASONS:
            raise ValueError(f"reason must be one of {sorted(DISPUTE_REASONS)}")
        with self._lock:
            charge = self._objects.get(charge_id)
            if charge is None or charge["object"] != "charge":
                raise ValueError(f"No such charge: {charge_id!r}")
            scope = self._scope[charge_id]
            if account is not None and account != scope:
                raise ValueError(f"{charge_id} belongs to account {scope!r}, not {account!r}")
            if charge["status"] != "succeeded" or not charge["captured"]:
                raise ValueError("only captured, succeeded charges can be disputed")
            if any(o["object"] == "dispute" and o["charge"] == charge_id for o in self._objects.values()):
                raise ValueError(f"{charge_id} already has a dispute (Stripe allows one)")
            amount = charge["amount"] if amount is None else amount
            now = self._tick()
            inquiry = status.startswith("warning_")
            opening = "warning_needs_response" if inquiry else "needs_response"
            initial = opening if status in DISPUTE_CLOSED else status
            dispute_id = new_id("dp")
            code = _VISA_REASON_CODES.get(reason, "13.1" if reason != "general" else "10.4")
            card = charge["payment_method_details"]["card"]
            dispute = _ordered(
                {
                    "id": dispute_id,
                    "object": "dispute",
                    "amount": amount,
                    "balance_transactions": [],
                    "charge": charge_id,
                    "created": now,
                    "currency": charge["currency"],
                    "enhanced_eligibility_types": [],
                    "evidence": _empty_evidence(),
                    "evidence_details": {
                        "due_by": _end_of_day(now + due_in_days * 86400),
                        "enhanced_eligibility": {},
                        "has_evidence": False,
                        "past_due": False,
                        "submission_count": 0,
                    },
                    "intended_submission_method": None,
                    "is_charge_refundable": inquiry,
                    "livemode": False,
                    "metadata": {},
                    "network_reason_code": code,
                    "payment_intent": charge["payment_intent"],
                    "payment_method_details": {
                        "card": {
                            "brand": card["brand"],
                            "case_type": "inquiry" if inquiry else "chargeback",
                            "network": card["network"],
                            "network_reason_code": code,
                        },
                        "type": "card",
                    },
                    "reason": reason,
                    "status": initial,
                }
            )
            if not inquiry:
                dispute["balance_transactions"].append(
                    self._dispute_txn(dispute, -amount, DISPUTE_FEE, "withdrawal", now, scope)
                )
            self._store(dispute, scope)
            charge["disputed"] = True  # flips silently, as on Stripe (no charge.updated)
            self._emit("charge.dispute.created", dispute, scope, None)
            if not inquiry:
                self._emit("charge.dispute.funds_withdrawn", dispute, scope, None)
            if status != initial:
                self._set_dispute_status(dispute, status, scope)
            return copy.deepcopy(dispute)

    def update_dispute(self, dispute_id: str, *, status: str) -> JSON:
        """Move a dispute to another status (charge.dispute.updated / .closed events)."""
        if status not in DISPUTE_STATUSES:
            raise ValueError(f"status must be one of {sorted(DISPUTE_STATUSES)}")
        with self._lock:
            dispute = self._objects.get(dispute_id)
            if dispute is None or dispute["object"] != "dispute":
                raise ValueError(f"No such dispute: {dispute_id!r}")
            self._set_dispute_status(dispute, status, self._scope[dispute_id])
            return copy.deepcopy(dispute)

    def settle_refund(self, refund_id: str, status: str = "succeeded", failure_reason: str | None = None) -> JSON:
        """Move a pending refund to succeeded/failed/canceled and emit the matching events.

        ``failed`` also works on a succeeded refund (card refunds can fail later on Stripe).
        """
        if status not in ("succeeded", "failed", "canceled"):
            raise ValueError("status must be 'succeeded', 'failed' or 'canceled'")
        if failure_reason is not None and failure_reason not in REFUND_FAILURE_REASONS:
            raise ValueError(f"failure_reason must be one of {sorted(REFUND_FAILURE_REASONS)}")
        with self._lock:
            refund = self._objects.get(refund_id)
            if refund is None or refund["object"] != "refund":
                raise ValueError(f"No such refund: {refund_id!r}")
            allowed = {
                "succeeded": ("pending", "requires_action"),
                "failed": ("pending", "requires_action", "succeeded"),
                "canceled": ("pending", "requires_action"),
            }[status]
            if refund["status"] not in allowed:
                raise ValueError(f"cannot move a {refund['status']} refund to {status}")
            self._settle(refund, status, failure_reason or "unknown", None)
            return copy.deepcopy(refund)

    # ------------------------------------------------------------------ webhooks

    def deliver_webhooks(self, url: str, secret: str) -> None:
        """POST every event emitted from now on to ``url``, signed like Stripe, in order."""
        with self._wh_cond:
            self._wh_endpoint = (url, secret)
            if self._server is not None:
                self._start_webhook_thread()

    def flush_webhooks(self, timeout: float = 10.0) -> None:
        """Block until every queued event was delivered (or given up on)."""
        with self._wh_cond:
            done = self._wh_cond.wait_for(lambda: not self._wh_queue or self._wh_stop, timeout)
        if not done:
            raise TimeoutError(f"webhook queue not drained after {timeout} s")

    def _start_webhook_thread(self) -> None:
        if self._wh_thread is None or not self._wh_thread.is_alive():
            self._wh_thread = threading.Thread(target=self._webhook_loop, name="stripe-standin-webhooks", daemon=True)
            self._wh_thread.start()

    def _webhook_loop(self) -> None:
        while True:
            with self._wh_cond:
                self._wh_cond.wait_for(lambda: self._wh_queue or self._wh_stop)
                if self._wh_stop:
                    return
                event, url, secret = self._wh_queue[0]
            self._deliver(event, url, secret)
            with self._wh_cond:
                self._wh_queue.popleft()
                self._wh_cond.notify_all()

    def _deliver(self, event: JSON, url: str, secret: str) -> None:
        body = json.dumps(event, indent=2)
        delay = WEBHOOK_FIRST_BACKOFF
        tries = max(1, self.webhook_max_tries)
        for attempt in range(1, tries + 1):
            ts = int(time.time())
            sig = hmac.new(secret.encode(), f"{ts}.{body}".encode(), hashlib.sha256).hexdigest()
            status, error = _post(url, body, f"t={ts},v1={sig}")
            self.webhook_attempts.append(
                {
                    "event": event["id"],
                    "type": event["type"],
                    "attempt": attempt,
                    "status": status,
                    "error": error,
                    "url": url,
                }
            )
            if status is not None and 200 <= status < 300:
                self._delivered[event["id"]] = True
                return
            if attempt == tries or self._stopping.wait(delay):
                self._delivered[event["id"]] = False  # what `delivery_success=false` lists from now on
                return
            delay *= 2

    # ------------------------------------------------------------------ HTTP entry point

    def _serve(self, h: _Handler) -> None:
        split = urlsplit(h.path)
        headers = {k.lower(): v for k, v in h.headers.items()}
        try:
            length = int(headers.get("content-length") or 0)
        except ValueError:
            length = 0
        raw = h.rfile.read(length) if length > 0 else b""
        pairs = parse_qsl(split.query, keep_blank_values=True)
        if raw:
            pairs += parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)
        version = headers.get("stripe-version") or self.api_version
        req = _Req(
            method=h.command,
            path=split.path,
            params=parse_form(pairs),
            headers=headers,
            request_id="req_" + _rand(14),
            version=version,
        )
        resp = self._process(req)
        # Log before answering, so a client that got its answer always finds it logged.
        with self._lock:
            self.requests.append(
                {
                    "method": req.method,
                    "path": req.path,
                    "params": req.params,
                    "headers": headers,
                    "status": resp.status if resp else None,
                    "request_id": req.request_id,
                    "idempotent_replayed": bool(resp and "Idempotent-Replayed" in resp.headers),
                    "response_headers": dict(resp.headers) if resp else {},
                }
            )
        if resp is not None:
            _write(h, req, resp)

    def _process(self, req: _Req) -> _Resp | None:
        """Faults, auth, routing, idempotency, execution. None means: drop the connection."""
        hang, fail = self._take_faults(req.path)
        if hang is not None and self._stopping.wait(hang.seconds):
            return None
        if fail is not None:
            return self._answer(self._fault_response(fail, req))
        try:
            self._authenticate(req)
            route, ids = self._route(req)
            self._check_permission(req)
        except StripeError as exc:
            return self._answer(_error(exc, req))
        key = req.headers.get("idempotency-key")
        if req.method != "POST" or not key:
            return self._answer(self._execute(route, ids, req)[0])
        req.idempotency_key = key
        if len(key) > MAX_IDEMPOTENCY_KEY:
            exc = _invalid(f"Invalid idempotency_key: must be at most {MAX_IDEMPOTENCY_KEY} characters long")
            return self._answer(_error(exc, req))
        scope = (req.api_key, req.account, key)
        early = self._claim_key(scope, req, key)
        if early is not None:  # replay, conflict or mismatch: nothing executes
            return self._answer(early)
        resp, save = self._execute(route, ids, req)
        resp.headers["Idempotency-Key"] = key
        # The in-flight window spans the latency, so concurrent retries really see 409s.
        answered = self._answer(resp)
        with self._lock:
            if save:
                self._idem[scope].response = copy.deepcopy(resp)
            else:
                self._idem.pop(scope, None)
        return answered

    def _claim_key(self, scope: tuple[str, str | None, str], req: _Req, key: str) -> _Resp | None:
        """Mark the key in flight (None) or return what Stripe answers instead."""
        fingerprint = json.dumps([req.method, req.path, req.params], sort_keys=True)
        with self._lock:
            now = time.monotonic()
            entry = self._idem.get(scope)
            if entry is not None and now - entry.started > IDEMPOTENCY_TTL:
                entry = None
            if entry is None:
                self._idem[scope] = _IdemEntry(fingerprint, now, req.request_id)
                return None
            if entry.response is None:
                conflict = StripeError(
                    409,
                    "There is currently another in-progress request using this idempotent key "
                    "(that probably means you submitted twice, and the other request is still "
                    f"going through): {key}. Please try again later.",
                    type_="idempotency_error",
                    code="idempotency_key_in_use",
                    headers={"Stripe-Should-Retry": "true"},
                )
                return _error(conflict, req)
            if entry.fingerprint != fingerprint:
                mismatch = StripeError(
                    400,
                    "Keys for idempotent requests can only be used with the same parameters "
                    "they were first used with. Try using a key other than "
                    f"'{key}' if you meant to execute a different request.",
                    type_="idempotency_error",
                )
                return _error(mismatch, req)
            saved = entry.response
            return _Resp(
                saved.status,
                copy.deepcopy(saved.body),
                {**saved.headers, "Idempotent-Replayed": "true", "Original-Request": entry.request_id},
            )

    def _answer(self, resp: _Resp) -> _Resp | None:
        if self.latency > 0 and self._stopping.wait(self.latency):
            return None
        return resp

    def _take_faults(self, path: str) -> tuple[_Fault | None, _Fault | None]:
        taken: dict[str, _Fault | None] = {"hang": None, "fail": None}
        with self._lock:
            for fault in self._faults:
                if taken[fault.kind] is None and path.startswith(fault.path_prefix):
                    fault.remaining -= 1
                    taken[fault.kind] = fault
            self._faults = [f for f in self._faults if f.remaining > 0]
        return taken["hang"], taken["fail"]

    def _fault_response(self, fault: _Fault, req: _Req) -> _Resp:
        headers: dict[str, str] = {}
        if fault.status == 429:
            error_type = "rate_limit_error" if fault.error_type == "api_error" else fault.error_type
            code = fault.code or "rate_limit"
            message = fault.message or (
                "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits."
            )
        else:
            error_type, code = fault.error_type, fault.code
            message = fault.message or ("An unknown error occurred" if fault.status >= 500 else "Request failed")
        if fault.retry_after is not None:
            ra = fault.retry_after
            headers["Retry-After"] = str(int(ra)) if float(ra).is_integer() else str(ra)
        exc = StripeError(fault.status, message, type_=error_type, code=code, headers=headers)
        return _error(exc, req)

    def _authenticate(self, req: _Req) -> None:
        auth = req.headers.get("authorization", "").strip()
        scheme, _, cred = auth.partition(" ")
        key = ""
        if scheme.lower() == "bearer":
            key = cred.strip()
        elif scheme.lower() == "basic":  # curl -u sk_test_...: also accepted by Stripe
            try:
                key = base64.b64decode(cred.strip()).decode().partition(":")[0]
            except ValueError:
                key = ""
        if not key:
            raise StripeError(401, _NO_KEY_MESSAGE, log_url=False)
        if key not in self.api_keys:
            raise StripeError(401, f"Invalid API Key provided: {_mask_key(key)}", log_url=False)
        req.api_key = key
        account = req.headers.get("stripe-account")
        if account is not None:
            account = account.strip()
            if not _ACCOUNT.fullmatch(account):
                raise StripeError(
                    403,
                    f"The provided key '{_mask_key(key)}' does not have access to account "
                    f"'{account}' (or that account does not exist). Application access may "
                    "have been revoked.",
                    code="account_invalid",
                )
            req.account = account
        if not _VERSION.fullmatch(req.version):
            req.version = self.api_version
            raise _invalid(f"Invalid Stripe API version: {req.headers.get('stripe-version')}")

    def _route(self, req: _Req) -> tuple[_Route, dict[str, str]]:
        for route in self._routes:
            match = route.pattern.fullmatch(req.path)
            if match and route.method == req.method:
                unknown = sorted(set(req.params) - route.allowed)
                if unknown:
                    raise _invalid(f"Received unknown parameter: {unknown[0]}", unknown[0], "parameter_unknown")
                return route, match.groupdict()
        raise StripeError(
            404,
            f"Unrecognized request URL ({req.method}: {req.path}). Please see "
            "https://stripe.com/docs or we can help at https://support.stripe.com/.",
            log_url=False,
        )

    def _execute(self, route: _Route, ids: dict[str, str], req: _Req) -> tuple[_Resp, bool]:
        """Run the endpoint under the state lock; returns (response, save for idempotency)."""
        with self._lock:
            try:
                return _Resp(200, route.handler(req, **ids)), True
            except StripeError as exc:
                return _error(exc, req), exc.saved
            except Exception:  # a bug here: answer like Stripe's 500, keep the traceback
                self.internal_errors.append(traceback.format_exc())
                exc = StripeError(500, "An unknown error occurred", type_="api_error")
                return _error(exc, req), True

    # ------------------------------------------------------------------ routes

    def _build_routes(self) -> list[_Route]:
        def route(method: str, path: str, handler: Callable[..., JSON], *allowed: str) -> _Route:
            pattern = re.compile(path.replace("{id}", "(?P<id>[^/]+)"))
            return _Route(method, pattern, handler, frozenset(allowed))

        def retrieve(kind: str) -> Callable[..., JSON]:
            def handler(req: _Req, id: str) -> JSON:
                _check_expand(req.params, list_endpoint=False)
                return self._render(self._lookup(id, kind, req.account, "id"), req)

            return handler

        return [
            route("GET", "/v1/payment_intents", self._list_payment_intents, *_LIST_PARAMS, "customer"),
            route(
                "POST",
                "/v1/payment_intents",
                self._create_payment_intent,
                "amount",
                "currency",
                "receipt_email",
                "description",
                "metadata",
                "confirm",
                "capture_method",
                "payment_method",
                "payment_method_types",
                "customer",
                "expand",
                "statement_descriptor_suffix",
            ),
            route("GET", "/v1/payment_intents/{id}", retrieve("payment_intent"), "expand", "client_secret"),
            route(
                "GET", "/v1/charges", self._list_charges, *_LIST_PARAMS, "payment_intent", "customer", "transfer_group"
            ),
            route("GET", "/v1/charges/{id}", retrieve("charge"), "expand"),
            route("GET", "/v1/refunds", self._list_refunds, *_LIST_PARAMS, "charge", "payment_intent"),
            route(
                "POST",
                "/v1/refunds",
                self._create_refund,
                "charge",
                "payment_intent",
                "amount",
                "reason",
                "metadata",
                "expand",
                "instructions_email",
                "refund_application_fee",
                "reverse_transfer",
                "origin",
                "currency",
                "customer",
            ),
            route("GET", "/v1/refunds/{id}", retrieve("refund"), "expand"),
            route("POST", "/v1/refunds/{id}", self._update_refund, "metadata", "expand"),
            route("POST", "/v1/refunds/{id}/cancel", self._cancel_refund, "expand"),
            route("GET", "/v1/disputes", self._list_disputes, *_LIST_PARAMS, "charge", "payment_intent"),
            route("GET", "/v1/disputes/{id}", retrieve("dispute"), "expand"),
            route(
                "GET",
                "/v1/balance_transactions",
                self._list_balance_transactions,
                *_LIST_PARAMS,
                "source",
                "type",
                "currency",
                "payout",
            ),
            route("GET", "/v1/balance_transactions/{id}", retrieve("balance_transaction"), "expand"),
            route("GET", "/v1/payouts", self._list_payouts, *_LIST_PARAMS, "status", "destination", "arrival_date"),
            route("GET", "/v1/payouts/{id}", retrieve("payout"), "expand"),
            route("GET", "/v1/events", self._list_events, *_LIST_PARAMS, "type", "types", "delivery_success"),
            route("GET", "/v1/events/{id}", retrieve("event"), "expand"),
            route("GET", "/v1/accounts", self._list_accounts, *_LIST_PARAMS),
            route("GET", "/v1/accounts/{id}", self._retrieve_account, "expand"),
            route("GET", "/v1/payment_methods/{id}", retrieve("payment_method"), "expand"),
        ]

    # ------------------------------------------------------------------ state helpers

    def _tick(self) -> int:
        # Wall clock (or set_clock's), but never going backwards: event order == created order.
        self._last_ts = max(self._last_ts, int(self._now()))
        return self._last_ts

    def _store(self, obj: JSON, account: str | None) -> None:
        self._objects[obj["id"]] = obj
        self._scope[obj["id"]] = account
        self._seq[obj["id"]] = next(self._counter)
        if obj.get("object") == "balance_transaction":
            self._ledger_add(obj)

    def _visible(self, obj_id: str, account: str | None) -> JSON | None:
        obj = self._objects.get(obj_id)
        if obj is None or self._scope[obj_id] != account:
            return None
        return obj

    def _lookup(self, obj_id: Any, kind: str, account: str | None, param: str | None) -> JSON:
        obj = self._visible(obj_id, account) if isinstance(obj_id, str) else None
        if obj is None or obj.get("object") != kind:
            label = "PaymentMethod" if kind == "payment_method" else kind
            raise StripeError(404, f"No such {label}: '{obj_id}'", code="resource_missing", param=param)
        return obj

    def _emit(
        self,
        type_: str,
        obj: JSON,
        account: str | None,
        req: _Req | None,
        previous: JSON | None = None,
    ) -> JSON:
        with self._wh_cond:
            endpoint = self._wh_endpoint
        event: JSON = {"id": new_id("evt"), "object": "event"}
        if account is not None:
            event["account"] = account
        event |= {
            "api_version": self.api_version,
            "created": self._tick(),
            "data": {"object": copy.deepcopy(obj)},
            "livemode": False,
            "pending_webhooks": 1 if endpoint else 0,
            "request": {
                "id": req.request_id if req else None,
                "idempotency_key": req.idempotency_key if req else None,
            },
            "type": type_,
        }
        if previous is not None:
            event["data"]["previous_attributes"] = previous
        self._store(event, account)
        self.events.append(event)
        # With no endpoint there is nothing to deliver: Stripe counts that as delivered.
        self._delivered[event["id"]] = None if endpoint is not None else True
        if endpoint is not None:
            with self._wh_cond:
                self._wh_queue.append((copy.deepcopy(event), *endpoint))
                self._wh_cond.notify_all()
        return event

    def _txn(
        self,
        *,
        amount: int,
        fee: int,
        currency: str,
        source: str,
        type_: str,
        category: str,
        description: str | None,
        created: int,
        account: str | None,
        fee_description: str = "Stripe processing fees",
    ) -> str:
        available_on = (created // 86400 + 2) * 86400
        txn = _ordered(
            {
                "id": new_id("txn"),
                "object": "balance_transaction",
                "amount": amount,
                "available_on": available_on,
                "balance_type": "payments",
                "created": created,
                "currency": currency,
                "description": description,
                "exchange_rate": None,
                "fee": fee,
                "fee_details": [
                    {
                        "amount": fee,
                        "application": None,
                        "currency": currency,
                        "description": fee_description,
                        "type": "stripe_fee",
                    }
                ]
                if fee
                else [],
                "net": amount - fee,
                "reporting_category": category,
                "source": source,
                "status": "available" if available_on <= time.time() else "pending",
                "type": type_,
            }
        )
        self._store(txn, account)
        return txn["id"]

    def _dispute_txn(self, dispute: JSON, amount: int, fee: int, kind: str, now: int, account: str | None) -> JSON:
        text = "Chargeback withdrawal" if kind == "withdrawal" else "Chargeback reversal"
        txn_id = self._txn(
            amount=amount,
            fee=fee,
            currency=dispute["currency"],
            source=dispute["id"],
            type_="adjustment",
            category="dispute" if amount < 0 else "dispute_reversal",
            description=f"{text} for {dispute['charge']}",
            created=now,
            account=account,
            fee_description="Dispute fee",
        )
        return copy.deepcopy(self._objects[txn_id])

    def _set_dispute_status(self, dispute: JSON, status: str, scope: str | None) -> None:
        before = copy.deepcopy(dispute)
        dispute["status"] = status
        reinstate = (
            status == "won"
            and before["status"] not in DISPUTE_CLOSED
            and bool(dispute["balance_transactions"])  # inquiries never withdrew funds
        )
        if reinstate:
            dispute["balance_transactions"].append(
                self._dispute_txn(dispute, dispute["amount"], 0, "reversal", self._tick(), scope)
            )
        if status in DISPUTE_CLOSED:
            dispute["is_charge_refundable"] = status == "warning_closed"
        previous = _diff(before, dispute)
        if not previous:
            return
        closed = status in DISPUTE_CLOSED
        self._emit("charge.dispute.closed" if closed else "charge.dispute.updated", dispute, scope, None, previous)
        if reinstate:
            self._emit("charge.dispute.funds_reinstated", dispute, scope, None)

    # ------------------------------------------------------------------ payments

    def _new_payment(
        self,
        amount: int,
        currency: str,
        *,
        billing_email: str | None,
        receipt_email: str | None,
        captured: bool,
        status: str,
        account: str | None,
        last4: str,
        brand: str,
        description: str | None,
        metadata: dict[str, str],
        with_intent: bool,
        created: int | None,
        req: _Req | None,
        capture_method: str | None = None,
        payment_method_types: list[str] | None = None,
    ) -> tuple[JSON | None, JSON, JSON]:
        """Build a consistent PaymentIntent/Charge/PaymentMethod/balance transaction set."""
        ts = created if created is not None else self._tick()
        succeeded = status == "succeeded"
        captured = captured and status != "failed"
        amount_captured = amount if captured and status != "failed" else 0
        card_brand, country, funding = _CARD_BRANDS[brand]
        exp_year = time.gmtime(ts).tm_year + 3
        fingerprint = _rand(16)
        billing = {
            "address": {
                "city": None,
                "country": None,
                "line1": None,
                "line2": None,
                "postal_code": None,
                "state": None,
            },
            "email": billing_email,
            "name": None,
            "phone": None,
            "tax_id": None,
        }
        pm = _ordered(
            {
                "id": new_id("pm" if with_intent else "card"),
                "object": "payment_method" if with_intent else "card",
                "allow_redisplay": "unspecified",
                "billing_details": billing,
                "card": {
                    "brand": brand,
                    "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"},
                    "country": country,
                    "display_brand": brand,
                    "exp_month": 12,
                    "exp_year": exp_year,
                    "fingerprint": fingerprint,
                    "funding": funding,
                    "generated_from": None,
                    "last4": last4,
                    "networks": {"available": [brand], "preferred": None},
                    "regulated_status": "unregulated",
                    "three_d_secure_usage": {"supported": True},
                    "wallet": None,
                },
                "created": ts,
                "customer": None,
                "customer_account": None,
                "livemode": False,
                "metadata": {},
                "type": "card",
            }
        )
        if with_intent:
            self._store(pm, account)
            source = None
        else:  # legacy charges carry their card as `source`
            source = _ordered(
                {
                    "id": pm["id"],
                    "object": "card",
                    "address_city": None,
                    "address_country": None,
                    "address_line1": None,
                    "address_line1_check": None,
                    "address_line2": None,
                    "address_state": None,
                    "address_zip": None,
                    "address_zip_check": None,
                    "brand": card_brand,
                    "country": country,
                    "customer": None,
                    "cvc_check": "pass",
                    "dynamic_last4": None,
                    "exp_month": 12,
                    "exp_year": exp_year,
                    "fingerprint": fingerprint,
                    "funding": funding,
                    "last4": last4,
                    "metadata": {},
                    "name": None,
                    "tokenization_method": None,
                    "wallet": None,
                }
            )
        charge_id = new_id("ch")
        pi_id = new_id("pi") if with_intent else None
        txn_id = None
        if succeeded and captured:
            txn_id = self._txn(
                amount=amount,
                fee=_stripe_fee(amount, currency),
                currency=currency,
                source=charge_id,
                type_="charge",
                category="charge",
                description=description,
                created=ts,
                account=account,
            )
        if status == "failed":
            outcome = {
                "advice_code": "try_again_later",
                "network_advice_code": None,
                "network_decline_code": "05",
                "network_status": "declined_by_network",
                "reason": "generic_decline",
                "risk_level": "normal",
                "risk_score": secrets.randbelow(65),
                "seller_message": "The bank did not return any further details with this decline.",
                "type": "issuer_declined",
            }
        else:
            outcome = {
                "advice_code": None,
                "network_advice_code": None,
                "network_decline_code": None,
                "network_status": "approved_by_network",
                "reason": None,
                "risk_level": "normal",
                "risk_score": secrets.randbelow(65),
                "seller_message": "Payment complete.",
                "type": "authorized",
            }
        charge = _ordered(
            {
                "id": charge_id,
                "object": "charge",
                "amount": amount,
                "amount_captured": amount_captured,
                "amount_refunded": 0,
                "application": None,
                "application_fee": None,
                "application_fee_amount": None,
                "balance_transaction": txn_id,
                "billing_details": copy.deepcopy(billing),
                "calculated_statement_descriptor": "REFUND DESK",
                "captured": captured,
                "created": ts,
                "currency": currency,
                "customer": None,
                "description": description,
                "disputed": False,
                "failure_balance_transaction": None,
                "failure_code": "card_declined" if status == "failed" else None,
                "failure_message": "Your card was declined." if status == "failed" else None,
                "fraud_details": {},
                "livemode": False,
                "metadata": dict(metadata),
                "on_behalf_of": None,
                "outcome": outcome,
                "paid": succeeded,
                "payment_intent": pi_id,
                "payment_method": pm["id"],
                "payment_method_details": {
                    "card": {
                        "amount_authorized": amount if status != "failed" else None,
                        "authorization_code": _rand(6, string.digits) if succeeded else None,
                        "brand": brand,
                        "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"},
                        "country": country,
                        "exp_month": 12,
                        "exp_year": exp_year,
                        "extended_authorization": {"status": "disabled"},
                        "fingerprint": fingerprint,
                        "funding": funding,
                        "incremental_authorization": {"status": "unavailable"},
                        "installments": None,
                        "last4": last4,
                        "mandate": None,
                        "multicapture": {"status": "unavailable"},
                        "network": brand,
                        "network_token": {"used": False},
                        "network_transaction_id": _rand(15, string.digits),
                        "overcapture": {"maximum_amount_capturable": amount, "status": "unavailable"},
                        "regulated_status": "unregulated",
                        "three_d_secure": None,
                        "wallet": None,
                    },
                    "type": "card",
                },
                "receipt_email": receipt_email,
                "receipt_number": None,
                "receipt_url": f"https://pay.stripe.com/receipts/payment/{_rand(96)}",
                "refunded": False,
                "review": None,
                "shipping": None,
                "source": source,
                "source_transfer": None,
                "statement_descriptor": None,
                "statement_descriptor_suffix": None,
                "status": status,
                "transfer_data": None,
                "transfer_group": None,
            }
        )
        self._store(charge, account)
        pi = None
        if with_intent:
            assert pi_id is not None
            if status == "failed":
                pi_status = "requires_payment_method"
            elif status == "pending":
                pi_status = "processing"
            else:
                pi_status = "succeeded" if captured else "requires_capture"
            last_error = None
            if status == "failed":
                last_error = {
                    "advice_code": "try_again_later",
                    "charge": charge_id,
                    "code": "card_declined",
                    "decline_code": "generic_decline",
                    "doc_url": "https://stripe.com/docs/error-codes/card-declined",
                    "message": "Your card was declined.",
                    "payment_method": copy.deepcopy(pm),
                    "type": "card_error",
                }
            pi = _ordered(
                {
                    "id": pi_id,
                    "object": "payment_intent",
                    "amount": amount,
                    "amount_capturable": amount if pi_status == "requires_capture" else 0,
                    "amount_details": {"tip": {}},
                    "amount_received": amount if pi_status == "succeeded" else 0,
                    "application": None,
                    "application_fee_amount": None,
                    "automatic_payment_methods": None,
                    "canceled_at": None,
                    "cancellation_reason": None,
                    "capture_method": capture_method
                    or ("automatic_async" if captured or status == "failed" else "manual"),
                    "client_secret": f"{pi_id}_secret_{_rand(25)}",
                    "confirmation_method": "automatic",
                    "created": ts,
                    "currency": currency,
                    "customer": None,
                    "customer_account": None,
                    "description": description,
                    "excluded_payment_method_types": None,
                    "last_payment_error": last_error,
                    "latest_charge": charge_id,
                    "livemode": False,
                    "managed_payments": None,
                    "metadata": dict(metadata),
                    "next_action": None,
                    "on_behalf_of": None,
                    "payment_method": None if status == "failed" else pm["id"],
                    "payment_method_configuration_details": None,
                    "payment_method_options": {
                        "card": {
                            "installments": None,
                            "mandate_options": None,
                            "network": None,
                            "request_three_d_secure": "automatic",
                        }
                    },
                    "payment_method_types": payment_method_types or ["card"],
                    "processing": None,
                    "receipt_email": receipt_email,
                    "review": None,
                    "setup_future_usage": None,
                    "shipping": None,
                    "source": None,
                    "statement_descriptor": None,
                    "statement_descriptor_suffix": None,
                    "status": pi_status,
                    "transfer_data": None,
                    "transfer_group": None,
                }
            )
            self._store(pi, account)
            fresh = pi | {
                "amount_capturable": 0,
                "amount_received": 0,
                "last_payment_error": None,
                "latest_charge": None,
                "payment_method": None,
                "status": "requires_payment_method",
            }
            self._emit("payment_intent.created", fresh, account, req)
        charge_event = {"succeeded": "charge.succeeded", "failed": "charge.failed", "pending": "charge.pending"}[status]
        self._emit(charge_event, charge, account, req)
        if pi is not None:
            pi_event = {
                "succeeded": "payment_intent.succeeded",
                "requires_capture": "payment_intent.amount_capturable_updated",
                "processing": "payment_intent.processing",
                "requires_payment_method": "payment_intent.payment_failed",
            }[pi["status"]]
            self._emit(pi_event, pi, account, req)
        return pi, charge, pm

    def _create_payment_intent(self, req: _Req) -> JSON:
        p = req.params
        amount = _int_param(p, "amount", required=True, minimum=1)
        currency = _str_param(p, "currency", required=True)
        assert amount is not None and currency is not None
        if not re.fullmatch(r"[A-Za-z]{3}", currency):
            raise _invalid(f"Invalid currency: {currency.lower()}", "currency")
        capture_method = (
            _enum_param(p, "capture_method", ("automatic", "automatic_async", "manual")) or "automatic_async"
        )
        confirm = _bool_param(p, "confirm")
        metadata = _metadata_param(p)
        receipt_email = _str_param(p, "receipt_email")
        description = _str_param(p, "description")
        pm_token = _str_param(p, "payment_method")
        types = p.get("payment_method_types") or ["card"]
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            raise _invalid("Invalid array", "payment_method_types")
        _check_expand(p, list_endpoint=False)
        # From here on the endpoint is executing: errors are saved for idempotency.
        customer = _str_param(p, "customer")
        if customer:
            raise StripeError(404, f"No such customer: '{customer}'", code="resource_missing", param="customer")
        card: tuple[str, str, bool] | None = None
        if pm_token:
            card = _TEST_PAYMENT_METHODS.get(pm_token)
            stored = self._visible(pm_token, req.account)
            if card is None and stored is not None and stored.get("object") == "payment_method":
                card = (stored["card"]["brand"], stored["card"]["last4"], True)
            if card is None:
                raise StripeError(
                    404, f"No such PaymentMethod: '{pm_token}'", code="resource_missing", param="payment_method"
                )
        if not confirm:
            pi_id = new_id("pi")
            ts = self._tick()
            pi = _ordered(
                {
                    "id": pi_id,
                    "object": "payment_intent",
                    "amount": amount,
                    "amount_capturable": 0,
                    "amount_details": {"tip": {}},
                    "amount_received": 0,
                    "application": None,
                    "application_fee_amount": None,
                    "automatic_payment_methods": None,
                    "canceled_at": None,
                    "cancellation_reason": None,
                    "capture_method": capture_method,
                    "client_secret": f"{pi_id}_secret_{_rand(25)}",
                    "confirmation_method": "automatic",
                    "created": ts,
                    "currency": currency.lower(),
                    "customer": None,
                    "customer_account": None,
                    "description": description,
                    "excluded_payment_method_types": None,
                    "last_payment_error": None,
                    "latest_charge": None,
                    "livemode": False,
                    "managed_payments": None,
                    "metadata": metadata,
                    "next_action": None,
                    "on_behalf_of": None,
                    "payment_method": None,
                    "payment_method_configuration_details": None,
                    "payment_method_options": {
                        "card": {
                            "installments": None,
                            "mandate_options": None,
                            "network": None,
                            "request_three_d_secure": "automatic",
                        }
                    },
                    "payment_method_types": types,
                    "processing": None,
                    "receipt_email": receipt_email,
                    "review": None,
                    "setup_future_usage": None,
                    "shipping": None,
                    "source": None,
                    "statement_descriptor": None,
                    "statement_descriptor_suffix": None,
                    "status": "requires_confirmation" if pm_token else "requires_payment_method",
                    "transfer_data": None,
                    "transfer_group": None,
                }
            )
            self._store(pi, req.account)
            self._emit("payment_intent.created", pi, req.account, req)
            return self._render(pi, req)
        if card is None:
            raise StripeError(
                400,
                "You cannot confirm this PaymentIntent because it's missing a payment method. "
                "You can either update the PaymentIntent with a payment method and then "
                "confirm it again, or confirm it again directly with a payment method.",
                code="payment_intent_unexpected_state",
            )
        brand, last4, ok = card
        pi, charge, pm = self._new_payment(
            amount,
            currency.lower(),
            billing_email=None,
            receipt_email=receipt_email,
            captured=capture_method != "manual",
            status="succeeded" if ok else "failed",
            account=req.account,
            last4=last4,
            brand=brand,
            description=description,
            metadata=metadata,
            with_intent=True,
            created=None,
            req=req,
            capture_method=capture_method,
            payment_method_types=types,
        )
        assert pi is not None
        if not ok:
            raise StripeError(
                402,
                "Your card was declined.",
                type_="card_error",
                code="card_declined",
                extra={
                    "advice_code": "try_again_later",
                    "charge": charge["id"],
                    "decline_code": "generic_decline",
                    "payment_intent": copy.deepcopy(pi),
                    "payment_method": copy.deepcopy(pm),
                },
            )
        return self._render(pi, req)

    # ------------------------------------------------------------------ refunds

    def _create_refund(self, req: _Req) -> JSON:
        p = req.params
        charge_id = _str_param(p, "charge")
        pi_id = _str_param(p, "payment_intent")
        amount = _int_param(p, "amount", minimum=1)
        reason = _enum_param(p, "reason", REFUND_REASONS)
        metadata = _metadata_param(p)
        _check_expand(p, list_endpoint=False)
        if not charge_id and not pi_id:
            raise _invalid(
                "One of the following params should be provided for this request: payment_intent or charge.",
                code="parameter_missing",
            )
        # Validation passed: the endpoint executes, so errors below are saved under the key.
        if charge_id:
            charge = self._lookup(charge_id, "charge", req.account, "charge")
            if pi_id:
                pi = self._lookup(pi_id, "payment_intent", req.account, "payment_intent")
                if charge["payment_intent"] != pi["id"]:
                    raise StripeError(
                        400,
                        f"The charge {charge_id} does not belong to the PaymentIntent {pi_id}.",
                        param="charge",
                    )
        else:
            pi = self._lookup(pi_id, "payment_intent", req.account, "payment_intent")
            latest = pi["latest_charge"]
            charge_obj = self._objects.get(latest) if isinstance(latest, str) else None
            if charge_obj is None or pi["status"] not in ("succeeded", "requires_capture"):
                raise StripeError(
                    400,
                    f"This PaymentIntent ({pi['id']}) does not have a successful charge to refund.",
                    code="charge_not_refundable",
                    param="payment_intent",
                )
            charge = charge_obj
        error_code, refund_status = self._outcomes.get(charge["id"], (None, "pending"))
        remaining = charge["amount_captured"] - charge["amount_refunded"]
        if error_code is not None:
            raise self._refund_error(error_code, charge, amount or remaining + 1)
        if charge["status"] != "succeeded":
            raise StripeError(
                400,
                f"Charge {charge['id']} has a status of {charge['status']} and cannot be refunded.",
                code="charge_not_refundable",
            )
        if not charge["captured"]:
            raise StripeError(
                400,
                f"Charge {charge['id']} has not been captured. Cancel its PaymentIntent "
                "to release the authorization instead of refunding it.",
                code="charge_not_refundable",
            )
        if self._has_chargeback(charge["id"]):
            raise self._refund_error("charge_disputed", charge, amount or remaining)
        if remaining <= 0:
            raise self._refund_error("charge_already_refunded", charge, amount or 0)
        amount = remaining if amount is None else amount
        if amount > remaining:
            raise self._refund_error("amount_too_large", charge, amount)
        scope = self._scope[charge["id"]]
        ts = self._tick()
        refund_id = new_id("re")
        txn_id = self._txn(
            amount=-amount,
            fee=0,
            currency=charge["currency"],
            source=refund_id,
            type_="refund",
            category="refund",
            description=f"REFUND FOR CHARGE ({charge['description']})"
            if charge["description"]
            else "REFUND FOR CHARGE",
            created=ts,
            account=scope,
        )
        card_details: JSON = {
            "reference_status": "pending",
            "reference_type": "acquirer_reference_number",
            "type": "refund",
        }
        if refund_status == "succeeded":
            card_details |= {"reference": _rand(23, string.digits), "reference_status": "available"}
        refund = _ordered(
            {
                "id": refund_id,
                "object": "refund",
                "amount": amount,
                "balance_transaction": txn_id,
                "charge": charge["id"],
                "created": ts,
                "currency": charge["currency"],
                "customer": charge["customer"],
                "customer_account": None,
                "destination_details": {"card": dict(sorted(card_details.items())), "type": "card"},
                "metadata": metadata,
                "payment_intent": charge["payment_intent"],
                "payment_method": charge["payment_method"],
                "reason": reason,
                "receipt_number": None,
                "source_transfer_reversal": None,
                "status": refund_status,
                "transfer_reversal": None,
            }
        )
        self._store(refund, scope)
        before = copy.deepcopy(charge)
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount_captured"]
        self._emit("refund.created", refund, scope, req)
        self._emit("charge.refunded", charge, scope, req, _diff(before, charge))
        return self._render(refund, req)

    def _refund_error(self, code: str, charge: JSON, amount: int) -> StripeError:
        cid, cur = charge["id"], charge["currency"]
        if code == "amount_too_large":
            if amount > charge["amount"]:
                message = (
                    f"Refund amount ({format_money(amount, cur)}) is greater than charge "
                    f"amount ({format_money(charge['amount'], cur)})"
                )
            else:
                left = charge["amount_captured"] - charge["amount_refunded"]
                message = (
                    f"Refund amount ({format_money(amount, cur)}) is greater than "
                    f"unrefunded amount on charge ({format_money(left, cur)})"
                )
            return StripeError(400, message, code=code, param="amount")
        messages = {
            "charge_already_refunded": f"Charge {cid} has already been refunded.",
            "charge_disputed": f"Charge {cid} has been charged back; cannot issue a refund.",
            "charge_expired_for_refund": f"Charge {cid} is too old to be refunded.",
            "balance_insufficient": _BALANCE_INSUFFICIENT_MESSAGE,
        }
        return StripeError(400, messages[code], code=code)

    def _has_chargeback(self, charge_id: str) -> bool:
        return any(
            o["object"] == "dispute" and o["charge"] == charge_id and not o["is_charge_refundable"]
            for o in self._objects.values()
        )

    def _update_refund(self, req: _Req, id: str) -> JSON:
        metadata = req.params.get("metadata")
        _check_expand(req.params, list_endpoint=False)
        if metadata is not None and metadata != "" and not isinstance(metadata, dict):
            raise _invalid("Invalid hash", "metadata")
        _metadata_param(req.params)  # validates sizes and types
        refund = self._lookup(id, "refund", req.account, "id")
        before = copy.deepcopy(refund)
        if metadata == "":
            refund["metadata"] = {}
        elif isinstance(metadata, dict):
            for key, value in metadata.items():
                if value == "":
                    refund["metadata"].pop(key, None)  # Stripe: empty string unsets a key
                else:
                    refund["metadata"][key] = value
        previous = _diff(before, refund)
        if previous:
            scope = self._scope[id]
            self._emit("refund.updated", refund, scope, req, previous)
            self._emit("charge.refund.updated", refund, scope, req, previous)
        return self._render(refund, req)

    def _cancel_refund(self, req: _Req, id: str) -> JSON:
        _check_expand(req.params, list_endpoint=False)
        refund = self._lookup(id, "refund", req.account, "id")
        if refund["status"] not in ("pending", "requires_action"):
            raise StripeError(
                400,
                f"Refund {id} has a status of {refund['status']}; only pending or "
                "requires_action refunds can be canceled.",
                param="refund",
            )
        self._settle(refund, "canceled", None, req)
        return self._render(refund, req)

    def _settle(self, refund: JSON, status: str, failure_reason: str | None, req: _Req | None) -> None:
        scope = self._scope[refund["id"]]
        before = copy.deepcopy(refund)
        card = refund["destination_details"].get("card")
        refund["status"] = status
        if status == "succeeded":
            if card is not None:
                card |= {"reference": _rand(23, string.digits), "reference_status": "available"}
        else:
            if card is not None:
                card["reference_status"] = "unavailable"
            charge = self._objects[refund["charge"]]
            if status == "failed":
                refund["failure_reason"] = failure_reason
                refund["failure_balance_transaction"] = self._txn(
                    amount=refund["amount"],
                    fee=0,
                    currency=refund["currency"],
                    source=refund["id"],
                    type_="refund_failure",
                    category="refund_failure",
                    description=f"REFUND FAILURE FOR CHARGE ({refund['charge']})",
                    created=self._tick(),
                    account=scope,
                )
            # The money was never sent: it becomes refundable again on the charge.
            charge["amount_refunded"] -= refund["amount"]
            charge["refunded"] = (
                charge["amount_captured"] > 0 and charge["amount_refunded"] >= charge["amount_captured"]
            )
        if card is not None:
            refund["destination_details"]["card"] = dict(sorted(card.items()))
        ordered = _ordered(refund)  # failure_* keys appear only once a refund fails
        refund.clear()
        refund.update(ordered)
        previous = _diff(before, refund)
        self._emit("refund.updated", refund, scope, req, previous)
        if status == "failed":
            self._emit("refund.failed", refund, scope, req)
        self._emit("charge.refund.updated", refund, scope, req, previous)

    # ------------------------------------------------------------------ lists

    def _list(self, req: _Req, kind: str, url: str, keep: Callable[[JSON], bool]) -> JSON:
        p = req.params
        limit = _int_param(p, "limit", minimum=1, maximum=100) or 10
        _check_expand(p, list_endpoint=True)
        created = _range_param(p, "created")
        after = _str_param(p, "starting_after")
        before = _str_param(p, "ending_before")
        if after and before:
            raise _invalid("You may only specify one of these parameters: ending_before, starting_after.")

        def order(o: JSON) -> tuple[int, int]:
            return (o["created"], self._seq[o["id"]])

        items = [
            o
            for oid, o in self._objects.items()
            if o.get("object") == kind and self._scope[oid] == req.account and keep(o) and created(o["created"])
        ]
        items.sort(key=order, reverse=True)
        if after:
            cursor = order(self._lookup(after, kind, req.account, "starting_after"))
            older = [o for o in items if order(o) < cursor]
            page, has_more = older[:limit], len(older) > limit
        elif before:
            cursor = order(self._lookup(before, kind, req.account, "ending_before"))
            newer = [o for o in items if order(o) > cursor]
            page, has_more = newer[-limit:], len(newer) > limit
        else:
            page, has_more = items[:limit], len(items) > limit
        body = {"object": "list", "data": page, "has_more": has_more, "url": url}
        return self._render(body, req)

    def _list_payment_intents(self, req: _Req) -> JSON:
        customer = _str_param(req.params, "customer")
        return self._list(
            req, "payment_intent", "/v1/payment_intents", lambda o: customer is None or o["customer"] == customer
        )

    def _list_charges(self, req: _Req) -> JSON:
        p = req.params
        filters = {k: _str_param(p, k) for k in ("payment_intent", "customer", "transfer_group")}
        return self._list(req, "charge", "/v1/charges", _matcher(filters))

    def _list_refunds(self, req: _Req) -> JSON:
        p = req.params
        filters = {k: _str_param(p, k) for k in ("charge", "payment_intent")}
        return self._list(req, "refund", "/v1/refunds", _matcher(filters))

    def _list_disputes(self, req: _Req) -> JSON:
        p = req.params
        filters = {k: _str_param(p, k) for k in ("charge", "payment_intent")}
        return self._list(req, "dispute", "/v1/disputes", _matcher(filters))

    def _list_balance_transactions(self, req: _Req) -> JSON:
        # From the ledger's index (and its payout filter): a day of 200,000 is paged without rescans.
        return self._list_ledger(req)

    def _list_events(self, req: _Req) -> JSON:
        p = req.params
        single = _str_param(p, "type")
        several = p.get("types")
        if single is not None and several is not None:
            raise _invalid("You may only specify one of these parameters: type, types.")
        if several is not None and (not isinstance(several, list) or not all(isinstance(t, str) for t in several)):
            raise _invalid("Invalid array", "types")
        patterns = [single] if single is not None else several
        # delivery_success=false: events still being retried or given up on (Stripe's definition).
        delivered = None if _str_param(p, "delivery_success") is None else _bool_param(p, "delivery_success")

        def keep(event: JSON) -> bool:
            if delivered is not None and (self._delivered.get(event["id"], True) is True) != delivered:
                return False
            return patterns is None or any(fnmatch.fnmatchcase(event["type"], pat) for pat in patterns)

        return self._list(req, "event", "/v1/events", keep)

    def _list_accounts(self, req: _Req) -> JSON:
        if req.account is not None:
            raise StripeError(
                403, "Only platforms can list their connected accounts; this request was made on one of them."
            )
        return self._list(req, "account", "/v1/accounts", lambda o: True)

    def _retrieve_account(self, req: _Req, id: str) -> JSON:
        _check_expand(req.params, list_endpoint=False)
        target = req.account or id
        if id != target:
            raise StripeError(
                403,
                f"The provided key '{_mask_key(req.api_key)}' does not have access to account '{id}' "
                "(or that account does not exist). Application access may have been revoked.",
                code="account_invalid",
            )
        return self._render(self._lookup(id, "account", None, "account"), req)

    def _check_permission(self, req: _Req) -> None:
        """A restricted key without the permission an endpoint needs: 403, in Stripe's words."""
        for prefix, permission in self._denied.items():
            if req.path.startswith(prefix):
                raise StripeError(
                    403,
                    f"The provided key '{_mask_key(req.api_key)}' does not have the required permissions for this "
                    f"endpoint on account '{req.account or self.platform_account}'. Having the '{permission}' "
                    "permission would allow this request to continue.",
                    saved=False,
                )

    # ------------------------------------------------------------------ rendering

    def _render(self, obj: JSON, req: _Req) -> JSON:
        """Deep copy of ``obj`` with ``expand[]`` applied."""
        out = copy.deepcopy(obj)
        for path in _expand_list(req.params):
            self._expand(out, path.split("."), req.account)
        return out

    def _expand(self, node: Any, parts: list[str], account: str | None) -> None:
        if isinstance(node, list):
            for item in node:
                self._expand(item, parts, account)
            return
        if not isinstance(node, dict) or not parts:
            return
        head, rest = parts[0], parts[1:]
        if head == "refunds" and node.get("object") == "charge":
            refunds = sorted(
                (
                    o
                    for oid, o in self._objects.items()
                    if o.get("object") == "refund" and o["charge"] == node["id"] and self._scope[oid] == account
                ),
                key=lambda o: (o["created"], self._seq[o["id"]]),
                reverse=True,
            )
            node["refunds"] = {
                "object": "list",
                "data": copy.deepcopy(refunds[:10]),
                "has_more": len(refunds) > 10,
                "url": f"/v1/charges/{node['id']}/refunds",
            }
        value = node.get(head)
        if isinstance(value, str):
            target = self._visible(value, account)
            if target is not None:
                node[head] = value = copy.deepcopy(target)
        if rest:
            self._expand(value, rest, account)


# --------------------------------------------------------------------------- param helpers


def _str_param(p: JSON, name: str, *, required: bool = False) -> str | None:
    value = p.get(name)
    if value is None or value == "":
        if required:
            raise _invalid(f"Missing required param: {name}.", name, "parameter_missing")
        return None
    if not isinstance(value, str):
        raise _invalid(f"Invalid string: {value!r}", name)
    return value


def _int_param(
    p: JSON,
    name: str,
    *,
    required: bool = False,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int | None:
    raw = _str_param(p, name, required=required)
    if raw is None:
        return None
    if not _INT.fullmatch(raw):
        raise _invalid(f"Invalid integer: {raw}", name, "parameter_invalid_integer")
    value = int(raw)
    if minimum is not None and value < minimum:
        raise _invalid(f"This value must be greater than or equal to {minimum}.", name, "parameter_invalid_integer")
    if maximum is not None and value > maximum:
        raise _invalid(f"This value must be less than or equal to {maximum}.", name, "parameter_invalid_integer")
    return value


def _bool_param(p: JSON, name: str) -> bool:
    raw = _str_param(p, name)
    if raw is None:
        return False
    if raw not in ("true", "false"):
        raise _invalid(f"Invalid boolean: {raw}", name)
    return raw == "true"


def _enum_param(p: JSON, name: str, allowed: Iterable[str]) -> str | None:
    raw = _str_param(p, name)
    allowed = list(allowed)
    if raw is not None and raw not in allowed:
        choices = ", ".join(allowed[:-1]) + f", or {allowed[-1]}"
        raise _invalid(f"Invalid {name}: must be one of {choices}", name)
    return raw


def _metadata_param(p: JSON) -> dict[str, str]:
    """Validated metadata for a create (empty values are dropped, as Stripe does)."""
    raw = p.get("metadata")
    if raw is None or raw == "":
        return {}
    if not isinstance(raw, dict):
        raise _invalid("Invalid hash", "metadata")
    if len(raw) > 50:
        raise _invalid("You can have at most 50 keys in metadata.", "metadata")
    out: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(value, str):
            raise _invalid(f"Invalid string: {value!r}", f"metadata[{key}]")
        if len(key) > 40:
            raise _invalid("Metadata keys can have up to 40 characters.", f"metadata[{key}]")
        if len(value) > 500:
            raise _invalid(
                "Metadata values can have up to 500 characters, but you passed in a value "
                f"that is {len(value)} characters.",
                f"metadata[{key}]",
            )
        if value != "":
            out[key] = value
    return out


def _range_param(p: JSON, name: str) -> Callable[[int], bool]:
    raw = p.get(name)
    if raw is None:
        return lambda _v: True
    if isinstance(raw, str):
        exact = _int_param(p, name)
        return lambda v: v == exact
    if not isinstance(raw, dict) or set(raw) - {"gt", "gte", "lt", "lte"}:
        raise _invalid(f"Invalid {name}: use an integer or a hash with gt, gte, lt, lte", name)
    bounds = {k: _int_param(raw, k) for k in raw}
    checks = {
        "gt": lambda v, b: v > b,
        "gte": lambda v, b: v >= b,
        "lt": lambda v, b: v < b,
        "lte": lambda v, b: v <= b,
    }
    return lambda v: all(checks[k](v, b) for k, b in bounds.items() if b is not None)


def _expand_list(p: JSON) -> list[str]:
    raw = p.get("expand")
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise _invalid("Invalid array", "expand")
    return raw


def _check_expand(p: JSON, *, list_endpoint: bool) -> None:
    """Reject bad expand paths before executing (validation: not saved for idempotency)."""
    for path in _expand_list(p):
        parts = path.split(".")
        if len(parts) > MAX_EXPAND_DEPTH + (1 if list_endpoint else 0):
            raise _invalid(f"You cannot expand more than {MAX_EXPAND_DEPTH} levels of a property.", "expand")
        bad = (
            (list_endpoint and parts[0] != "data")
            or any(part not in EXPANDABLE or (part == "data" and i > 0) for i, part in enumerate(parts))
            or (not list_endpoint and parts[0] == "data")
        )
        if bad:
            raise _invalid(f"This property cannot be expanded ({path}).", "expand")


def _matcher(filters: dict[str, str | None]) -> Callable[[JSON], bool]:
    active = {k: v for k, v in filters.items() if v is not None}
    return lambda o: all(o.get(k) == v for k, v in active.items())


def _empty_evidence() -> JSON:
    names = (
        "access_activity_log",
        "billing_address",
        "cancellation_policy",
        "cancellation_policy_disclosure",
        "cancellation_rebuttal",
        "customer_communication",
        "customer_email_address",
        "customer_name",
        "customer_purchase_ip",
        "customer_signature",
        "duplicate_charge_documentation",
        "duplicate_charge_explanation",
        "duplicate_charge_id",
        "product_description",
        "receipt",
        "refund_policy",
        "refund_policy_disclosure",
        "refund_refusal_explanation",
        "service_date",
        "service_documentation",
        "shipping_address",
        "shipping_carrier",
        "shipping_date",
        "shipping_documentation",
        "shipping_tracking_number",
        "uncategorized_file",
        "uncategorized_text",
    )
    return dict(sorted({**dict.fromkeys(names), "enhanced_evidence": {}}.items()))


def _error(exc: StripeError, req: _Req) -> _Resp:
    return _Resp(exc.status, exc.body(req.request_id), dict(exc.headers))


def _write(h: _Handler, req: _Req, resp: _Resp) -> None:
    data = (json.dumps(resp.body, indent=2) + "\n").encode()
    try:
        h.send_response(resp.status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.send_header("Cache-Control", "no-cache, no-store")
        h.send_header("Request-Id", req.request_id)
        h.send_header("Stripe-Version", req.version)
        for name, value in resp.headers.items():
            h.send_header(name, value)
        h.end_headers()
        h.wfile.write(data)
    except OSError:
        pass  # the client already gave up (timeout): nothing to tell it


def _post(url: str, body: str, signature: str) -> tuple[int | None, str | None]:
    """One webhook POST; returns (status, None) or (None, error text)."""
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    conn_cls = http.client.HTTPSConnection if secure else http.client.HTTPConnection
    conn = conn_cls(parts.hostname or "127.0.0.1", parts.port, timeout=WEBHOOK_TIMEOUT)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request(
            "POST",
            path,
            body=body.encode(),
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "Stripe-Signature": signature,
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                "Cache-Control": "no-cache",
                "Accept": "*/*; q=0.5, application/xml",
            },
        )
        response = conn.getresponse()
        response.read()
        return response.status, None
    except (OSError, http.client.HTTPException) as exc:
        return None, repr(exc)
    finally:
        conn.close()
