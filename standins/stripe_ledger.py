"""The Stripe stand-in's ledger: a clock that can be set, payouts that sweep the available balance,
standalone fees, and balance transactions listed from an index (a day of 200,000 pages quickly).

Shapes follow Stripe's payout and balance transaction objects (checked against the real ones in
tests/fixtures/stripe: object_payout__openapi-fixtures3.json, event_payout.*, object_balance_transaction__*).
Mixed into StripeStandIn; every method runs under its state lock like the rest of it.
"""

from __future__ import annotations

import bisect
import copy
import time
from typing import Any

# A cycle by design: stripe_api mixes this class in, and this module uses its parameter helpers at
# call time (the module object exists by then).
from standins import stripe_api as api

JSON = dict[str, Any]

PAYOUT_FAILURES = {
    "account_closed": "The bank account has been closed.",
    "could_not_process": "The bank could not process this payout.",
    "insufficient_funds": "Your Stripe account has insufficient funds to cover the payout.",
    "no_account": "The bank account details on file are probably incorrect.",
}


class LedgerMixin:
    """Clock, payouts, fees and the balance-transaction index of the Stripe stand-in."""

    # Provided by StripeStandIn.
    _lock: Any
    _objects: dict[str, Any]
    _scope: dict[str, str | None]
    _seq: dict[str, int]

    def _init_ledger(self) -> None:
        self._clock_ts: int | None = None
        self._ledger: list[tuple[int, int, str]] = []  # (created, seq, id) of balance transactions
        self._ledger_sorted = True
        self._in_payout: dict[str, str] = {}  # balance transaction id -> the payout that swept it
        self._payout_txns: dict[str, list[str]] = {}

    # ------------------------------------------------------------------ clock

    def set_clock(self, ts: int | None) -> None:
        """Make Stripe's clock read `ts` (unix seconds) from now on; None: the wall clock again.

        Objects, balance transactions and events made afterwards are created at that time, so a
        test can build yesterday. Webhook signatures keep the real time.
        """
        with self._lock:
            self._clock_ts = ts
            if ts is not None:
                self._last_ts = ts

    def _now(self) -> float:
        return time.time() if self._clock_ts is None else self._clock_ts

    def stop_webhooks(self) -> None:
        """Stop sending events (they are still listed by GET /v1/events, as Stripe keeps them):
        what a lost delivery looks like. deliver_webhooks() starts sending again."""
        with self._wh_cond:  # type: ignore[attr-defined]
            self._wh_endpoint = None

    # ------------------------------------------------------------------ seeding

    def add_fee(
        self, amount: int, currency: str = "usd", *, account: str | None = None, description: str = "Radar fees"
    ) -> JSON:
        """A standalone Stripe fee (type stripe_fee, reporting category fee): debits the balance by `amount`."""
        if amount < 1:
            raise ValueError("amount must be a positive integer (minor units)")
        with self._lock:
            txn_id = self._txn(  # type: ignore[attr-defined]
                amount=-amount,
                fee=0,
                currency=currency.lower(),
                source=None,
                type_="stripe_fee",
                category="fee",
                description=description,
                created=self._tick(),  # type: ignore[attr-defined]
                account=account,
            )
            return copy.deepcopy(self._objects[txn_id])

    def add_balance_transaction(
        self,
        amount: int,
        currency: str,
        type_: str,
        source: str | None,
        *,
        created: int,
        fee: int = 0,
        reporting_category: str | None = None,
        account: str | None = None,
    ) -> str:
        """Seed one balance transaction and nothing else (no object, no event): for benchmarks. Returns its id."""
        with self._lock:
            return self._txn(  # type: ignore[attr-defined]
                amount=amount,
                fee=fee,
                currency=currency,
                source=source,
                type_=type_,
                category=reporting_category or type_,
                description=None,
                created=created,
                account=account,
            )

    def add_payout(
        self,
        currency: str = "usd",
        *,
        account: str | None = None,
        status: str = "paid",
        include_pending: bool = False,
        amount: int | None = None,
        failure_code: str = "account_closed",
    ) -> JSON:
        """An automatic payout of the available balance: every available balance transaction of the
        currency not yet paid out is swept into it. Emits payout.created, then payout.paid or payout.failed.

        include_pending sweeps what is not available yet too; `amount` forces a payout amount that
        differs from what it swept (Stripe never does this; it lets a test see a payout that does not add up).
        """
        if status not in ("paid", "failed"):
            raise ValueError("status must be 'paid' or 'failed'")
        if failure_code not in PAYOUT_FAILURES:
            raise ValueError(f"failure_code must be one of {sorted(PAYOUT_FAILURES)}")
        currency = currency.lower()
        with self._lock:
            now = self._tick()  # type: ignore[attr-defined]
            swept = [
                txn
                for oid, txn in self._objects.items()
                if txn.get("object") == "balance_transaction"
                and self._scope[oid] == account
                and txn["currency"] == currency
                and oid not in self._in_payout
                and txn["type"] not in ("payout", "payout_failure")
                and (include_pending or txn["available_on"] <= now)
                and txn["created"] <= now
            ]
            total = sum(t["net"] for t in swept)
            if amount is None:
                amount = total
            if amount <= 0:
                raise ValueError(f"nothing to pay out in {currency} (available: {total})")
            payout_id = api.new_id("po")
            txn_id = self._txn(  # type: ignore[attr-defined]
                amount=-amount,
                fee=0,
                currency=currency,
                source=payout_id,
                type_="payout",
                category="payout",
                description="STRIPE PAYOUT",
                created=now,
                account=account,
            )
            self._objects[txn_id]["available_on"] = now
            members = [t["id"] for t in swept] + [txn_id]
            for member in members:
                self._in_payout[member] = payout_id
            self._payout_txns[payout_id] = members
            payout = {
                "id": payout_id,
                "object": "payout",
                "amount": amount,
                "application_fee": None,
                "application_fee_amount": None,
                "arrival_date": (now // 86400 + 1) * 86400,
                "automatic": True,
                "balance_transaction": txn_id,
                "created": now,
                "currency": currency,
                "description": "STRIPE PAYOUT",
                "destination": "ba_1StandinBankAccount0000",
                "failure_balance_transaction": None,
                "failure_code": None,
                "failure_message": None,
                "livemode": False,
                "metadata": {},
                "method": "standard",
                "original_payout": None,
                "reconciliation_status": "completed",
                "reversed_by": None,
                "source_type": "card",
                "statement_descriptor": None,
                "status": "pending",
                "trace_id": {"status": "pending", "value": None},
                "type": "bank_account",
            }
            self._store(payout, account)  # type: ignore[attr-defined]
            self._emit("payout.created", payout, account, None)  # type: ignore[attr-defined]
            before = {"status": payout["status"]}
            if status == "paid":
                payout["status"] = "paid"
                payout["trace_id"] = {"status": "supported", "value": "STANDIN" + payout_id[-10:].upper()}
                self._emit("payout.paid", payout, account, None, before)  # type: ignore[attr-defined]
            else:
                failure = self._txn(  # type: ignore[attr-defined]
                    amount=amount,
                    fee=0,
                    currency=currency,
                    source=payout_id,
                    type_="payout_failure",
                    category="payout_reversal",
                    description="STRIPE PAYOUT FAILURE",
                    created=now,
                    account=account,
                )
                payout |= {
                    "status": "failed",
                    "failure_balance_transaction": failure,
                    "failure_code": failure_code,
                    "failure_message": PAYOUT_FAILURES[failure_code],
                }
                self._emit("payout.failed", payout, account, None, before)  # type: ignore[attr-defined]
            return copy.deepcopy(payout)

    # ------------------------------------------------------------------ index and lists

    def _ledger_add(self, obj: JSON) -> None:
        entry = (obj["created"], self._seq[obj["id"]], obj["id"])
        if self._ledger and entry < self._ledger[-1]:
            self._ledger_sorted = False
        self._ledger.append(entry)

    def _ledger_sorted_index(self) -> list[tuple[int, int, str]]:
        if not self._ledger_sorted:
            self._ledger.sort()  # nearly sorted: timsort is linear here
            self._ledger_sorted = True
        return self._ledger

    def _list_ledger(self, req: Any) -> JSON:
        """GET /v1/balance_transactions: newest first, from the index instead of a scan of every object."""
        _check_expand, _int_param, _invalid = api._check_expand, api._int_param, api._invalid
        _range_param, _str_param = api._range_param, api._str_param
        p = req.params
        limit = _int_param(p, "limit", minimum=1, maximum=100) or 10
        _check_expand(p, list_endpoint=True)
        created = _range_param(p, "created")
        after = _str_param(p, "starting_after")
        before = _str_param(p, "ending_before")
        if after and before:
            raise _invalid("You may only specify one of these parameters: ending_before, starting_after.")
        filters = {k: _str_param(p, k) for k in ("source", "type", "currency")}
        active = {k: v for k, v in filters.items() if v is not None}
        payout = _str_param(p, "payout")
        if payout is not None:
            self._lookup(payout, "payout", req.account, "payout")  # type: ignore[attr-defined]

        def keep(oid: str) -> bool:
            txn = self._objects[oid]
            return (
                self._scope[oid] == req.account
                and all(txn.get(k) == v for k, v in active.items())
                and created(txn["created"])
                and (payout is None or self._in_payout.get(oid) == payout)
            )

        if payout is not None:
            index = sorted((self._objects[t]["created"], self._seq[t], t) for t in self._payout_txns.get(payout, []))
        else:
            index = self._ledger_sorted_index()
        low, high = _created_bounds(p.get("created"))
        # Newest first: walk down from the newest entry inside the range (or below the cursor).
        if after:
            cursor = self._lookup(after, "balance_transaction", req.account, "starting_after")  # type: ignore[attr-defined]
            start = bisect.bisect_left(index, (cursor["created"], self._seq[after], ""))
        else:
            start = bisect.bisect_right(index, (high, float("inf"), ""))
        page: list[JSON] = []
        has_more = False
        if before:
            cursor = self._lookup(before, "balance_transaction", req.account, "ending_before")  # type: ignore[attr-defined]
            i = bisect.bisect_right(index, (cursor["created"], self._seq[before], "\uffff"))
            newer: list[JSON] = []
            while i < len(index) and index[i][0] <= high:
                if keep(index[i][2]):
                    newer.append(self._objects[index[i][2]])
                    if len(newer) > limit:
                        break
                i += 1
            has_more = len(newer) > limit
            page = list(reversed(newer[:limit]))
        else:
            i = start - 1
            while i >= 0 and index[i][0] >= low:
                if keep(index[i][2]):
                    if len(page) == limit:
                        has_more = True
                        break
                    page.append(self._objects[index[i][2]])
                i -= 1
        body = {"object": "list", "data": page, "has_more": has_more, "url": "/v1/balance_transactions"}
        return self._render(body, req)  # type: ignore[attr-defined]

    def _list_payouts(self, req: Any) -> JSON:
        """GET /v1/payouts, newest first, by status if asked."""
        status = api._str_param(req.params, "status")
        return self._list(req, "payout", "/v1/payouts", lambda o: status is None or o["status"] == status)  # type: ignore[attr-defined]


def _created_bounds(raw: Any) -> tuple[float, float]:
    """The [low, high] a `created` filter allows (already validated by _range_param)."""
    if raw is None:
        return float("-inf"), float("inf")
    if isinstance(raw, str):
        return int(raw), int(raw)
    low, high = float("-inf"), float("inf")
    for op, value in raw.items():
        v = int(value)
        if op == "gt":
            low = max(low, v + 1)
        elif op == "gte":
            low = max(low, v)
        elif op == "lt":
            high = min(high, v - 1)
        elif op == "lte":
            high = min(high, v)
    return low, high
