"""servicekit: the chassis Airlock's services share.

Modules, imported one by one (this package imports nothing itself, so that the pytest
plugin in `servicekit.testing` stays cheap to load):

- `settings`: environment variables into a msgspec struct, secrets, production checks;
- `logs` and `redaction`: one structlog pipeline, secrets scrubbed from every line;
- `metrics`: Prometheus rendering, multiprocess mode, gauges;
- `health`: dependency checks within a time budget, ``/health`` and ``/health/live``;
- `errors` and `error_codes`: the JSON error shape and its stable codes;
- `middleware` and `plugin`: `ServiceKitPlugin`, the one-line HTTP chassis for Litestar;
- `connection`: the caller's address, read one way by every service;
- `audit`: the writer of every service's append-only ``audit_log`` table;
- `embedded` and `redis_url`: embedded PostgreSQL and Redis for development and tests;
- `migrations`: Piccolo migrations under a lock, forwards and back;
- `backup` and `maintenance`: pg_dump/pg_restore, and the CLI commands built on them;
- `testing`: the pytest fixtures giving real PostgreSQL and Redis.
"""
