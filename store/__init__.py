"""Postgres: the one record. Named SQL, rows as frozen dataclasses, the caller owns the transaction."""
