"""The exception tree. Each docstring is the default message shown to a person."""

from __future__ import annotations


class DeskError(Exception):
    """Something went wrong in the refund desk."""

    def __init__(self, message: str | None = None) -> None:
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


class StripePermissionMissing(StripeRejectedKey):
    """Our Stripe key is not allowed to do that: grant the restricted key the permission the README lists."""

    def __init__(self, permission: str, *, stripe_name: str | None = None, what: str | None = None) -> None:
        self.permission = permission  # the Dashboard's name: 'Disputes: Read'
        self.stripe_name = stripe_name  # Stripe's own: 'rak_dispute_read', when it said
        self.what = what
        super().__init__(
            f"Our Stripe key lacks *{permission}*: ask the engineer who deployed the bot to grant it "
            "to the restricted key (README, 'Least privilege')."
        )
