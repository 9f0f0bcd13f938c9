"""airlink: the link protocol both services share (docs/link-protocol.md)."""
