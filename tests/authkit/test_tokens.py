"""Access tokens: exactly the configured algorithm, issuer and audience; expired vs invalid."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from authkit.error_codes import AuthError, AuthErrorCode
from authkit.tokens import AccessTokenClaims, AccessTokenIssuer, AccessTokenVerifier
from tests.authkit.conftest import AUDIENCE, ISSUER, SECRET

USER = uuid.UUID("6a1f0c55-8b5e-4b4e-9d38-3b0f6f1f2a11")


def _issuer(**overrides: Any) -> AccessTokenIssuer:
    options: dict[str, Any] = {"issuer": ISSUER, "audience": AUDIENCE, **overrides}
    return AccessTokenIssuer(options.pop("key", SECRET), **options)


def _verifier(**overrides: Any) -> AccessTokenVerifier:
    options: dict[str, Any] = {"issuer": ISSUER, "audience": AUDIENCE, **overrides}
    return AccessTokenVerifier(options.pop("key", SECRET), **options)


def _token(**overrides: Any) -> str:
    return _issuer(**overrides).issue(USER, roles=["user"], session_version=3).token


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(USER),
        "exp": now + 600,
        "iat": now,
        "nbf": now,
        "jti": uuid.uuid4().hex,
        "typ": "access",
        "roles": ["user"],
        "pv": 3,
    }
    claims.update(changes)
    return {key: value for key, value in claims.items() if value is not None}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


def _refused(token: str, verifier: AccessTokenVerifier | None = None) -> AuthErrorCode:
    with pytest.raises(AuthError) as caught:
        (verifier or _verifier()).verify(token)
    if token:
        assert token not in caught.value.message
    return AuthErrorCode(caught.value.code)


def test_an_issued_token_verifies_to_its_claims() -> None:
    issued = _issuer().issue(
        USER, roles=["operator", "user", "user"], session_version=7, must_change_password=True
    )
    claims = _verifier().verify(issued.token)
    assert claims == issued.claims
    assert claims.user_id == USER
    assert claims.roles == ("operator", "user")
    assert (claims.pv, claims.mcp, claims.typ) == (7, True, "access")
    assert (claims.iss, claims.aud) == (ISSUER, AUDIENCE)
    assert claims.exp - claims.iat == 30 * 60 == issued.expires_in
    assert claims.nbf == claims.iat


def test_claims_are_flat_and_the_header_names_the_algorithm() -> None:
    token = _token()
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    payload = jwt.decode(token, options={"verify_signature": False})
    assert set(payload) == {
        "iss",
        "aud",
        "sub",
        "exp",
        "iat",
        "nbf",
        "jti",
        "typ",
        "roles",
        "pv",
        "mcp",
    }


def test_every_token_has_its_own_id() -> None:
    issuer = _issuer()
    first = issuer.issue(USER, roles=[], session_version=0)
    second = issuer.issue(USER, roles=[], session_version=0)
    assert first.claims.jti != second.claims.jti


def test_the_repr_of_an_issued_token_hides_it() -> None:
    issued = _issuer().issue(USER, roles=[], session_version=0)
    assert issued.token not in repr(issued)


def test_the_lifetime_is_configurable() -> None:
    issued = _issuer(lifetime=timedelta(minutes=5)).issue(USER, roles=[], session_version=0)
    assert issued.expires_in == 300


def test_an_expired_token_is_reported_as_expired() -> None:
    an_hour_ago = time.time() - 3600
    assert _refused(_token(clock=lambda: an_hour_ago)) is AuthErrorCode.TOKEN_EXPIRED


def test_a_token_expired_within_the_leeway_still_passes() -> None:
    token = _token(lifetime=timedelta(seconds=60), clock=lambda: time.time() - 65)
    assert _verifier(leeway=timedelta(seconds=10)).verify(token).sub == USER
    assert _refused(token, _verifier(leeway=timedelta(0))) is AuthErrorCode.TOKEN_EXPIRED


def test_a_token_not_yet_valid_is_invalid() -> None:
    in_an_hour = time.time() + 3600
    assert _refused(_token(clock=lambda: in_an_hour)) is AuthErrorCode.TOKEN_INVALID


def test_a_token_for_another_audience_is_invalid() -> None:
    assert _refused(_token(audience="airlock-gateway")) is AuthErrorCode.TOKEN_INVALID


def test_a_token_from_another_issuer_is_invalid() -> None:
    assert _refused(_token(issuer="https://evil.test")) is AuthErrorCode.TOKEN_INVALID


def test_a_list_of_audiences_is_invalid() -> None:
    token = jwt.encode(_claims(aud=[AUDIENCE, "other"]), SECRET, algorithm="HS256")
    assert _refused(token) is AuthErrorCode.TOKEN_INVALID


def test_an_unsigned_token_is_invalid() -> None:
    unsigned = _unsigned({"alg": "none", "typ": "JWT"}, _claims())
    assert _refused(unsigned + ".") is AuthErrorCode.TOKEN_INVALID
    assert _refused(unsigned) is AuthErrorCode.TOKEN_INVALID


def test_a_tampered_payload_is_invalid() -> None:
    header, _, signature = _token().split(".")
    forged = _b64(json.dumps(_claims(roles=["admin"])).encode())
    assert _refused(f"{header}.{forged}.{signature}") is AuthErrorCode.TOKEN_INVALID


def test_a_tampered_signature_is_invalid() -> None:
    header, payload, signature = _token().split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    assert _refused(f"{header}.{payload}.{flipped}") is AuthErrorCode.TOKEN_INVALID


def test_a_token_signed_with_another_secret_is_invalid() -> None:
    other = _token(key="another-secret-that-is-also-long-enough!")
    assert _refused(other) is AuthErrorCode.TOKEN_INVALID


def test_only_the_configured_algorithm_is_accepted() -> None:
    long_secret = SECRET * 2
    token = jwt.encode(_claims(), long_secret, algorithm="HS512")
    assert _refused(token, _verifier(key=long_secret)) is AuthErrorCode.TOKEN_INVALID
    assert _verifier(key=long_secret, algorithm="HS512").verify(token).sub == USER


def _rsa_pems() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def test_rs256_tokens_verify_with_the_public_key_and_resist_key_confusion() -> None:
    private, public = _rsa_pems()
    token = _issuer(key=private, algorithm="RS256").issue(USER, roles=[], session_version=1)
    verifier = _verifier(key=public, algorithm="RS256")
    assert verifier.verify(token.token).sub == USER
    # The classic forgery: HS256 "signed" with the public key, which the attacker knows.
    signing_input = _unsigned({"alg": "HS256", "typ": "JWT"}, _claims(roles=["admin"]))
    mac = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    assert _refused(f"{signing_input}.{_b64(mac)}", verifier) is AuthErrorCode.TOKEN_INVALID


def test_a_verifier_given_the_private_key_verifies_with_its_public_half() -> None:
    private, _ = _rsa_pems()
    token = _issuer(key=private, algorithm="RS256").issue(USER, roles=[], session_version=1)
    assert _verifier(key=private, algorithm="RS256").verify(token.token).sub == USER


def test_a_token_of_another_type_is_invalid() -> None:
    token = jwt.encode(_claims(typ="refresh"), SECRET, algorithm="HS256")
    assert _refused(token) is AuthErrorCode.TOKEN_INVALID


def test_an_opaque_refresh_token_is_not_an_access_token() -> None:
    refresh = "rt_" + _b64(b"\x01" * 32)
    assert _refused(refresh) is AuthErrorCode.TOKEN_INVALID


@pytest.mark.parametrize("missing", ["iss", "aud", "exp", "iat", "nbf", "jti", "sub", "pv", "typ"])
def test_a_token_missing_a_claim_is_invalid(missing: str) -> None:
    token = jwt.encode(_claims(**{missing: None}), SECRET, algorithm="HS256")
    assert _refused(token) is AuthErrorCode.TOKEN_INVALID


def test_claims_nested_the_litestar_way_are_invalid() -> None:
    claims = _claims(roles=None, pv=None)
    claims["extras"] = {"roles": ["admin"], "pv": 3}
    assert _refused(jwt.encode(claims, SECRET, algorithm="HS256")) is AuthErrorCode.TOKEN_INVALID


@pytest.mark.parametrize("claim", [{"sub": "not-a-uuid"}, {"pv": "3"}, {"exp": "soon"}])
def test_a_claim_of_the_wrong_type_is_invalid(claim: dict[str, Any]) -> None:
    token = jwt.encode(_claims(**claim), SECRET, algorithm="HS256")
    assert _refused(token) is AuthErrorCode.TOKEN_INVALID


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "eyJ.eyJ.", "x" * 10_000])
def test_garbage_is_invalid(garbage: str) -> None:
    assert _refused(garbage) is AuthErrorCode.TOKEN_INVALID


def test_verified_claims_are_a_typed_struct() -> None:
    assert isinstance(_verifier().verify(_token()), AccessTokenClaims)


def test_weak_secrets_and_unusable_keys_are_refused_up_front() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        AccessTokenIssuer("short", issuer=ISSUER, audience=AUDIENCE)
    with pytest.raises(ValueError, match="at least 64 bytes"):
        AccessTokenIssuer(SECRET, issuer=ISSUER, audience=AUDIENCE, algorithm="HS512")
    with pytest.raises(ValueError, match="unsupported"):
        AccessTokenVerifier(SECRET, issuer=ISSUER, audience=AUDIENCE, algorithm="none")
    _, public = _rsa_pems()
    with pytest.raises(ValueError, match="private key"):
        AccessTokenIssuer(public, issuer=ISSUER, audience=AUDIENCE, algorithm="RS256")
    with pytest.raises(ValueError, match="not usable") as caught:
        AccessTokenVerifier(public, issuer=ISSUER, audience=AUDIENCE, algorithm="HS256")
    assert "BEGIN" not in str(caught.value)
    with pytest.raises(ValueError, match="at least one second"):
        AccessTokenIssuer(SECRET, issuer=ISSUER, audience=AUDIENCE, lifetime=timedelta(0))


def test_a_token_verified_before_still_expires_and_a_tampered_copy_is_still_refused() -> None:
    now = [time.time()]
    verifier = _verifier(clock=lambda: now[0])
    token = _token(lifetime=timedelta(seconds=60))
    assert verifier.verify(token).sub == USER
    assert verifier.verify(token).sub == USER  # remembered: no second signature check
    header, payload, signature = token.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    assert _refused(f"{header}.{payload}.{flipped}", verifier) is AuthErrorCode.TOKEN_INVALID
    now[0] += 3600
    assert _refused(token, verifier) is AuthErrorCode.TOKEN_EXPIRED
