"""All outgoing Stripe calls: one StripeClient, retries and timeouts, errors translated once."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import stripe

from domain.errors import (
    DeskError,
    NotFound,
    StripeRateLimited,
    StripeRejectedKey,
    StripeUnavailable,
)
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

    def __init__(self, message: str, *, code: str | None = None, request_id: str | None = None):
        super().__init__(message)
        self.code = code
        self.request_id = request_id


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Turn stripe-python exceptions into ours, logging Stripe's request id."""
    try:
        yield
    except stripe.AuthenticationError as exc:
        log.error("Stripe rejected the API key during %s (request %s)", what, exc.request_id)
        raise StripeRejectedKey() from exc
    except stripe.PermissionError as exc:
        log.error("Stripe key lacks a permission for %s (request %s)", what, exc.request_id)
        raise StripeRejectedKey(
            "Our Stripe key is not allowed to do that: ask the engineer who deployed the bot "
            "to grant the restricted key the permissions listed in the README."
        ) from exc
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
    ):
        self.client = client
        # Called with 'authentication' or 'permission' when Stripe refuses our key: on-call hears at once.
        self.on_key_rejected = on_key_rejected
        # A person is waiting on a lookup: retry once, not as often as background work does.
        self._lookup_options: Any = {"max_network_retries": lookup_retries}

    def _get(self, what: str, call: Callable[[], Any]) -> Json:
        try:
            with translated(what):
                return call().to_dict()
        except StripeRejectedKey as exc:
            if self.on_key_rejected:
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
        )

    def charge(self, charge_id: str, account: str | None = None) -> Json:
        """A charge."""
        v1 = self.client.v1
        return self._get(
            f"retrieve {charge_id}",
            lambda: v1.charges.retrieve(charge_id, options=self.options(account)),
        )

    def refund(self, refund_id: str, account: str | None = None) -> Json:
        """A refund."""
        v1 = self.client.v1
        return self._get(
            f"retrieve {refund_id}",
            lambda: v1.refunds.retrieve(refund_id, options=self.options(account)),
        )

    def dispute(self, dispute_id: str, account: str | None = None) -> Json:
        """A dispute (dp_ or du_)."""
        v1 = self.client.v1
        return self._get(
            f"retrieve {dispute_id}",
            lambda: v1.disputes.retrieve(dispute_id, options=self.options(account)),
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
        return self._get("list refunds", lambda: v1.refunds.list(params=params, options=self.options(account)))["data"]

    def disputes_for(self, *, payment_intent: str | None, charge: str | None, account: str | None = None) -> list[Json]:
        """Every dispute of a payment."""
        params: Any = {"limit": 100}
        params.update({"payment_intent": payment_intent} if payment_intent else {"charge": charge})
        v1 = self.client.v1
        return self._get("list disputes", lambda: v1.disputes.list(params=params, options=self.options(account)))[
            "data"
        ]
