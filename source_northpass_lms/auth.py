"""Authentication: the API key travels in the `X-Api-Key` header, and only to the configured host."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.streams.http.requests_native_auth.abstract_token import AbstractHeaderAuthenticator
from airbyte_cdk.utils.traced_exception import AirbyteTracedException


def origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, (parts.hostname or "").lower(), port


class ApiKeyAuthenticator(AbstractHeaderAuthenticator):
    """Sends the key as `X-Api-Key`.

    `TokenAuthenticator(auth_method="")` would send it with a leading space. The key is attached only to
    requests for the configured origin, so a redirect or a forged `next` link cannot carry it elsewhere.
    """

    def __init__(self, api_key: str, base_url: str) -> None:
        self._api_key = api_key
        self._origin = origin(base_url)

    @property
    def auth_header(self) -> str:
        return "X-Api-Key"

    @property
    def token(self) -> str:
        return self._api_key

    def __call__(self, request: requests.PreparedRequest) -> Any:
        if origin(request.url or "") != self._origin:
            raise AirbyteTracedException(
                message=(
                    f"Refused to send the API key to {urlsplit(request.url or '').netloc or request.url!r}: "
                    "it is only sent to the configured base_url's host."
                ),
                failure_type=FailureType.system_error,
            )
        return super().__call__(request)
