"""Request handlers: the built-ins and the interface operators' own handlers implement."""
