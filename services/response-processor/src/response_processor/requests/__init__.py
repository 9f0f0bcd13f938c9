"""A request's life on the processor: stored from a batch (`inbound`), queued (`queue`), run
through its states (`lifecycle`, `status`), requeued after a Redis loss (`reconcile`), read by
operators (`reads`) and purged (`retention`)."""
