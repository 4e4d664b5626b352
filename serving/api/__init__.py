"""The scoring API (FastAPI): `main` builds the app, `routes/` holds one router per
resource, `deps` the dependencies routes declare, `schemas` the request and response
models, `errors` the one error shape every failure takes."""
