"""`python -m airlock_local`: what `make demo` runs."""

import sys

from airlock_local.cli import main

sys.exit(main())
