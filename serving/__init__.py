"""The FastAPI scoring API, the action engine, the action log and the daily risk list."""
