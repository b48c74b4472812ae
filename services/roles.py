"""Who is a requester or approver: settings plus Slack user-group members, cached with expiry."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from domain.errors import DeskError
from domain.policy import RoleConfig, Roles, is_approver, is_oncall, is_requester, is_viewer, roles_of
from settings import Settings

log = logging.getLogger(__name__)


class RolesUnavailable(DeskError):
    """Slack did not tell us who is in the approver and requester groups just now; try again in a minute."""


class RoleDirectory:
    """Resolves roles; user-group members are read with usergroups.users.list and kept for a while.

    A user named directly needs no Slack call, and only the groups of the role being checked are read.
    """

    def __init__(self, settings: Settings, client: WebClient, *, clock: Callable[[], float] = time.monotonic) -> None:
        oncall = frozenset({settings.oncall_group}) if settings.oncall_group else frozenset()
        self.config = RoleConfig(settings.requesters, settings.approvers, settings.admins, oncall, settings.viewers)
        self.client = client
        self.ttl = settings.usergroup_cache_seconds
        self.clock = clock
        self._cache: dict[str, tuple[frozenset[str], float]] = {}
        self._lock = threading.Lock()

    def _members(self, group: str) -> frozenset[str]:
        now = self.clock()
        with self._lock:
            cached = self._cache.get(group)
        if cached and now - cached[1] < self.ttl:
            return cached[0]
        try:
            response = self.client.usergroups_users_list(usergroup=group)
            members = frozenset(response.get("users") or [])
        except (SlackApiError, OSError) as exc:
            if cached:
                # Slack is having a moment: an old answer beats refusing everyone.
                log.warning("usergroups.users.list %s failed (%s); using the cached members", group, exc)
                return cached[0]
            log.error("usergroups.users.list %s failed and nothing is cached: %s", group, exc)
            raise RolesUnavailable() from exc
        with self._lock:
            self._cache[group] = (members, now)
        return members

    def roles(self, user: str) -> Roles:
        """The user's roles now (both must be known: raises RolesUnavailable when Slack cannot say)."""
        return roles_of(user, self.config, self._members)

    def for_request(self, user: str) -> Roles:
        """Roles for asking: whether they may ask must be known; an approver Slack cannot confirm asks as anyone."""
        requester = is_requester(user, self.config, self._members)
        try:
            approver = requester and is_approver(user, self.config, self._members)
        except RolesUnavailable:
            approver = False  # the safe side: the request waits for an approver instead of running at once
        return Roles(requester=requester, approver=approver)

    def for_decision(self, user: str) -> Roles:
        """Roles for approving or rejecting: only whether they are an approver is looked up."""
        return Roles(requester=False, approver=is_approver(user, self.config, self._members))

    def may_take_disputes(self, user: str) -> bool:
        """Approvers, admins and ONCALL_GROUP members may take a dispute."""
        return is_oncall(user, self.config, self._members)

    def may_view(self, user: str) -> bool:
        """VIEWERS (everyone when unset), approvers and admins may see payment details."""
        return is_viewer(user, self.config, self._members)

    def may_request(self, user: str) -> bool:
        """Whether the user may ask for refunds (REQUESTERS)."""
        return is_requester(user, self.config, self._members)

    def may_decide(self, user: str) -> bool:
        """Whether the user may approve or reject (APPROVERS and ADMINS)."""
        return is_approver(user, self.config, self._members)
