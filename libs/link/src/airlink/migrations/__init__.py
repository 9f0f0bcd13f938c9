"""Migrations of the `airlink` app; Piccolo imports each module here by its file name."""
