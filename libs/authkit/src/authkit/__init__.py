"""authkit: passwords, tokens, sessions, login limits, middleware and guards both APIs share."""
