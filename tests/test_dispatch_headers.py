"""Rate-limit advice from response headers, as the dispatcher reads it."""

from __future__ import annotations

import pytest

from instructgen.engine_errors import from_exception, from_status, retry_after_from_headers
from instructgen.errors import (
    AuthenticationError,
    BadRequestError,
    MalformedResponseError,
    RateLimitError,
    TransientEngineError,
)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "3"}, 3.0),
        ({"retry-after": "0.25"}, 0.25),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"x-ratelimit-reset-requests": "6m0s"}, 360.0),
        ({"x-ratelimit-reset-tokens": "20ms", "x-ratelimit-reset-requests": "1s"}, 1.0),
        ({"X-RateLimit-Reset-Tokens": "1h2m3s"}, 3723.0),
        ({}, None),
        ({"retry-after": "soon"}, None),
    ],
)
def test_retry_after(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after_from_headers(headers) == seconds


def test_http_date_retry_after_is_in_the_future_or_zero() -> None:
    value = retry_after_from_headers({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert value == 0.0


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (429, RateLimitError, True),
        (500, TransientEngineError, True),
        (503, TransientEngineError, True),
        (408, TransientEngineError, True),
        (401, AuthenticationError, False),
        (403, AuthenticationError, False),
        (400, BadRequestError, False),
        (404, BadRequestError, False),
        (422, BadRequestError, False),
    ],
)
def test_status_classification(status: int, kind: type, retryable: bool) -> None:
    err = from_status(status, "message", engine="x", headers={"Retry-After": "2"})
    assert type(err) is kind and err.retryable is retryable and err.status == status
    assert err.retry_after == 2.0


def test_exception_classification() -> None:
    import json

    assert isinstance(from_exception(json.JSONDecodeError("x", "y", 0)), MalformedResponseError)
    assert isinstance(from_exception(TimeoutError()), TransientEngineError)
    assert isinstance(from_exception(ConnectionResetError()), TransientEngineError)
