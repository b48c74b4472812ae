"""Helpers shared by tests (importable because tests/ is on pytest's pythonpath)."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT.parent / "shared" / "fixtures"


def fixture_json(relative: str) -> dict:
    """A file from shared/fixtures, parsed."""
    return json.loads((FIXTURES / relative).read_text())


def stripe_fixtures(pattern: str) -> list[Path]:
    """Stripe fixture files matching a glob, sorted."""
    return sorted((FIXTURES / "stripe").glob(pattern))
