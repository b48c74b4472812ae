"""psycopg's DETAIL lines (a failing row, with customer emails) never reach a log line."""

from __future__ import annotations

import io
import logging

import psycopg

from store.db import RowDetailFilter


def test_a_logged_database_error_keeps_its_stack_but_not_the_rows_contents() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RowDetailFilter())
    log = logging.getLogger("test_log_filter")
    log.addHandler(handler)
    server_said = "new row violates a check\nDETAIL: Failing row contains (" + "jenny" + "@ex.com)"
    try:
        try:
            raise psycopg.errors.CheckViolation(server_said)
        except psycopg.Error:
            log.exception("applying %s failed", "evt_1")
    finally:
        log.removeHandler(handler)
    text = stream.getvalue()
    assert "applying evt_1 failed [CheckViolation" in text
    assert "test_log_filter.py" in text  # where it happened is kept
    assert "jenny@ex.com" not in text and "DETAIL" not in text
