"""The exception tree. Each docstring is the default message shown to a person."""

from __future__ import annotations


class DeskError(Exception):
    """Something went wrong in the refund desk."""

    def __init__(self, message: str | None = None):
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        """The text fit to show a person."""
        return str(self)


class NotFound(DeskError):
    """Nothing was found with that id."""


class DatabaseUnavailable(DeskError):
    """The database is not reachable right now."""


class Unstorable(DeskError):
    """The database refused to store this record as it is; trying again will not help."""


class StripeUnavailable(DeskError):
    """Stripe did not answer in time. Nothing was changed; try again in a minute."""


class StripeRejectedKey(DeskError):
    """Stripe rejected our API key: ask the engineer who deployed the bot to check STRIPE_SECRET_KEY."""


class StripeRateLimited(DeskError):
    """Stripe is rate-limiting us right now; try again in a minute."""
