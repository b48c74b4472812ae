"""Block Kit action ids: constants shared by rendering and listeners."""

from __future__ import annotations

OPEN_IN_STRIPE = "open_in_stripe"
REQUEST_REFUND = "request_refund"
APPROVE_REQUEST = "approve_request"
REJECT_REQUEST = "reject_request"
CONFIRM_REFUND = "confirm_refund"
CANCEL_REFUND = "cancel_refund"

REQUEST_MODAL = "refund_request_modal"
REJECT_MODAL = "refund_reject_modal"
CONFIRM_MODAL = "refund_confirm_modal"

# Block ids inside the modals, where field errors are shown.
AMOUNT_BLOCK = "amount"
REASON_BLOCK = "reason"
NOTE_BLOCK = "note"
REJECT_REASON_BLOCK = "reject_reason"
INPUT = "value"  # the action id of each modal input
ASSIGN_DISPUTE = "assign_dispute"
EFW_REFUND = "efw_refund"
ACK_INCIDENT = "ack_incident"  # *Acknowledge* on an incident alert (value: the incident id)
NEXT_PAGE = "history_next_page"  # the Next button of /refunds mine, history and disputes
