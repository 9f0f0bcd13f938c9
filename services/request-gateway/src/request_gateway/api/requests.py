"""`/api/v1/requests`: submit, read (or wait for), list and cancel one's own requests."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Annotated, Any, Final

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED

from request_gateway.api.context import change_feed_of, gateway_user, runtime_of
from request_gateway.domain import requests
from request_gateway.domain.requests import Page, RequestOut, Status
from request_gateway.errors import GatewayErrorCode, gateway_error
from request_gateway.identity.cache import Profile
from servicekit.errors import ApiError, validation_error
from servicekit.fields import Text
from servicekit.middleware import request_id_for
from servicekit.paging import Cursor
from servicekit.ratelimit import RateLimitDecision, RateLimiterUnavailable, RateLimitPolicy

REPLAYED_HEADER: Final = "Idempotent-Replayed"

RequestType = Annotated[Text, msgspec.Meta(min_length=1, max_length=100)]
IdempotencyKey = Annotated[
    str | None, HeaderParameter(name="Idempotency-Key", min_length=1, max_length=200)
]
Limit = Annotated[int, QueryParameter(ge=1, le=200)]
MAX_WAIT_S: Final = 60
Wait = Annotated[int, QueryParameter(ge=0, le=MAX_WAIT_S)]

_encoder = msgspec.json.Encoder()
# U+0000 leaves the encoder as `\u0000`, which PostgreSQL's jsonb cannot store. After an
# escaped backslash (`\\u0000`) the same six characters are plain text, which it can.
_NUL_ESCAPE: Final = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


class RequestIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """DESIGN: `{"type", "payload": {...}}`."""

    type: RequestType
    payload: dict[str, Any]


# The other success each route may answer (the document lists every status it can get).
_REPLAYED: Final = ResponseSpec(
    RequestOut,
    description="A replayed Idempotency-Key: the request it made.",
    generate_examples=False,
)
_FORWARDED: Final = ResponseSpec(
    RequestOut, description="Already sent: a cancel is forwarded.", generate_examples=False
)


class RequestsController(Controller):
    """A user's own requests; anyone else's are invisible (404)."""

    path = "/api/v1/requests"
    tags = ("requests",)

    @post("/", status_code=HTTP_202_ACCEPTED, responses={HTTP_200_OK: _REPLAYED})
    async def submit(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[RequestIn],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[RequestOut]:
        """Queue a request for the processor (202); a repeated `Idempotency-Key` returns the
        request it made (200, `Idempotent-Replayed: true`) and never makes a second one."""
        return await submit_request(request, data, idempotency_key)

    @get("/{request_id:uuid}")
    async def read(
        self, request: Request[Any, Any, Any], request_id: FromPath[uuid.UUID], wait: Wait = 0
    ) -> RequestOut:
        """One of the caller's requests, with its response or error once it has one.

        With `wait=N` (up to 60 s) the answer waits until the request is final or N seconds
        have passed (a long poll), holding no database connection meanwhile.
        """
        user_id = (await gateway_user(request)).id
        pool = runtime_of(request).pool
        if not wait:
            async with pool.acquire() as conn:
                return await requests.get(conn, request_id, user_id)
        feed = change_feed_of(request)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        with await feed.open(user_id) as watch:
            while True:
                watch.arm()  # before reading: a change committed after the read wakes us
                async with pool.acquire() as conn:
                    current = await requests.get(conn, request_id, user_id)
                remaining = deadline - loop.time()
                if current.status in requests.FINAL or remaining <= 0 or feed.closing:
                    return current
                await watch.wait(remaining)

    @get("/")
    async def list_own(
        self,
        request: Request[Any, Any, Any],
        status: FromQuery[Status | None] = None,
        cursor: Cursor = None,
        limit: Limit = 50,
    ) -> Page:
        """The caller's requests, newest first; pass `next_cursor` as `cursor` for more."""
        user_id = (await gateway_user(request)).id
        async with runtime_of(request).pool.acquire() as conn:
            return await requests.list_page(
                conn, user_id=user_id, status=status, cursor=cursor, limit=limit
            )

    @delete(
        "/{request_id:uuid}", status_code=HTTP_200_OK, responses={HTTP_202_ACCEPTED: _FORWARDED}
    )
    async def cancel(
        self, request: Request[Any, Any, Any], request_id: FromPath[uuid.UUID]
    ) -> Response[RequestOut]:
        """Cancel: a queued request is cancelled at once (200); one already sent gets a
        cancel forwarded (202), and its final status tells whether it came in time."""
        user_id = (await gateway_user(request)).id
        async with runtime_of(request).pool.acquire() as conn:
            found, settled = await requests.cancel(conn, request_id, user_id)
        return Response(found, status_code=HTTP_200_OK if settled else HTTP_202_ACCEPTED)


def location(request_id: uuid.UUID) -> str:
    """Where a request can be read (and waited for)."""
    return f"{RequestsController.path}/{request_id}"


async def submit_request(
    request: Request[Any, Any, Any], data: RequestIn, idempotency_key: str | None
) -> Response[RequestOut]:
    """The submit's rules: profile, type, size, idempotency, rate, pending (the API's and
    the portal's)."""
    runtime = runtime_of(request)
    user = await gateway_user(request)
    profile = await runtime.identity.profile(user.profile_type)
    profile = _profile_or_refuse(profile)
    payload_json = _checked(data, profile)
    if idempotency_key is not None:
        # A replay answers what the first submit made, even once the burst is spent,
        # and spends nothing: it creates no work. Without a key, one round trip stays.
        async with runtime.pool.acquire() as conn:
            earlier = await requests.find_replay(
                conn,
                user_id=user.id,
                request_type=data.type,
                payload_json=payload_json,
                idempotency_key=idempotency_key,
            )
        if earlier is not None:
            return _replayed(earlier, {})
    decision = await _rate_limit(request, user.id, profile)
    async with runtime.pool.acquire() as conn:
        submitted = await requests.submit(
            conn,
            user_id=user.id,
            request_type=data.type,
            payload_json=payload_json,
            trace_id=request_id_for(request.scope),
            idempotency_key=idempotency_key,
            max_pending=profile.max_pending_requests,
        )
    headers = decision.headers()
    if submitted.created:
        headers["Location"] = location(submitted.request.id)
        return Response(submitted.request, status_code=HTTP_202_ACCEPTED, headers=headers)
    # A concurrent submit with the same key committed between the look-up and this one.
    return _replayed(submitted, headers)


def _replayed(submitted: requests.Submitted, headers: dict[str, str]) -> Response[RequestOut]:
    """200 with the request an idempotency key made; 422 when it was made for another one."""
    if not submitted.same:
        raise gateway_error(
            422,
            GatewayErrorCode.IDEMPOTENCY_KEY_REUSED,
            "This Idempotency-Key was used for a different request.",
        )
    headers[REPLAYED_HEADER] = "true"
    headers["Location"] = location(submitted.request.id)
    return Response(submitted.request, status_code=HTTP_200_OK, headers=headers)


def _profile_or_refuse(profile: Profile | None) -> Profile:
    if profile is None:
        raise gateway_error(
            403,
            GatewayErrorCode.PROFILE_TYPE_UNKNOWN,
            "Your profile type is not known here yet; try again once it has been synced.",
        )
    return profile


def _checked(data: RequestIn, profile: Profile) -> str:
    """The payload as JSON text, once the profile allows its type and size and jsonb can hold it."""
    if data.type not in profile.allowed_request_types:
        raise gateway_error(
            403,
            GatewayErrorCode.REQUEST_TYPE_NOT_ALLOWED,
            f"Your profile type does not allow requests of type {data.type!r}.",
        )
    payload_json = _encoder.encode(data.payload).decode()
    if "\\u0000" in payload_json and _NUL_ESCAPE.search(payload_json):
        raise validation_error(msgspec.ValidationError("Text may not hold U+0000 - at `$.payload`"))
    if len(payload_json.encode()) > profile.max_payload_bytes:
        raise gateway_error(
            413,
            GatewayErrorCode.PAYLOAD_TOO_LARGE,
            f"The payload is over your profile's {profile.max_payload_bytes} bytes.",
        )
    return payload_json


async def _rate_limit(
    request: Request[Any, Any, Any], user_id: uuid.UUID, profile: Profile
) -> RateLimitDecision:
    """Count the submit against the user's rate; 429 with the limit's headers beyond it."""
    if profile.requests_per_minute < 1 or profile.burst < 1:
        raise gateway_error(
            429, GatewayErrorCode.RATE_LIMITED, "Your profile type allows no requests."
        )
    policy = RateLimitPolicy(profile.requests_per_minute, profile.burst)
    try:
        decision = await runtime_of(request).rate_limiter.hit(str(user_id), policy)
    except RateLimiterUnavailable:
        raise gateway_error(
            503,
            GatewayErrorCode.RATE_LIMIT_UNAVAILABLE,
            "Requests cannot be accepted right now; try again shortly.",
        ) from None
    if not decision.allowed:
        raise ApiError(
            429,
            str(GatewayErrorCode.RATE_LIMITED),
            f"Over your rate of {policy.requests_per_minute} requests a minute; "
            f"retry in {decision.retry_after_s} s.",
            details={"retry_after_s": decision.retry_after_s},
            headers=decision.headers(),
        )
    return decision
