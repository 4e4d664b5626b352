"""One router per resource: scoring, actions, events, risk lists, operations."""
