"""Error handling as data: what each answer of the API means, and how long to wait before retrying.

One table (`ERROR_MAPPING`) says what every status and transport error means; `NorthpassErrorHandler` adds the
two rules a status cannot say (a 200 whose body does not parse is retried; a redirect is refused, never followed),
and `NorthpassBackoff` how long to wait. A 403 or 404 is handed to the stream, which knows what it means for its
list (base_stream.py). The errors a user reads are built here too: `failure` for any, `Refused` for a 403.
"""

from __future__ import annotations

import logging
import math
import random
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Mapping, Optional, Union
from urllib.parse import urlsplit

import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.streams.http.error_handlers import BackoffStrategy, HttpStatusErrorHandler
from airbyte_cdk.sources.streams.http.error_handlers.default_error_mapping import DEFAULT_ERROR_MAPPING
from airbyte_cdk.sources.streams.http.error_handlers.response_models import ErrorResolution, ResponseAction
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from .config import DEFAULT_BASE_URL
from .jsonapi import json_body

MAX_BACKOFF_SECONDS = 60.0  # cap of one exponential step; the retry budget bounds the total
MAX_ATTEMPTS = 10_000  # attempts are bounded by the retry budget in seconds, not by a count
MIN_BACKOFF_SECONDS = 0.001  # the CDK treats a 0 s backoff as "none" and falls back to its own

KEY_REJECTED = (
    "The Northpass API rejected the API key (HTTP 401): it is wrong, was regenerated, or its user was deleted. "
    "Generate a new key in Northpass (Settings > API Keys) and update the connector's api_key."
)


def failure(message: str, failure_type: FailureType = FailureType.system_error) -> AirbyteTracedException:
    """An error for the user: the same sentence in the trace, the logs and the end-of-sync summary."""
    return AirbyteTracedException(message=message, internal_message=message, failure_type=failure_type)


class Refused(AirbyteTracedException):
    """A 403: the key may not read what a stream needs. A config_error the user acts on: another key, or fewer streams.

    Raised for the stream's own list (one refused page fails the stream: it can never be read whole with this
    key) and for any one parent of a child stream (the same). Kept apart from other failures so that a read
    made only as evidence can fall back to reading everything instead of failing (transcripts.py).
    """

    def __init__(self, stream: str, endpoint: str, what: str, deselect: str) -> None:
        message = (
            f"Stream {stream}: the Northpass API refused {what} {endpoint} (HTTP 403): the API key's user lacks the "
            "permission, or the account's plan does not include it. Use the API key of a user who may read it (an "
            f"admin), or deselect {deselect} in the connection; the other streams are read. The stream is not "
            "marked complete, so an Overwrite table keeps what the last successful sync wrote."
        )
        super().__init__(message=message, internal_message=message, failure_type=FailureType.config_error)
        self.stream = stream
        self.endpoint = endpoint


def _retry(message: str) -> ErrorResolution:
    return ErrorResolution(ResponseAction.RETRY, FailureType.transient_error, message)


# 403 and 404 reach the stream, which knows what they mean for a list (a refusal that fails the stream, or an empty
# collection counted into one summary line) (base_stream.py). They resolve as SUCCESS, not IGNORE: the CDK's HttpClient
# logs every IGNORE at INFO, as its error_message or, without one, as "Ignoring response for 'GET' request to
# '<url>' ..." (`_handle_error_resolution`), one line per empty collection: 26,000 at 30,000 mostly empty
# transcripts. A SUCCESS is handed on unlogged, the response unchanged. The CDK then calls raise_for_status only
# on a truthy response (`elif response:`, i.e. a 2xx); were that to change, every 404 would fail its stream
# loudly (unit_tests: an empty collection completes), never read as data.
HANDED_TO_THE_STREAM = ErrorResolution(ResponseAction.SUCCESS)
# Everything transient is retried within the retry budget.
ERROR_MAPPING: Mapping[Union[int, str, type[Exception]], ErrorResolution] = {
    **DEFAULT_ERROR_MAPPING,
    requests.exceptions.ConnectionError: _retry("The connection to the Northpass API failed."),
    requests.exceptions.Timeout: _retry("The Northpass API did not answer in time."),
    requests.exceptions.ChunkedEncodingError: _retry("The Northpass API's answer was cut off."),
    401: ErrorResolution(ResponseAction.FAIL, FailureType.config_error, KEY_REJECTED),
    403: HANDED_TO_THE_STREAM,
    404: HANDED_TO_THE_STREAM,
    408: _retry("HTTP 408 Request Timeout."),
    429: ErrorResolution(ResponseAction.RATE_LIMITED, FailureType.transient_error, "HTTP 429 Too Many Requests."),
    **{status: _retry(f"HTTP {status} server error.") for status in (500, 502, 503, 504)},
}

UNREADABLE_BODY = _retry("The Northpass API answered 200 with a body that is not complete JSON.")


class NorthpassErrorHandler(HttpStatusErrorHandler):
    """The status table above, plus: a 200 whose body does not parse is retried, never read as no data."""

    def __init__(self, logger: logging.Logger, retry_budget_seconds: float) -> None:
        super().__init__(
            logger,
            error_mapping=ERROR_MAPPING,
            max_retries=MAX_ATTEMPTS,
            # The CDK truncates the budget to whole seconds: 0.5 would become "no retry at all".
            max_time=timedelta(seconds=math.ceil(retry_budget_seconds)),
        )

    def interpret_response(
        self, response_or_exception: Optional[Union[requests.Response, Exception]] = None
    ) -> ErrorResolution:
        if isinstance(response_or_exception, Exception):
            for exc_type in type(response_or_exception).__mro__:
                if exc_type in ERROR_MAPPING:
                    return ERROR_MAPPING[exc_type]
        if isinstance(response_or_exception, requests.Response) and response_or_exception.is_redirect:
            return redirect_refused(response_or_exception)
        if isinstance(response_or_exception, requests.Response) and response_or_exception.ok:
            try:
                json_body(response_or_exception)
            except ValueError:
                return UNREADABLE_BODY
        return super().interpret_response(response_or_exception)


def redirect_refused(response: requests.Response) -> ErrorResolution:
    """Redirects are never followed: requests would copy the `X-Api-Key` header to wherever they point."""
    target = urlsplit(response.headers.get("Location") or "")
    where = target.netloc or target.path or "nowhere"
    message = (
        f"The API answered HTTP {response.status_code}, redirecting to {where}. Not followed: the API key is only "
        f"sent to base_url's host. Check the connector's base_url (normally {DEFAULT_BASE_URL})."
    )
    return ErrorResolution(ResponseAction.FAIL, FailureType.config_error, message)


class NorthpassBackoff(BackoffStrategy):
    """`Retry-After` when the API sends it; otherwise exponential backoff with full jitter.

    No single wait is longer than the retry budget: the CDK sleeps whatever it is given before it checks
    the budget again, so an unbounded `Retry-After: 86400` would hang the sync for a day.
    """

    def __init__(
        self, base_seconds: float, max_wait_seconds: float = MAX_BACKOFF_SECONDS, rng: Optional[random.Random] = None
    ) -> None:
        self._base = base_seconds
        self._max_wait = max(max_wait_seconds, MIN_BACKOFF_SECONDS)
        self._rng = rng or random.Random()

    def backoff_time(
        self,
        response_or_exception: Optional[Union[requests.Response, requests.RequestException]],
        attempt_count: int,
    ) -> Optional[float]:
        if isinstance(response_or_exception, requests.Response):
            retry_after = parse_retry_after(response_or_exception.headers.get("Retry-After"))
            if retry_after is not None:
                return min(max(retry_after, MIN_BACKOFF_SECONDS), self._max_wait)
        step = min(MAX_BACKOFF_SECONDS, self._max_wait, self._base * 2 ** max(attempt_count - 1, 0))
        return max(self._rng.uniform(step / 2, step), MIN_BACKOFF_SECONDS)


def describe_last_answer(error: requests.exceptions.HTTPError) -> str:
    """What the API last answered to a request that was retried until the budget ran out, for the user."""
    response = error.response
    if isinstance(response, requests.Response):
        if response.ok:  # a 2xx is only retried when its body does not parse
            return f"HTTP {response.status_code} with a body that is not complete JSON"
        return f"HTTP {response.status_code}"
    return f"no HTTP answer ({error})"


def parse_retry_after(value: Optional[str]) -> Optional[float]:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max((when - datetime.now(timezone.utc)).total_seconds(), 0.0)
