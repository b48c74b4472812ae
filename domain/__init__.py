"""Pure domain rules: money, command parsing, refundable amounts, policies. No I/O here."""
