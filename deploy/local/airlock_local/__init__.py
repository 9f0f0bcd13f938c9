"""`make demo`: the whole Airlock system on one machine, in the foreground.

One supervisor process starts an embedded PostgreSQL (databases ``gateway`` and
``processor``) and two embedded Redis servers (one per network), provisions signing keys
and secrets, runs both services' APIs and workers and the transfer agent as child
processes, seeds an admin, a profile type, a demo user and a small document collection
through the processor's API, and stops everything again on Ctrl-C or SIGTERM.
"""
