"""Short-lived access JWTs: issued at login and refresh, verified on every request.

Claims are flat: ``iss``, ``aud``, ``exp``, ``iat``, ``nbf``, ``jti``, ``sub`` (the user id),
``roles``, ``typ`` (always ``"access"``), ``pv`` (the user's session version: bumping it
on a password change or deactivation rejects every older token) and ``mcp`` (the user
must change their password). Verification accepts only the one configured algorithm, so
neither ``alg: none`` nor an HS/RS key confusion gets through. Tokens are never logged.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any, Final, Literal, Protocol

import jwt
import msgspec
from jwt.types import Options

from authkit.error_codes import AuthError, AuthErrorCode

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "DEFAULT_ACCESS_LIFETIME",
    "DEFAULT_ALGORITHM",
    "DEFAULT_LEEWAY",
    "MIN_HMAC_KEY_BYTES",
    "AccessTokenClaims",
    "AccessTokenIssuer",
    "AccessTokenVerifier",
    "IssuedAccessToken",
    "TokenSettings",
    "token_pair",
]

ACCESS_TOKEN_TYPE: Final = "access"  # noqa: S105 (the typ claim)
DEFAULT_ALGORITHM: Final = "HS256"
DEFAULT_ACCESS_LIFETIME: Final = timedelta(minutes=30)
# Clocks of the issuing and verifying processes may drift a little apart.
DEFAULT_LEEWAY: Final = timedelta(seconds=10)
# RFC 7518 §3.2: an HMAC key at least as long as the hash output (HS256: 32 bytes).
MIN_HMAC_KEY_BYTES: Final = {"HS256": 32, "HS384": 48, "HS512": 64}
# Verified tokens remembered per verifier (a few MB at most).
VERIFIED_CACHE_SIZE: Final = 10_000
# Anything longer is not one of our tokens; refusing it early bounds the work per request.
MAX_TOKEN_LENGTH: Final = 8192

_SUPPORTED_ALGORITHMS: Final = frozenset(
    {
        "HS256", "HS384", "HS512",
        "RS256", "RS384", "RS512",
        "PS256", "PS384", "PS512",
        "ES256", "ES384", "ES512",
        "EdDSA",
    }
)  # fmt: skip
_REQUIRED_CLAIMS: Final = ("iss", "aud", "exp", "iat", "nbf", "jti", "sub")

Key = str | bytes


class AccessTokenClaims(msgspec.Struct, frozen=True):
    """The verified claims of an access token."""

    iss: str
    aud: str
    sub: uuid.UUID
    exp: int
    iat: int
    nbf: int
    jti: str
    typ: Literal["access"]
    roles: tuple[str, ...]
    pv: int
    mcp: bool = False

    @property
    def user_id(self) -> uuid.UUID:
        """The user the token was issued to."""
        return self.sub


class IssuedAccessToken(msgspec.Struct, frozen=True):
    """A freshly signed access token, its lifetime in seconds and its claims."""

    token: str
    expires_in: int
    claims: AccessTokenClaims

    def __repr__(self) -> str:
        # The token is a credential: keep it out of reprs that end up in logs and tracebacks.
        return (
            f"IssuedAccessToken(token=<hidden>, expires_in={self.expires_in}, "
            f"claims={self.claims!r})"
        )


class AccessTokenIssuer:
    """Signs access tokens for one issuer and audience."""

    def __init__(
        self,
        key: Key,
        *,
        issuer: str,
        audience: str,
        algorithm: str = DEFAULT_ALGORITHM,
        lifetime: timedelta = DEFAULT_ACCESS_LIFETIME,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if lifetime < timedelta(seconds=1):
            raise ValueError("the access token lifetime must be at least one second")
        self._key = _prepare_key(algorithm, key, signing=True)
        self._algorithm = algorithm
        self._issuer = issuer
        self._audience = audience
        self._lifetime_s = int(lifetime.total_seconds())
        self._clock = clock

    def issue(
        self,
        user_id: uuid.UUID,
        *,
        roles: Iterable[str],
        session_version: int,
        must_change_password: bool = False,
    ) -> IssuedAccessToken:
        """Sign an access token for ``user_id``, valid for the configured lifetime from now."""
        now = int(self._clock())
        claims = AccessTokenClaims(
            iss=self._issuer,
            aud=self._audience,
            sub=user_id,
            exp=now + self._lifetime_s,
            iat=now,
            nbf=now,
            jti=uuid.uuid4().hex,
            typ=ACCESS_TOKEN_TYPE,
            roles=tuple(sorted(set(roles))),
            pv=session_version,
            mcp=must_change_password,
        )
        payload = msgspec.to_builtins(claims)
        token = jwt.encode(payload, self._key, algorithm=self._algorithm)
        return IssuedAccessToken(token=token, expires_in=self._lifetime_s, claims=claims)


class AccessTokenVerifier:
    """Checks access tokens of one issuer and audience, signed with one algorithm."""

    def __init__(
        self,
        key: Key,
        *,
        issuer: str,
        audience: str,
        algorithm: str = DEFAULT_ALGORITHM,
        leeway: timedelta = DEFAULT_LEEWAY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = _prepare_key(algorithm, key, signing=False)
        self._algorithm = algorithm
        self._issuer = issuer
        self._audience = audience
        self._leeway_s = leeway.total_seconds()
        self._clock = clock
        # Tokens whose signature and claims checked out, by their exact text: a client sends
        # the same token with every request for up to its lifetime, and the signature check
        # is most of an authenticated request's CPU. Times are still checked on every use.
        self._verified: dict[str, AccessTokenClaims] = {}
        # PyJWT checks time claims against its own clock; ours are checked in `_check_times`.
        self._options: Options = {
            "require": list(_REQUIRED_CLAIMS),
            "strict_aud": True,
            "verify_exp": False,
            "verify_nbf": False,
            "verify_iat": False,
        }

    def verify(self, token: str) -> AccessTokenClaims:
        """Return the claims of a valid access token; raise `AuthError` (expired or invalid)."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise AuthError(AuthErrorCode.TOKEN_INVALID)
        claims = self._verified.get(token)
        if claims is None:
            claims = self._decode(token)
            if len(self._verified) >= VERIFIED_CACHE_SIZE:
                self._verified.pop(next(iter(self._verified)))  # the oldest
            self._verified[token] = claims
        self._check_times(claims)
        return claims

    def _decode(self, token: str) -> AccessTokenClaims:
        try:
            payload = jwt.decode(
                token,
                self._key,
                algorithms=[self._algorithm],
                audience=self._audience,
                issuer=self._issuer,
                options=self._options,
            )
            claims = msgspec.convert(payload, AccessTokenClaims)
        except (jwt.PyJWTError, msgspec.ValidationError, ValueError, TypeError):
            # Deliberately no detail: the reason helps an attacker more than a client.
            raise AuthError(AuthErrorCode.TOKEN_INVALID) from None
        return claims

    def _check_times(self, claims: AccessTokenClaims) -> None:
        now = self._clock()
        if claims.nbf > now + self._leeway_s or claims.iat > now + self._leeway_s:
            raise AuthError(AuthErrorCode.TOKEN_INVALID)
        if claims.exp <= now - self._leeway_s:
            raise AuthError(AuthErrorCode.TOKEN_EXPIRED)


def _prepare_key(algorithm: str, key: Key, *, signing: bool) -> Any:
    """Parse the key once for ``algorithm``, refusing weak HMAC secrets and unusable keys."""
    if algorithm not in _SUPPORTED_ALGORITHMS:
        raise ValueError(f"unsupported JWT algorithm {algorithm!r}")
    if algorithm in MIN_HMAC_KEY_BYTES:
        secret = key.encode() if isinstance(key, str) else key
        if len(secret) < MIN_HMAC_KEY_BYTES[algorithm]:
            minimum = MIN_HMAC_KEY_BYTES[algorithm]
            raise ValueError(f"an {algorithm} secret needs at least {minimum} bytes")
    try:
        prepared = jwt.get_algorithm_by_name(algorithm).prepare_key(key)
    except (jwt.PyJWTError, ValueError, TypeError):
        # Named by algorithm only: the key's text never goes into an error.
        raise ValueError(f"the key is not usable for {algorithm}") from None
    if signing and not algorithm.startswith("HS") and not hasattr(prepared, "sign"):
        raise ValueError(f"signing with {algorithm} needs a private key")
    if not signing and hasattr(prepared, "sign"):
        # Given a private key, verify with its public half (the private one cannot verify).
        return prepared.public_key()
    return prepared


class TokenSettings(Protocol):
    """A service's access-token settings (`*_JWT_*`, `*_ACCESS_TOKEN_MINUTES`)."""

    @property
    def jwt_secret(self) -> str: ...
    @property
    def jwt_algorithm(self) -> str: ...
    @property
    def jwt_issuer(self) -> str: ...
    @property
    def jwt_audience(self) -> str: ...
    @property
    def access_token_minutes(self) -> int: ...


def token_pair(settings: TokenSettings) -> tuple[AccessTokenIssuer, AccessTokenVerifier]:
    """The issuer and the verifier of one service's access tokens, from its settings."""
    options: dict[str, Any] = {
        "issuer": settings.jwt_issuer,
        "audience": settings.jwt_audience,
        "algorithm": settings.jwt_algorithm,
    }
    lifetime = timedelta(minutes=settings.access_token_minutes)
    return (
        AccessTokenIssuer(settings.jwt_secret, lifetime=lifetime, **options),
        AccessTokenVerifier(settings.jwt_secret, **options),
    )
