"""Airlock's request gateway: the users' API and the request side of the link."""
