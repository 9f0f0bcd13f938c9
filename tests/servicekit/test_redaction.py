from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from servicekit.redaction import REDACTED, is_sensitive_key, redact_event, redact_value, scrub_text

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
ARGON2_HASH = "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG"
BCRYPT_HASH = "$2b$12$KIXQJQeMvKq1Cz2Jm0r3fO1u9gE9Y0uKQ2xZb0e8n2m1l3k4j5h6g"
PEM_BODY = "MC4CAQAwBQYDK2VwBCIEIEr4bKVuFqHbM3c0lYbEn8t8jW2JQ2r4b2Vx9mUq1l0a"
PEM_KEY = f"-----BEGIN PRIVATE KEY-----\n{PEM_BODY}\n-----END PRIVATE KEY-----"
# A batch decryption key (an age identity, as `batchformat keygen` and `age-keygen` write it).
AGE_IDENTITY = "AGE-SECRET-KEY-14MUFK8SZH73LYFUU5QQ472UE6Q0N8SJ00WZ4H8EY9QFRWYAPNS0QYJE2V5"


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "new_password",
        "passwd",
        "pwd",
        "client_secret",
        "token",
        "access_token",
        "refresh_token",
        "Authorization",
        "cookie",
        "Set-Cookie",
        "api_key",
        "apikey",
        "X-API-Key",
        "private_key",
        "signing_key",
        "credentials",
        "password_hash",
        "key_hash",
        "hash",
    ],
)
def test_sensitive_keys_are_recognised(key: str) -> None:
    assert is_sensitive_key(key)


@pytest.mark.parametrize(
    "key",
    ["sha256", "batch_id", "key_id", "token_type", "expires_in", "record_count", "username"],
)
def test_digests_and_identifiers_are_not_sensitive(key: str) -> None:
    assert not is_sensitive_key(key)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"issued {JWT} to bob", JWT),
        ("Authorization: Bearer abcdef123456.xyz", "abcdef123456.xyz"),
        ("basic auth Basic dXNlcjpodW50ZXIy", "dXNlcjpodW50ZXIy"),
        (f"stored {ARGON2_HASH}", ARGON2_HASH),
        (f"stored {BCRYPT_HASH}", BCRYPT_HASH),
        (
            f"key:\n{PEM_KEY}\nend",
            "MC4CAQAwBQYDK2VwBCIEIEr4bKVuFqHbM3c0lYbEn8t8jW2JQ2r4b2Vx9mUq1l0a",
        ),
        ("connect postgresql://gateway:s3cr3t@db:5432/gateway", "s3cr3t"),
        ("redis://:hunter2@cache:6379/0", "hunter2"),
        ("host=db user=gateway password=s3cr3t dbname=gateway", "s3cr3t"),
        ("GET /login?user=bob&password=s3cr3t&next=/", "s3cr3t"),
        ('{"username": "bob", "password": "s3cr3t"}', "s3cr3t"),
        ("refresh_token=abc.def.ghi", "abc.def.ghi"),
        (f"loaded identity {AGE_IDENTITY} from /run/secrets", AGE_IDENTITY[16:]),
        (f"# public key: age1xyz\n{AGE_IDENTITY}\n", AGE_IDENTITY[16:]),
    ],
)
def test_scrub_text_removes_secret_looking_substrings(text: str, secret: str) -> None:
    scrubbed = scrub_text(text)
    assert secret not in scrubbed


def test_scrub_text_keeps_the_user_and_host_of_a_dsn() -> None:
    scrubbed = scrub_text("postgresql://gateway:s3cr3t@db:5432/gateway")
    assert scrubbed == "postgresql://gateway:***@db:5432/gateway"


def test_scrub_text_leaves_an_unterminated_private_key_no_chance() -> None:
    truncated = PEM_KEY.rsplit("\n", 1)[0]
    assert PEM_BODY not in scrub_text(f"oops {truncated}")


def test_scrub_text_keeps_ordinary_text_and_digests() -> None:
    text = "batch 3f2a imported: token_type=bearer sha256=ab12cd34 record_count=12"
    assert scrub_text(text) == text


def test_redact_value_walks_nested_containers() -> None:
    value = {"outer": [{"password": "p1"}, ("x", {"api_key": "k1"})], "sha256": "ab" * 32}
    assert redact_value(value) == {
        "outer": [{"password": REDACTED}, ["x", {"api_key": REDACTED}]],
        "sha256": "ab" * 32,
    }


def test_redact_value_walks_structs_by_field_name() -> None:
    class Login(msgspec.Struct):
        username: str
        password: str

    assert redact_value(Login("bob", "hunter2")) == {"username": "bob", "password": REDACTED}


def test_redact_value_scrubs_exception_text() -> None:
    error = ConnectionError("cannot reach postgresql://u:hunter2@db/x")
    assert redact_value(error) == "ConnectionError: cannot reach postgresql://u:***@db/x"


def test_redact_event_scrubs_the_event_and_tracebacks_but_not_structlog_metadata() -> None:
    record = object()
    event = {
        "event": f"login with {JWT}",
        "exception": f'Traceback...\nValueError: bad hash "{ARGON2_HASH}"',
        "_record": record,
    }
    redacted = redact_event(None, "info", event)
    assert JWT not in str(redacted["event"])
    assert ARGON2_HASH not in str(redacted["exception"])
    assert redacted["_record"] is record


_PASSWORD_CHARS = st.characters(
    codec="ascii", categories=("L", "N"), include_characters="!$%^*()_+-=[]{}|~.,;"
)


@given(password=st.text(_PASSWORD_CHARS, min_size=1, max_size=40))
def test_any_password_in_a_dsn_is_hidden(password: str) -> None:
    scrubbed = scrub_text(f"postgresql://gateway:{password}@db.internal:5432/gateway")
    assert scrubbed == "postgresql://gateway:***@db.internal:5432/gateway"


_BASE64URL = st.text(
    st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
    min_size=4,
    max_size=60,
)


@given(header=_BASE64URL, payload=_BASE64URL, signature=_BASE64URL)
def test_any_jwt_is_hidden(header: str, payload: str, signature: str) -> None:
    token = f"eyJ{header}.{payload}.{signature}"
    assert token not in scrub_text(f"token {token} issued")


def test_unset_secrets_stay_visible_as_unset() -> None:
    assert redact_value({"password": None, "api_key": "", "token": "t0k"}) == {
        "password": None,
        "api_key": "",
        "token": REDACTED,
    }
