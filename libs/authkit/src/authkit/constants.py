"""Every Redis key authkit writes, named in one place so the storage layout reads at a glance.

(The one PostgreSQL table, ``auth_refresh_token``, is defined by the ``authkit`` Piccolo
app's migration and used only by `authkit.sessions`.)
"""

from __future__ import annotations

from typing import Final

REDIS_KEY_PREFIX: Final = "authkit:"
"""Every Redis key authkit writes starts with this."""

LOGIN_USERNAME_KEY_PREFIX: Final = REDIS_KEY_PREFIX + "login:user:"
"""Sorted set of recent login attempts for one username, keyed by a hash of the name."""

LOGIN_ADDRESS_KEY_PREFIX: Final = REDIS_KEY_PREFIX + "login:addr:"
"""Sorted set of recent login attempts from one client address, keyed by a hash of it."""
