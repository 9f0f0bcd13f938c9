"""Developer tools run by the Makefile (`make docs-config`)."""
