"""All outgoing Stripe calls: one StripeClient, retries and timeouts, errors translated once."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import stripe

from domain.errors import (
    DeskError,
    NotFound,
    StripePermissionMissing,
    StripeRateLimited,
    StripeRejectedKey,
    StripeUnavailable,
)
from domain.permissions import missing_permission, stripe_name
from settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
Json = dict[str, Any]


def build_client(settings: Settings) -> stripe.StripeClient:
    """The one StripeClient of a process, pointed at STRIPE_API_BASE."""
    return stripe.StripeClient(
        settings.stripe_secret_key,
        base_addresses={"api": settings.stripe_api_base},
        max_network_retries=settings.stripe_max_network_retries,
        http_client=stripe.RequestsClient(timeout=settings.stripe_timeout),
    )


class StripeError(DeskError):
    """Stripe refused the request."""

    def __init__(self, message: str, *, code: str | None = None, request_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.request_id = request_id


@contextmanager
def translated(what: str, resource: str | None = None) -> Iterator[None]:
    """Turn stripe-python exceptions into ours, logging Stripe's request id.

    `resource` (domain.permissions: 'disputes', 'events', …) names the permission a 403 means when
    Stripe's message does not.
    """
    try:
        yield
    except stripe.AuthenticationError as exc:
        log.error("Stripe rejected the API key during %s (request %s)", what, exc.request_id)
        raise StripeRejectedKey() from exc
    except stripe.PermissionError as exc:
        if exc.code == "account_invalid":
            # A connected account we may no longer reach (disconnected, or never ours): not a key problem.
            raise NotFound("Stripe says we have no access to that connected account (it may be disconnected).") from exc
        said = exc.user_message or str(exc)
        permission = missing_permission(resource, said)
        log.error("Stripe key lacks %s for %s (request %s)", permission, what, exc.request_id)
        raise StripePermissionMissing(permission, stripe_name=stripe_name(said), what=what) from exc
    except stripe.RateLimitError as exc:
        log.warning("Stripe rate-limited %s (request %s)", what, exc.request_id)
        raise StripeRateLimited() from exc
    except stripe.APIConnectionError as exc:
        log.warning("Stripe unreachable during %s: %s", what, type(exc).__name__)
        raise StripeUnavailable() from exc
    except stripe.InvalidRequestError as exc:
        if exc.code == "resource_missing" and exc.http_status == 404:
            raise NotFound(exc.user_message or "Not found in Stripe.") from exc
        log.warning("Stripe refused %s: %s (request %s)", what, exc.code, exc.request_id)
        raise StripeError(
            exc.user_message or "Stripe refused the request.", code=exc.code, request_id=exc.request_id
        ) from exc
    except stripe.APIError as exc:
        log.warning("Stripe error during %s (request %s, status %s)", what, exc.request_id, exc.http_status)
        raise StripeUnavailable("Stripe answered with an error; try again in a minute.") from exc
    except stripe.StripeError as exc:
        log.warning("Stripe error during %s: %s (request %s)", what, type(exc).__name__, exc.request_id)
        raise StripeError(
            exc.user_message or "Stripe refused the request.", code=exc.code, request_id=exc.request_id
        ) from exc


class StripeGateway:
    """Reads from Stripe as plain JSON dicts, the same shape webhooks deliver."""

    def __init__(
        self,
        client: stripe.StripeClient,
        *,
        lookup_retries: int = 1,
        on_key_rejected: Callable[[str], None] | None = None,
    ) -> None:
        self.client = client
        # Called with 'authentication' or 'permission' when Stripe refuses our key: on-call hears at once.
        self.on_key_rejected = on_key_rejected
        # A person is waiting on a lookup: retry once, not as often as background work does.
        self._lookup_options: Any = {"max_network_retries": lookup_retries}

    def _get(self, what: str, call: Callable[[], Any], resource: str | None = None) -> Json:
        try:
            with translated(what, resource):
                return call().to_dict()
        except StripeRejectedKey as exc:
            # A missing permission is named where it bites (a lookup's line, a request's thread) and by
            # `refund-desk doctor`; a key withheld on purpose (least privilege) must not keep paging.
            if self.on_key_rejected and not isinstance(exc, StripePermissionMissing):
                kind = "permission" if isinstance(exc.__cause__, stripe.PermissionError) else "authentication"
                try:
                    self.on_key_rejected(kind)
                except DeskError:
                    log.exception("could not record the key problem")  # the person still gets their answer
            raise

    def options(self, account: str | None) -> Any:
        """Request options for a lookup on the platform or a connected account."""
        opts = dict(self._lookup_options)
        if account:
            opts["stripe_account"] = account
        return opts

    def payment_intent(self, pi_id: str, account: str | None = None) -> Json:
        """A payment intent with its latest charge expanded."""
        v1 = self.client.v1
        return self._get(
            f"retrieve {pi_id}",
            lambda: v1.payment_intents.retrieve(
                pi_id, params={"expand": ["latest_charge"]}, options=self.options(account)
            ),
            "payment_intents",
        )

    def charge(self, charge_id: str, account: str | None = None) -> Json:
        """A charge."""
        v1 = self.client.v1
        return self._get(
            f"retrieve {charge_id}",
            lambda: v1.charges.retrieve(charge_id, options=self.options(account)),
            "charges",
        )

    def refund(self, refund_id: str, account: str | None = None) -> Json:
        """A refund."""
        v1 = self.client.v1
        return self._get(
            f"retrieve {refund_id}",
            lambda: v1.refunds.retrieve(refund_id, options=self.options(account)),
            "charges",
        )

    def dispute(self, dispute_id: str, account: str | None = None) -> Json:
        """A dispute (dp_ or du_)."""
        v1 = self.client.v1
        return self._get(
            f"retrieve {dispute_id}",
            lambda: v1.disputes.retrieve(dispute_id, options=self.options(account)),
            "disputes",
        )

    def create_refund(
        self,
        *,
        payment_intent: str | None,
        charge: str | None,
        amount: int,
        reason: str,
        metadata: dict[str, str],
        idempotency_key: str,
        account: str | None,
    ) -> Json:
        """Create a refund; the idempotency key makes every retry land on the same refund.

        Raises StripeError (refused: no money moved), StripeRejectedKey, or StripeUnavailable /
        StripeRateLimited (outcome unknown: retry with the same key).
        """
        params: Any = {"amount": amount, "reason": reason, "metadata": metadata}
        params.update({"payment_intent": payment_intent} if payment_intent else {"charge": charge})
        options: Any = {"idempotency_key": idempotency_key}
        if account:
            options["stripe_account"] = account
        v1 = self.client.v1
        try:
            return self._get("create refund", lambda: v1.refunds.create(params=params, options=options))
        except StripeError as exc:
            if exc.code == "idempotency_key_in_use" or isinstance(exc.__cause__, stripe.IdempotencyError):
                # Another attempt with our key is in flight or differs: the outcome is not known yet.
                raise StripeUnavailable("Stripe is still working on an earlier attempt; retrying.") from exc
            raise

    def find_refund(
        self, *, payment_intent: str | None, charge: str | None, metadata_key: str, value: str, account: str | None
    ) -> Json | None:
        """A refund of this payment whose metadata names our request (the outcome of a lost answer)."""
        for refund in self.refunds_for(payment_intent=payment_intent, charge=charge, account=account):
            if (refund.get("metadata") or {}).get(metadata_key) == value:
                return refund
        return None

    def refunds_for(self, *, payment_intent: str | None, charge: str | None, account: str | None = None) -> list[Json]:
        """Every refund of a payment (up to 100, newest first)."""
        params: Any = {"limit": 100}
        params.update({"payment_intent": payment_intent} if payment_intent else {"charge": charge})
        v1 = self.client.v1
        return self._get(
            "list refunds", lambda: v1.refunds.list(params=params, options=self.options(account)), "charges"
        )["data"]

    def disputes_for(self, *, payment_intent: str | None, charge: str | None, account: str | None = None) -> list[Json]:
        """Every dispute of a payment."""
        params: Any = {"limit": 100}
        params.update({"payment_intent": payment_intent} if payment_intent else {"charge": charge})
        v1 = self.client.v1
        return self._get(
            "list disputes", lambda: v1.disputes.list(params=params, options=self.options(account)), "disputes"
        )["data"]

    def connected_accounts(self, *, most: int = 1000) -> list[Json]:
        """The platform's connected accounts (Connect), newest first, at most `most`."""
        found: list[Json] = []
        v1 = self.client.v1
        with translated("list accounts", "accounts"):
            for account in v1.accounts.list(params={"limit": 100}).auto_paging_iter():
                found.append(account.to_dict())
                if len(found) >= most:
                    break
        return found

    def probe(self, resource: str) -> None:
        """A harmless read proving the key may read `resource` (domain.permissions); raises our errors.

        Never reports to on-call: `refund-desk doctor` asks, and it changes nothing.
        """
        v1 = self.client.v1
        lists: dict[str, Callable[[], Any]] = {
            "payment_intents": lambda: v1.payment_intents.list(params={"limit": 1}),
            "charges": lambda: v1.charges.list(params={"limit": 1}),
            "refunds": lambda: v1.refunds.list(params={"limit": 1}),
            "disputes": lambda: v1.disputes.list(params={"limit": 1}),
            "events": lambda: v1.events.list(params={"limit": 1}),
            "accounts": lambda: v1.accounts.list(params={"limit": 1}),
            "balance_transactions": lambda: v1.balance_transactions.list(params={"limit": 1}),
            "payouts": lambda: v1.payouts.list(params={"limit": 1}),
        }
        with translated(f"check {resource}", resource):
            lists[resource]()

    # --- finance: balance transactions and payouts, read as raw JSON ------------------------------------
    # A day may hold a million balance transactions: pages are parsed with json.loads, never turned
    # into StripeObject trees, and handed on one at a time.

    def _raw_get(self, what: str, path: str, params: dict[str, Any], account: str | None, resource: str) -> Json:
        opts: dict[str, Any] = {"stripe_account": account} if account else {}
        return self._get(what, lambda: _Body(self.client.raw_request("get", path, **params, **opts)), resource)

    def balance_transaction_pages(
        self,
        *,
        account: str | None,
        created_from: int | None = None,
        created_before: int | None = None,
        payout: str | None = None,
        page_size: int = 100,
    ) -> Iterator[list[Json]]:
        """Balance transactions, newest first, one page at a time: those created in [from, before), or of a payout."""
        params: dict[str, Any] = {"limit": page_size}
        created = {k: v for k, v in (("gte", created_from), ("lt", created_before)) if v is not None}
        if created:
            params["created"] = created
        if payout:
            params["payout"] = payout
        while True:
            page = self._raw_get(
                "list balance transactions", "/v1/balance_transactions", params, account, "balance_transactions"
            )
            data = page.get("data") or []
            if data:
                yield data
            if not page.get("has_more") or not data:
                return
            params["starting_after"] = data[-1]["id"]

    def balance_transaction(self, txn_id: str, account: str | None = None) -> Json:
        """One balance transaction with its source expanded (the refund, charge, dispute or payout behind it)."""
        return self._raw_get(
            f"retrieve {txn_id}",
            f"/v1/balance_transactions/{txn_id}",
            {"expand": ["source"]},
            account,
            "balance_transactions",
        )

    def payout(self, payout_id: str, account: str | None = None) -> Json:
        """A payout."""
        return self._raw_get(f"retrieve {payout_id}", f"/v1/payouts/{payout_id}", {}, account, "payouts")


class _Body:
    """A raw response whose to_dict() parses its JSON body, for _get."""

    def __init__(self, response: Any) -> None:
        self._response = response

    def to_dict(self) -> Json:
        """The body as plain JSON."""
        return json.loads(self._response.body)
