"""The connector's configuration: parsed once, validated with messages that name the field."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping, Optional
from urllib.parse import urlsplit

import pendulum
from airbyte_cdk.models import FailureType
from airbyte_cdk.utils.airbyte_secrets_utils import add_to_secrets
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

DEFAULT_BASE_URL = "https://api.northpass.com"
MAX_PAGE_SIZE = 100  # the largest page the API is known to serve (other clients use 100 in production)
DEFAULT_REQUESTS_PER_SECOND = 10.0  # the documented per-account limit; beyond it the API answers 429
DEFAULT_NUM_WORKERS = (
    8  # one-page child collections in parallel: 8 in flight fill 10 requests/s up to 800 ms of latency
)
MAX_NUM_WORKERS = 32
DEFAULT_REQUEST_TIMEOUT_SECONDS = 60.0  # a stalled read is abandoned and retried after this long
DEFAULT_RETRY_BUDGET_SECONDS = 600.0  # how long one request may keep retrying before the stream fails
DEFAULT_BACKOFF_BASE_SECONDS = 1.0  # first exponential backoff step when no Retry-After is sent
# Every person's transcript is re-read at least once in any this many consecutive incremental syncs: a change that
# leaves no evidence (an admin enrolls someone, extends a certificate) arrives within a week of daily syncs.
DEFAULT_TRANSCRIPTS_REREAD_WITHIN_SYNCS = 7
MAX_TRANSCRIPTS_REREAD_WITHIN_SYNCS = 1000
LOOPBACK_HOSTS = {"localhost"}
# The form start_date is written in since 1.2.0: a date-time with seconds and a zone (Z or an offset), fractions
# optional. A config in another form that an earlier version accepted is rewritten in this one when the connector
# starts (config_migrations.py). spec.yaml has no pattern for it: see the comment there.
DATE_TIME_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$"
START_DATE_FORM = (
    "a date-time such as 2024-01-01T00:00:00Z (YYYY-MM-DDTHH:mm:ssZ; an offset such as +02:00 may replace Z)"
)


class ConfigError(AirbyteTracedException):
    """A mistake in the config the user can fix; reported as a config_error naming the field."""

    def __init__(self, field: str, problem: str) -> None:
        message = f"Config field '{field}': {problem}"
        super().__init__(internal_message=message, message=message, failure_type=FailureType.config_error)


@dataclass(frozen=True)
class NorthpassConfig:
    api_key: str
    base_url: str  # scheme://host[:port], no trailing slash
    page_size: int = MAX_PAGE_SIZE
    requests_per_second: float = DEFAULT_REQUESTS_PER_SECOND
    num_workers: int = DEFAULT_NUM_WORKERS
    start_date: Optional[datetime] = None
    request_timeout_seconds: float = DEFAULT_REQUEST_TIMEOUT_SECONDS
    retry_budget_seconds: float = DEFAULT_RETRY_BUDGET_SECONDS
    backoff_base_seconds: float = DEFAULT_BACKOFF_BASE_SECONDS
    transcripts_reread_within_syncs: int = DEFAULT_TRANSCRIPTS_REREAD_WITHIN_SYNCS

    @property
    def api_root(self) -> str:
        return f"{self.base_url}/v2/"

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> NorthpassConfig:
        if not isinstance(raw, Mapping):
            raise ConfigError("config", "must be a JSON object")
        api_key = _api_key(raw.get("api_key"))
        # The platform masks the config value as given; a stripped key is a different string to mask.
        add_to_secrets(api_key)
        return cls(
            api_key=api_key,
            base_url=_base_url(raw.get("base_url", DEFAULT_BASE_URL)),
            page_size=_integer(raw, "page_size", MAX_PAGE_SIZE, 1, MAX_PAGE_SIZE),
            requests_per_second=_number(raw, "requests_per_second", DEFAULT_REQUESTS_PER_SECOND, 0.1, 1000),
            num_workers=_integer(raw, "num_workers", DEFAULT_NUM_WORKERS, 1, MAX_NUM_WORKERS),
            start_date=parse_start_date(raw.get("start_date")),
            request_timeout_seconds=_number(raw, "request_timeout_seconds", DEFAULT_REQUEST_TIMEOUT_SECONDS, 0.1, 600),
            retry_budget_seconds=_number(raw, "retry_budget_seconds", DEFAULT_RETRY_BUDGET_SECONDS, 0, 86400),
            backoff_base_seconds=_number(raw, "backoff_base_seconds", DEFAULT_BACKOFF_BASE_SECONDS, 0, 60),
            transcripts_reread_within_syncs=_integer(
                raw,
                "transcripts_reread_within_syncs",
                DEFAULT_TRANSCRIPTS_REREAD_WITHIN_SYNCS,
                1,
                MAX_TRANSCRIPTS_REREAD_WITHIN_SYNCS,
            ),
        )


def _api_key(value: Any) -> str:
    if value is None:
        raise ConfigError("api_key", "is missing. Paste the API key from Northpass (Settings > API Keys).")
    if not isinstance(value, str):
        raise ConfigError("api_key", "must be a string.")
    key = value.strip()
    if not key:
        raise ConfigError("api_key", "is empty. Paste the API key from Northpass (Settings > API Keys).")
    if any(ch.isspace() for ch in key):
        raise ConfigError("api_key", "contains whitespace inside it; copy the key again without spaces or line breaks.")
    return key


def _base_url(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError("base_url", f"must be a URL such as {DEFAULT_BASE_URL}.")
    parts = urlsplit(value.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError("base_url", f"must be an https URL such as {DEFAULT_BASE_URL}.")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigError(
            "base_url",
            "must use https; plain http is only allowed to a loopback host (127.0.0.1, localhost, ::1), "
            "because the API key would otherwise travel unencrypted.",
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError("base_url", "must not carry credentials, a query or a fragment.")
    path = parts.path.rstrip("/")
    if path.endswith("/v2"):
        path = path[: -len("/v2")]
    return f"{parts.scheme}://{parts.netloc}{path}"


def _is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _integer(raw: Mapping[str, Any], field: str, default: int, low: int, high: int) -> int:
    value = raw.get(field, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(field, f"must be a whole number from {low} to {high}, got {value!r}.")
    if not low <= value <= high:
        raise ConfigError(field, f"must be from {low} to {high}, got {value}.")
    return value


def _number(raw: Mapping[str, Any], field: str, default: float, low: float, high: float) -> float:
    value = raw.get(field, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(field, f"must be a number from {low} to {high}, got {value!r}.")
    if not low <= value <= high:
        raise ConfigError(field, f"must be from {low} to {high}, got {value}.")
    return float(value)


def parse_start_date(value: Any) -> Optional[datetime]:
    """start_date as an instant in UTC, from any form a release accepted (None: no start date).

    1.0 and 1.1 read it with pendulum's parser (ISO-8601, also `2024/01/01`, and `now` or a time alone as that
    moment of the run), an empty string as none; so does this, so that a config saved then reads as it did also
    when it reaches parse() without the entry point's migration (a caller of the Source itself).
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError("start_date", f"must be {START_DATE_FORM}, got {value!r}.")
    # 1.2.0 matched its pattern with re.search, whose `$` also matches before a final newline: it accepted one.
    text = value.removesuffix("\n")
    if not text:
        return None
    try:
        parsed = pendulum.parse(text)
    except (ValueError, pendulum.parsing.exceptions.ParserError):
        parsed = None
    if isinstance(parsed, datetime):
        return parsed.in_timezone("UTC")
    if re.search(DATE_TIME_PATTERN, value):
        raise ConfigError("start_date", f"is not a valid date-time: {value!r}.")
    raise ConfigError("start_date", f"must be {START_DATE_FORM}, got {value!r}.")


def format_start_date(value: datetime) -> str:
    """An instant in start_date's form since 1.2.0 (DATE_TIME_PATTERN), in UTC, fractions of a second kept."""
    utc = pendulum.instance(value).in_timezone("UTC")
    fraction = f".{utc.microsecond:06d}" if utc.microsecond else ""
    return f"{utc.strftime('%Y-%m-%dT%H:%M:%S')}{fraction}Z"
