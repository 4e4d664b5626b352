"""The action log: every decision, suppression and outcome, durably, with its outbox.

`database` holds the tables and engines (SQLite with WAL by default, PostgreSQL by URL),
`log` the actions and their status transitions, `capacity` the booking of callback
slots, `outbox` the messages waiting for delivery, `keys` the idempotency keys.
"""
