"""authkit: passwords, tokens, sessions and login limits both services share."""
