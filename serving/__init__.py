"""The FastAPI scoring API and the action engine (issue 7)."""
