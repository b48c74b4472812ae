"""What listeners, handlers and jobs need, built once per process in app.py."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg_pool import ConnectionPool
from slack_sdk import WebClient

from services.roles import RoleDirectory
from services.stripe_gateway import StripeGateway
from settings import Settings


@dataclass(frozen=True)
class Context:
    """What the refund-request workflow needs from the process."""

    pool: ConnectionPool
    stripe: StripeGateway
    settings: Settings


@dataclass(frozen=True)
class Deps:
    """The shared clients of a process: one pool, one Stripe client, one Slack client."""

    settings: Settings
    pool: ConnectionPool
    stripe: StripeGateway
    slack: WebClient
    roles: RoleDirectory

    @property
    def requests(self) -> Context:
        """The refund-request workflow's context."""
        return Context(pool=self.pool, stripe=self.stripe, settings=self.settings)
