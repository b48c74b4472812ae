"""What listeners and handlers need, built once per process in app.py."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg_pool import ConnectionPool

from services.roles import RoleDirectory
from services.stripe_gateway import StripeGateway
from settings import Settings


@dataclass(frozen=True)
class Deps:
    """The shared services of a process."""

    settings: Settings
    pool: ConnectionPool
    stripe: StripeGateway
    roles: RoleDirectory

    @property
    def requests(self):
        """The refund-request workflow's context."""
        from services.refund_requests import Context

        return Context(pool=self.pool, stripe=self.stripe, settings=self.settings)
