"""Refund requests: asking, deciding, executing exactly once, recovering, expiring.

Money safety, in order of the steps:
- asking and approving reserve money under a lock on the payment row, counting succeeded and
  pending refunds and approved-but-unsent requests together;
- every status change is guarded (UPDATE … WHERE status = …), so of many clicks one wins;
- the Stripe refund is created with the request's own idempotency key and names the request in
  its metadata, so retries, recovery after a crash and webhooks all land on one refund;
- Slack messages are queued in the same transaction as the change they announce.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from datetime import datetime, timedelta

import psycopg
from psycopg_pool import ConnectionPool

from domain import stripe_mapping as sm
from domain.errors import DeskError, NotFound, StripeRateLimited, StripeUnavailable
from domain.models import Draft, Refund, RefundRequest, refundable
from domain.money import AmountError, format_amount, parse_amount
from domain.policy import Roles, approvals_needed, is_user_id, refusal_to_decide, refusal_to_refund
from messages import keys
from messages import requests as rb
from services import hooks, lookup
from services.deps import Context
from settings import Settings
from store import audit, db, drafts, homes, outbox
from store import payments as payment_store
from store import requests as store

log = logging.getLogger(__name__)

# The request's idempotency key names it in the refund's metadata: unique across installations that
# share a Stripe account, unlike our local request number (kept alongside for people).
METADATA_KEY = "refund_desk_request"
METADATA_NUMBER = "refund_request_id"
# How long an approved or sent-but-unconfirmed request may sit before recovery takes it over.
RECOVER_AFTER = timedelta(seconds=60)
# What a Stripe refund's status means for the request that made it.
REQUEST_STATUS_OF_REFUND = {
    "pending": "sent",
    "requires_action": "sent",
    "succeeded": "succeeded",
    "failed": "failed",
    "canceled": "canceled",
}


class RequestRefused(DeskError):
    """This refund cannot be requested."""

    def __init__(self, message: str | None = None, *, field: str = "payment") -> None:
        super().__init__(message)
        self.field = field  # which part of the request is refused (the API names it)


class AlreadyPending(RequestRefused):
    """A request for this payment is already waiting for approval."""


class DecisionRefused(DeskError):
    """This decision is not yours to make now."""


def _audit(
    conn: psycopg.Connection, req: RefundRequest, action: str, actor: str, surface: str, now: datetime, **details
) -> None:
    ids = [i for i in (req.payment_id, req.charge_id, req.stripe_refund_id) if i]
    audit.record(
        conn,
        actor=actor,
        surface=surface,
        action=action,
        subject=f"request:{req.id}",
        stripe_ids=ids,
        details={"amount": req.amount, "currency": req.currency, "status": req.status, **details},
        at=now,
    )


def _announce(
    conn: psycopg.Connection,
    settings: Settings,
    req: RefundRequest,
    step: str,
    *,
    first: bool = False,
    **facts: str | None,
) -> None:
    """Queue the approval message (or its update), the step's thread note, and its note to the requester."""
    thread, requester = rb.step_notes(step, req, approvals_channel=settings.approvals_channel, **facts)
    channel = settings.approvals_channel
    livemode = settings.stripe_livemode
    if channel:
        view = payment_store.payment_view(conn, req.payment_id)
        message = rb.approval_message(req, view, livemode=livemode)
        key = keys.request(req.id)
        if first:
            outbox.enqueue(conn, channel=channel, payload=message, message_key=key)
        else:
            outbox.enqueue(conn, channel=channel, method="chat.update", payload=message, parent_key=key)
        if thread:
            outbox.enqueue(conn, channel=channel, payload={"text": thread}, parent_key=key)
    # Another system (an API key) has no Slack DM to tell; it reads the request back through the API.
    if requester and is_user_id(req.requested_by):
        outbox.enqueue(conn, channel=req.requested_by, payload=rb.requester_note(req, requester))
    # Home tabs that show this request: its requester's, and every approver's waiting list.
    homes.mark_stale(conn, users=[req.requested_by], sections=["approvals"], now=req.updated_at)


# --- asking -------------------------------------------------------------------------------------------

REASONS = frozenset({"requested_by_customer", "duplicate", "fraudulent"})
# How long a refund that runs at once waits for its requester's confirmation.
DRAFT_TTL = timedelta(minutes=15)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_text(text: str | None, *, limit: int = 2000) -> str | None:
    """Text a person typed, fit to store and show: no NUL or control characters, trimmed, bounded."""
    if text is None:
        return None
    cleaned = _CONTROL.sub("", text).strip()
    return cleaned[:limit] or None


def ask(
    ctx: Context,
    *,
    payment_id: str,
    amount_text: str | None,
    reason: str,
    note: str | None,
    user: str,
    roles: Roles,
    via: str,
    now: datetime,
    needs_approver: bool = False,
    account: str | None = None,
) -> RefundRequest | Draft:
    """File a request, or, when it would run at once, a draft its requester must confirm first.

    amount_text None asks for everything still refundable. Raises RequestRefused with the reason.
    needs_approver: a person other than the requester must approve it, whatever the roles and
    thresholds say (requests from other systems through the API never run at once).
    """
    if not roles.requester:
        raise RequestRefused("You are not allowed to ask for refunds (see REQUESTERS); ask someone who is.")
    if reason not in REASONS:
        raise RequestRefused("The reason must be requested_by_customer, duplicate or fraudulent.", field="reason")
    # A connected account's payment we do not hold yet: the account named, or the known ones tried.
    view = lookup.from_store(ctx.pool, payment_id) or lookup.from_stripe(
        ctx.pool,
        ctx.stripe,
        payment_id,
        now=now,
        account=account,
        search_accounts=ctx.settings.connect_lookup_accounts,
    )
    amount = None
    if amount_text is not None:
        try:
            amount = parse_amount(amount_text, view.payment.currency)
        except AmountError as exc:
            raise RequestRefused(str(exc), field="amount") from exc
    with db.transaction(ctx.pool) as conn:
        return _file(
            conn,
            ctx,
            view.payment.id,
            amount,
            reason=reason,
            note=clean_text(note),
            user=user,
            roles=roles,
            via=via,
            now=now,
            confirmed=False,
            needs_approver=needs_approver,
        )


def confirm(ctx: Context, draft_id: str, *, user: str, roles: Roles, now: datetime) -> RefundRequest:
    """File the request a draft describes, for exactly its amount; a draft is used once."""
    with db.transaction(ctx.pool) as conn:
        draft = drafts.take(conn, draft_id, user)
        if draft is None:
            raise RequestRefused("This refund was already confirmed or canceled; nothing more was done.")
        if draft.expires_at <= now:
            raise RequestRefused("This confirmation has expired and nothing was refunded; ask again.")
        req = _file(
            conn,
            ctx,
            draft.payment_id,
            draft.amount,
            reason=draft.reason,
            note=draft.note,
            user=user,
            roles=roles,
            via=draft.requested_via,
            now=now,
            confirmed=True,
            currency=draft.currency,
        )
        if not isinstance(req, RefundRequest):  # pragma: no cover - a confirmed filing never drafts again
            raise RequestRefused("This refund could not be filed; ask again.")
        return req


def cancel(ctx: Context, draft_id: str, *, user: str) -> bool:
    """Drop a draft its requester does not want; False when it was already used or gone."""
    with db.transaction(ctx.pool) as conn:
        return drafts.take(conn, draft_id, user) is not None


def _file(
    conn: psycopg.Connection,
    ctx: Context,
    payment_id: str,
    amount: int | None,
    *,
    reason: str,
    note: str | None,
    user: str,
    roles: Roles,
    via: str,
    now: datetime,
    confirmed: bool,
    currency: str | None = None,
    needs_approver: bool = False,
) -> RefundRequest | Draft:
    if not store.lock_payment(conn, payment_id):
        raise RequestRefused("The payment could not be saved just now; try again in a minute.")
    # Read under the lock: this is what concurrent requests and approvals see too.
    fresh = payment_store.payment_view(conn, payment_id)
    if fresh is None:  # pragma: no cover - the lock found the row
        raise RequestRefused("The payment could not be read just now; try again in a minute.")
    if currency is not None and currency != fresh.payment.currency:
        raise RequestRefused("The payment's currency changed since you asked; ask again.")
    currency = fresh.payment.currency
    existing = store.pending_for(conn, fresh.payment.id)
    if existing:
        raise AlreadyPending(
            f"Request #{existing.id} for {format_amount(existing.amount, currency)} on "
            f"`{fresh.payment.id}` is already waiting for approval."
        )
    refusal = refusal_to_refund(fresh, amount)
    if refusal:
        # Refusable whatever the amount: the payment is the problem; otherwise the amount is.
        raise RequestRefused(refusal, field="payment" if refusal_to_refund(fresh, None) else "amount")
    amount = amount or refundable(fresh)
    settings = ctx.settings
    self_approved, requested = store.prior(conn, fresh.payment.id, user)
    needed = approvals_needed(
        roles,
        amount,
        currency,
        settings.approval_threshold,
        settings.second_approval_threshold,
        self_approved_before=self_approved,
        requested_before=requested,
    )
    if needs_approver:
        needed = max(needed, 1)
    if needed == 0 and not confirmed:
        # No second person will look at it: the requester sees the exact amount and confirms it first.
        drafts.discard_expired(conn, now)
        return drafts.create(
            conn,
            payment_id=fresh.payment.id,
            amount=amount,
            currency=currency,
            reason=reason,
            note=note,
            requested_by=user,
            requested_via=via,
            created_at=now,
            expires_at=now + DRAFT_TTL,
        )
    req = store.create(
        conn,
        payment_id=fresh.payment.id,
        charge_id=fresh.payment.charge_id,
        account=fresh.payment.account,
        amount=amount,
        currency=currency,
        reason=reason,
        note=note,
        requested_by=user,
        requested_via=via,
        approvals_needed=needed,
        expires_at=now + settings.request_expiry,
        now=now,
    )
    if req is None:
        # Two people asked at the same moment; the other request is the one that waits.
        raise AlreadyPending(f"A request for `{fresh.payment.id}` is already waiting for approval.")
    surface = "api" if via == "api" else "slack"
    _audit(conn, req, "request.created", user, surface, now, reason=reason, approvals_needed=needed)
    if needed == 0:
        _audit(conn, req, "request.approved", user, surface, now, why="approver within the threshold, confirmed")
    _announce(conn, ctx.settings, req, "filed", first=True)
    return req


# --- deciding -----------------------------------------------------------------------------------------


def approve(ctx: Context, request_id: int, *, user: str, roles: Roles, now: datetime) -> RefundRequest:
    """Record an approval; the request is approved once it has all it needs. Raises DecisionRefused."""
    with db.transaction(ctx.pool) as conn:
        req = store.get(conn, request_id)
        if req is None:
            raise NotFound(f"There is no refund request #{request_id}.")
        store.lock_payment(conn, req.payment_id)
        req = store.get(conn, request_id) or req  # as it is now that we hold the payment
        refusal = refusal_to_decide(user, roles, req.requested_by, req.status, req.approvals)
        if refusal:
            raise DecisionRefused(rb.already_decided(req) if req.status != "pending" else refusal)
        view = payment_store.payment_view(conn, req.payment_id)
        if view is not None:
            money_refusal = refusal_to_refund(view, req.amount)
            if money_refusal:
                raise DecisionRefused(f"{money_refusal} Reject this request, or ask for a smaller amount.")
        updated = store.approve(conn, request_id, user, now)
        if updated is None:
            raise DecisionRefused(rb.already_decided(store.get(conn, request_id) or req))
        if updated.status == "approved":
            _audit(conn, updated, "request.approved", user, "slack", now)
            _announce(conn, ctx.settings, updated, "approved", user=user)
        else:
            _audit(conn, updated, "request.approval_added", user, "slack", now)
            _announce(conn, ctx.settings, updated, "approval_added", user=user)
        return updated


def for_rejection(ctx: Context, request_id: int, *, user: str, roles: Roles) -> RefundRequest:
    """The request a person is about to reject, if they may (the reject modal asks why next)."""
    with db.connection(ctx.pool) as conn:
        req = store.get(conn, request_id)
    if req is None:
        raise NotFound(f"There is no refund request #{request_id}.")
    refusal = refusal_to_decide(user, roles, req.requested_by, req.status, ())
    if refusal:
        raise DecisionRefused(refusal)
    return req


def run_approved(ctx: Context, request_id: int, *, now: datetime) -> RefundRequest | None:
    """Create the refund of a request if it is approved (a guarded step: of many callers, one runs it)."""
    return execute(ctx, request_id, now=now)


def reject(ctx: Context, request_id: int, *, user: str, roles: Roles, reason: str, now: datetime) -> RefundRequest:
    """Reject a pending request with a reason. Raises DecisionRefused."""
    reason = clean_text(reason, limit=500) or ""
    if len(reason) < 3:
        raise DecisionRefused("Say why, in a few words: the requester sees it.")
    with db.transaction(ctx.pool) as conn:
        req = store.get(conn, request_id)
        if req is None:
            raise NotFound(f"There is no refund request #{request_id}.")
        refusal = refusal_to_decide(user, roles, req.requested_by, req.status, ())
        if refusal:
            raise DecisionRefused(rb.already_decided(req) if req.status != "pending" else refusal)
        updated = store.reject(conn, request_id, user, reason, now)
        if updated is None:
            raise DecisionRefused(rb.already_decided(store.get(conn, request_id) or req))
        _audit(conn, updated, "request.rejected", user, "slack", now, reason=reason)
        _announce(conn, ctx.settings, updated, "rejected", user=user, reason=reason)
        return updated


# --- executing ----------------------------------------------------------------------------------------


def execute(ctx: Context, request_id: int, *, now: datetime) -> RefundRequest | None:
    """Create the Stripe refund of an approved request, once. None when someone else is on it."""
    with db.transaction(ctx.pool) as conn:
        req = store.mark_sent(conn, request_id, now)
        if req is None:
            return None
        _audit(conn, req, "refund.requested_from_stripe", "system", "worker", now)
    return _send(ctx, req, now=now)


def _send(ctx: Context, req: RefundRequest, *, now: datetime) -> RefundRequest:
    """Call Stripe with the request's key and record what it said (or that it has not said yet)."""
    payment_intent = req.payment_id if req.payment_id.startswith("pi_") else None
    try:
        refund = ctx.stripe.create_refund(
            payment_intent=payment_intent,
            charge=None if payment_intent else (req.charge_id or req.payment_id),
            amount=req.amount,
            reason=req.reason,
            metadata={METADATA_KEY: req.idempotency_key, METADATA_NUMBER: str(req.id)},
            idempotency_key=req.idempotency_key,
            account=req.account,
        )
    except (StripeUnavailable, StripeRateLimited) as exc:
        # The outcome is unknown: the request stays sent; recovery asks again with the same key.
        log.warning("refund for request %s unconfirmed: %s", req.id, exc.message)
        with db.transaction(ctx.pool) as conn:
            current = store.touch_sent(conn, req.id, now) or req
            _audit(conn, current, "refund.unconfirmed", "system", "worker", now, error=exc.message)
        return current
    except DeskError as exc:
        # Stripe refused (balance, dispute, already refunded, key…): no money moved.
        with db.transaction(ctx.pool) as conn:
            failed = store.fail(conn, req.id, exc.message, now)
            if failed is None:
                return store.get(conn, req.id) or req
            _audit(conn, failed, "refund.refused_by_stripe", "stripe", "worker", now, error=exc.message)
            _announce(conn, ctx.settings, failed, "refused_by_stripe", message=exc.message)
            return failed
    return record_refund(ctx, req.id, refund, now=now)


def record_refund(ctx: Context, request_id: int, refund_json: dict, *, now: datetime) -> RefundRequest:
    """Store the refund Stripe created for a request and move the request along with it."""
    refund = sm.refund_from_stripe(refund_json, account=None, observed_at=now)
    with db.transaction(ctx.pool) as conn:
        req = store.get(conn, request_id)
        if req is None:
            raise NotFound(f"There is no refund request #{request_id}.")
        # Same lock order as the webhook path (refund row, then request row): no deadlock between them.
        saved = payment_store.save_refund(conn, _linked(refund, req))
        if saved.after is not None:  # other systems hear of it (OUTGOING_WEBHOOKS), whoever stored it first
            hooks.refund_changed(conn, ctx.settings, saved.before, saved.after, now=now)
        return follow(conn, ctx.settings, req, refund, now=now, surface="worker") or store.get(conn, request_id) or req


def _linked(refund: Refund, req: RefundRequest) -> Refund:
    return replace(refund, request_id=req.id, account=refund.account or req.account)


def follow(
    conn: psycopg.Connection, settings: Settings, req: RefundRequest, refund: Refund, *, now: datetime, surface: str
) -> RefundRequest | None:
    """Move a request along with its refund's status (from our call, a webhook or recovery)."""
    status = REQUEST_STATUS_OF_REFUND.get(refund.status, "sent")
    message = refund.failure_reason.replace("_", " ") if refund.failure_reason else None
    updated = store.follow_refund(conn, req.id, refund.id, status, message, now)
    if updated is None:
        return None
    _audit(conn, updated, f"request.{status}", "stripe", surface, now, refund=refund.id, refund_status=refund.status)
    _announce(conn, settings, updated, status, refund_id=refund.id, message=message)
    return updated


def recover_next(ctx: Context, *, now: datetime) -> RefundRequest | None:
    """Take over one request left approved or sent without a known refund (a crash, a timeout)."""
    with db.transaction(ctx.pool) as conn:
        req = store.claim_stuck(conn, now - RECOVER_AFTER)
        if req is None:
            return None
        if req.status == "approved":
            req = store.mark_sent(conn, req.id, now) or req
            _audit(conn, req, "refund.requested_from_stripe", "system", "worker", now, recovery=True)
        payment_intent = req.payment_id if req.payment_id.startswith("pi_") else None
        charge = None if payment_intent else (req.charge_id or req.payment_id)
        # Whatever happens next, this request waits its turn again: one that cannot be looked up
        # must not hold back the others.
        store.touch_sent(conn, req.id, now)
        try:
            # First ask whether an earlier attempt got through (its answer may have been lost).
            found = ctx.stripe.find_refund(
                payment_intent=payment_intent,
                charge=charge,
                metadata_key=METADATA_KEY,
                value=req.idempotency_key,
                account=req.account,
            )
        except DeskError as exc:
            log.error("recovery of request %s could not ask Stripe: %s", req.id, exc.message)
            _audit(conn, req, "refund.recovery_failed", "system", "worker", now, error=exc.message)
            return req
    if found is not None:
        log.info("recovered refund %s of request %s", found.get("id"), req.id)
        return record_refund(ctx, req.id, found, now=now)
    # Not in Stripe: send again with the same key (Stripe replays it if the first one did arrive).
    return _send(ctx, req, now=now)


# --- expiring and listing ----------------------------------------------------------------------------


def expire_due(ctx: Context, *, now: datetime) -> list[RefundRequest]:
    """Expire pending requests whose time is up, with a note in their thread and to the requester."""
    with db.transaction(ctx.pool) as conn:
        expired = store.expire(conn, now)
        for req in expired:
            _audit(conn, req, "request.expired", "system", "worker", now)
            _announce(conn, ctx.settings, req, "expired")
    return expired


def open_requests(pool: ConnectionPool) -> list[RefundRequest]:
    """Requests still open, oldest first."""
    with db.connection(pool) as conn:
        return store.open_requests(conn)


PERIOD_DAYS = {"24h": 1, "7d": 7, "30d": 30, "90d": 90}


def period_start(period: str, now: datetime) -> datetime:
    """When a stats period starts (UTC)."""
    if period == "today":
        return now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "month":
        return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return now - timedelta(days=PERIOD_DAYS[period])


def stats(pool: ConnectionPool, period: str, now: datetime) -> tuple[datetime, list[tuple[str, str, int, int]]]:
    """Counts and sums by status and currency since the period started."""
    since = period_start(period, now)
    with db.connection(pool) as conn:
        return since, store.stats(conn, since)
