"""Looking up a payment, refund or dispute: the store first, then Stripe (and cache what it says)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import replace
from datetime import datetime
from typing import Any

from psycopg_pool import ConnectionPool

from domain import stripe_mapping as sm
from domain.errors import DatabaseUnavailable, NotFound, StripePermissionMissing
from domain.ids import kind_of
from domain.models import PaymentView
from services.stripe_gateway import StripeGateway
from store import accounts
from store import payments as store
from store.db import connection, transaction

log = logging.getLogger(__name__)
# Connected accounts asked at once when an id is not on the platform (Stripe allows 100 reads/s in live mode).
SEARCH_THREADS = 8


def from_store(pool: ConnectionPool, stripe_id: str) -> PaymentView | None:
    """The stored view, or None when we have never seen this id (one query, no transaction)."""
    with connection(pool) as conn:
        return store.find_view(conn, stripe_id)


def _payment_json(gateway: StripeGateway, payment_id: str, account: str | None = None) -> dict[str, Any]:
    """The payment intent JSON for a payment id, or the charge's when it has no payment intent."""
    if payment_id.startswith("pi_"):
        return gateway.payment_intent(payment_id, account)
    charge = gateway.charge(payment_id, account)
    pi_id = sm.ref_id(charge.get("payment_intent"))
    return gateway.payment_intent(pi_id, account) if pi_id else charge


def _first_read(gateway: StripeGateway, stripe_id: str, account: str | None) -> dict[str, Any]:
    """The payment's JSON, reached from whichever id was asked about, in one account (None: the platform)."""
    kind = kind_of(stripe_id)
    if kind in {"refund", "dispute"}:
        child = gateway.refund(stripe_id, account) if kind == "refund" else gateway.dispute(stripe_id, account)
        parent = sm.ref_id(child.get("payment_intent")) or sm.ref_id(child.get("charge"))
    else:
        parent = stripe_id
    if not parent:
        raise NotFound(f"{stripe_id} is not linked to a payment.")
    return _payment_json(gateway, parent, account)


def _search_accounts(
    pool: ConnectionPool, gateway: StripeGateway, stripe_id: str, most: int
) -> tuple[str, dict[str, Any]]:
    """Try the known connected accounts at once (at most `most`); the first that has the object wins."""
    with connection(pool) as conn:
        candidates = accounts.known(conn, most)
    if not candidates:
        raise NotFound(f"{stripe_id} is not on the platform account, and no connected account is known.")
    with ThreadPoolExecutor(max_workers=min(SEARCH_THREADS, len(candidates)), thread_name_prefix="connect") as pool_:
        futures = {pool_.submit(_first_read, gateway, stripe_id, account): account for account in candidates}
        for future in as_completed(futures):
            try:
                found = future.result()
            except NotFound:
                continue
            for other in futures:
                other.cancel()
            return futures[future], found
    raise NotFound(f"{stripe_id} is not on the platform nor on any of {len(candidates)} connected accounts tried.")


def from_stripe(
    pool: ConnectionPool,
    gateway: StripeGateway,
    stripe_id: str,
    *,
    now: datetime,
    account: str | None = None,
    search_accounts: int = 0,
) -> PaymentView:
    """Fetch the object and its payment from Stripe, store them, and return the view.

    `account` names the connected account that owns it; otherwise the one a previous search found,
    else the platform, else (up to `search_accounts`) the known connected accounts, in parallel.
    Refunds and disputes the key may not read are left out and named in the view. Raises NotFound,
    StripeUnavailable, StripeRejectedKey (StripePermissionMissing) or StripeRateLimited.
    """
    if account is None:
        try:
            with connection(pool) as conn:
                account = accounts.owner(conn, stripe_id)
        except DatabaseUnavailable:
            search_accounts = 0  # the known accounts are in the database too: the platform only
    try:
        payment_json = _first_read(gateway, stripe_id, account)
    except NotFound:
        if account is not None or search_accounts <= 0:
            raise
        account, payment_json = _search_accounts(pool, gateway, stripe_id, search_accounts)
        _remember_owner(pool, stripe_id, account, now)
    if payment_json.get("object") == "payment_intent":
        payment = sm.payment_from_payment_intent(payment_json, account=account, observed_at=now)
    else:
        payment = sm.payment_from_charge(payment_json, account=account, observed_at=now)
    unreadable: list[tuple[str, str]] = []
    refunds = [
        sm.refund_from_stripe(r, account=account, observed_at=now)
        for r in _readable(
            "refunds",
            unreadable,
            lambda: gateway.refunds_for(
                payment_intent=payment.payment_intent_id, charge=payment.charge_id, account=account
            ),
        )
    ]
    disputes = [
        sm.dispute_from_stripe(d, account=account, observed_at=now)
        for d in _readable(
            "disputes",
            unreadable,
            lambda: gateway.disputes_for(
                payment_intent=payment.payment_intent_id, charge=payment.charge_id, account=account
            ),
        )
    ]
    focus = stripe_id if stripe_id != payment.id else None
    try:
        with transaction(pool) as conn:
            store.save_payment(conn, payment)
            for refund in refunds:
                store.save_refund(conn, refund)
            for dispute in disputes:
                store.save_dispute(conn, dispute)
            view = store.payment_view(conn, payment.id, focus=focus)
    except DatabaseUnavailable:
        # The person still gets Stripe's answer; the cache fills on the next lookup or webhook.
        log.warning("database unavailable; %s answered from Stripe without caching", stripe_id)
        view = None
    view = view or PaymentView(
        payment, tuple(sorted(refunds, key=lambda r: r.stripe_created)), tuple(disputes), focus=focus
    )
    return replace(view, unreadable=tuple(unreadable)) if unreadable else view


def _readable(what: str, unreadable: list[tuple[str, str]], read: Callable[[], list[dict[str, Any]]]) -> list:
    """What `read` returns, or nothing when the key lacks the permission (noted in `unreadable`)."""
    try:
        return read()
    except StripePermissionMissing as exc:
        unreadable.append((what, exc.permission))
        return []


def _remember_owner(pool: ConnectionPool, stripe_id: str, account: str, now: datetime) -> None:
    try:
        with transaction(pool) as conn:
            accounts.know(conn, account)
            accounts.remember_owner(conn, stripe_id, account, now)
    except DatabaseUnavailable:
        log.warning("database unavailable; which account owns %s is not cached", stripe_id)
