"""The README's first command: the demo plays its whole session against the real app."""

from __future__ import annotations

import os
import subprocess
import sys

from support import ROOT


def test_demo_runs_end_to_end(tmp_path) -> None:
    env = {**os.environ, "REFUND_DESK_DATA_DIR": str(tmp_path / "data")}
    env.pop("DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "cli", "demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    out = done.stdout
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in out + done.stderr
    for expected in (
        "Look up a payment",
        "$120.00",
        "Refundable now*: $100.00",
        "¥5,000",
        "5.120 KWD",
        "then through response_url",
        "was found in Stripe",
        "refunds feed",
        "pending → ✅ succeeded",
        '"duplicate":true',
        "Refundable now*: ¥4,000",
        "is waiting for an approver",
        "Only approvers can approve",
        "✅ Refunded · approved by @U0MANAGER1",
        "refunded ✅",
        "“Outside the 14-day window”",
        "Dispute €45.16",
        "You own `dp_",
        "this is the 72h reminder",
        "Closed: 🚨 needs response → 💸 lost",
        "of payments failed over the last 15 min",
        "✅ Recovered: payment failures",
    ):
        assert expected in out, expected
