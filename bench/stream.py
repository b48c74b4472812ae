"""A stream of fixture-shaped Stripe events with fresh ids: what a busy account sends, for the worker benchmark.

Each event is one of the real fixture events in tests/fixtures/stripe, with its event id, its
objects' ids (charge, payment intent, refund, dispute) and its `created` made new, so every
payment is a new row and the worker does the work a real stream causes: inserts, merges of a
payment seen twice (its payment intent, then its charge), audit records, payment outcomes for the
failure rates, refund-feed and dispute messages. Bodies stay pretty-printed, as Stripe sends them.

The usual mix, per 200 events (stories of related events keep their order):

| events | share | priority |
|---|---|---|
| payment_intent.succeeded then charge.succeeded, one payment | 70 % | routine |
| payment_intent.payment_failed then charge.failed, one payment | 12 % | routine |
| charge.refunded then charge.refund.updated, one refunded charge | 16 % | urgent |
| charge.dispute.created (an alert in the disputes channel) | 1 % | urgent |
| radar.early_fraud_warning.created (an alert in the disputes channel) | 1 % | urgent |

`routine_only` gives the routine events alone (the backlog a dispute arrives behind).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "stripe"
# Ids we store and index; each distinct one in a template becomes a placeholder replaced per story.
_OBJECT_ID = re.compile(rb'"((?:ch|pi|re|dp|du|py|issfr)_[A-Za-z0-9]+)"')
_EVENT_ID = b"@@EVENT_ID@@"
_CREATED = b"1999999999"  # a placeholder `created` (top level only) no fixture holds


def _load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def _charge_succeeded() -> dict:
    """The charge.failed fixture as the same charge would look had it succeeded."""
    event = _load("event_charge.failed__stripe-ruby-mock.json")
    charge = event["data"]["object"]
    charge.update(
        status="succeeded",
        paid=True,
        captured=True,
        amount_captured=charge["amount"],
        failure_code=None,
        failure_message=None,
        outcome={**charge["outcome"], "network_status": "approved_by_network", "reason": None, "type": "authorized"},
    )
    event["type"] = "charge.succeeded"
    return event


def _payment_intent_succeeded() -> dict:
    """The payment_intent.payment_failed fixture as the same payment intent would look once paid."""
    event = _load("event_payment_intent.payment_failed__lago_basil.json")
    pi = event["data"]["object"]
    pi.update(status="succeeded", last_payment_error=None, amount_received=pi["amount"])
    event["type"] = "payment_intent.succeeded"
    return event


def _same_payment(pi_event: dict, charge_event: dict) -> dict:
    """The charge event, naming the payment intent (and latest charge) of pi_event: one payment, two events."""
    pi, charge = pi_event["data"]["object"], charge_event["data"]["object"]
    text = json.dumps(charge_event)
    for old, new in ((charge["payment_intent"], pi["id"]), (charge["id"], pi["latest_charge"])):
        text = text.replace(f'"{old}"', f'"{new}"')
    return json.loads(text)


@dataclass(frozen=True, slots=True)
class _Template:
    """One event as text split around its placeholders."""

    kind: str
    parts: tuple[bytes, ...]  # text between placeholders
    slots: tuple[bytes, ...]  # what each gap holds: b"event", b"created" or an object id of the story

    def render(self, event_id: str, created: int, story: int) -> bytes:
        out = [self.parts[0]]
        for slot, part in zip(self.slots, self.parts[1:], strict=True):
            if slot == b"event":
                out.append(event_id.encode())
            elif slot == b"created":
                out.append(str(created).encode())
            else:
                prefix, tag = slot.split(b"_", 1)
                # The story number keeps each payment's objects apart; the tag keeps a story's charge
                # and payment intent apart (they share the number).
                out.append(prefix + b"_BENCH" + str(story).zfill(16).encode() + tag)
            out.append(part)
        return b"".join(out)


def _tag(object_id: bytes) -> bytes:
    """A stand-in for an object id: its prefix and a short tag that is the same in every template naming it."""
    prefix = object_id.split(b"_", 1)[0]
    return prefix + b"_" + hashlib.sha256(object_id).hexdigest()[:4].encode()


def _template(kind: str, event: dict) -> _Template:
    event = copy.deepcopy(event)
    event["id"] = _EVENT_ID.decode()
    event["created"] = int(_CREATED)
    text = json.dumps(event, indent=2).encode()
    ids = sorted({m.group(1) for m in _OBJECT_ID.finditer(text)})
    tokens = [re.escape(_EVENT_ID), re.escape(b'"created": ' + _CREATED)] + [re.escape(b'"' + i + b'"') for i in ids]
    parts: list[bytes] = []
    slots: list[bytes] = []
    last = 0
    for m in re.finditer(b"|".join(tokens), text):
        token = m.group(0)
        if token == _EVENT_ID:
            parts.append(text[last : m.start()])
            slots.append(b"event")
            last = m.end()
        elif token.startswith(b'"created"'):
            parts.append(text[last : m.start()] + b'"created": ')
            slots.append(b"created")
            last = m.end()
        else:  # a quoted object id: the quotes stay in the text around the slot
            parts.append(text[last : m.start() + 1])
            slots.append(_tag(token[1:-1]))
            last = m.end() - 1
    parts.append(text[last:])
    return _Template(kind, tuple(parts), tuple(slots))


def _stories() -> dict[str, list[_Template]]:
    pi_ok = _payment_intent_succeeded()
    pi_failed = _load("event_payment_intent.payment_failed__lago_basil.json")
    # The two ruby-mock fixtures already name the same charge and refund.
    refunded = _load("event_charge.refunded__stripe-ruby-mock.json")
    refund = _load("event_charge.refund.updated__stripe-ruby-mock.json")
    return {
        "paid": [
            _template("payment_intent.succeeded", pi_ok),
            _template("charge.succeeded", _same_payment(pi_ok, _charge_succeeded())),
        ],
        "failed": [
            _template("payment_intent.payment_failed", pi_failed),
            _template("charge.failed", _same_payment(pi_failed, _load("event_charge.failed__stripe-ruby-mock.json"))),
        ],
        "refunded": [_template("charge.refunded", refunded), _template("charge.refund.updated", refund)],
        "dispute": [_template("charge.dispute.created", _load("event_charge.dispute.created__stripe-ruby-mock.json"))],
        "efw": [
            _template(
                "radar.early_fraud_warning.created", _load("event_radar.early_fraud_warning.created__gumroad.json")
            )
        ],
    }


# Per 100 stories (of one or two events each): 70 % of events are paid payments, 12 % failed ones,
# 16 % refunds, 1 % disputes and 1 % early fraud warnings (see the module's table).
MIX = (("paid", 35), ("failed", 6), ("refunded", 8), ("dispute", 1), ("efw", 1))
ROUTINE = (("paid", 35), ("failed", 6))


@dataclass(frozen=True, slots=True)
class Event:
    """One generated event."""

    id: str
    type: str
    body: bytes


class Stream:
    """Events of the usual mix (or routine ones only), each with fresh ids, in the order Stripe sends them."""

    def __init__(self, *, prefix: str = "evt_BENCHw", start: int = 1_790_000_000, per_second: int = 2000) -> None:
        self.stories = _stories()
        self.prefix = prefix
        self.start = start
        self.per_second = per_second

    def events(self, count: int, *, routine_only: bool = False, first: int = 0) -> list[Event]:
        """`count` events; `first` offsets ids and objects so two calls never overlap."""
        mix = ROUTINE if routine_only else MIX
        # Each kind spread evenly over the cycle, as a real stream interleaves them.
        cycle = [name for _, name in sorted(((k + 0.5) / n, name) for name, n in mix for k in range(n))]
        out: list[Event] = []
        story = first
        while len(out) < count:
            name = cycle[story % len(cycle)]
            for template in self.stories[name]:
                n = first + len(out)
                event_id = f"{self.prefix}{n:018d}"
                body = template.render(event_id, self.start + n // self.per_second, story)
                out.append(Event(event_id, template.kind, body))
                if len(out) == count:
                    break
            story += 1
        return out

    def dispute(self, n: int) -> Event:
        """One charge.dispute.created event about a dispute no other event names."""
        event_id = f"evt_BENCHdispute{n:012d}"
        body = self.stories["dispute"][0].render(event_id, self.start, 10**17 + n)
        return Event(event_id, "charge.dispute.created", body)
