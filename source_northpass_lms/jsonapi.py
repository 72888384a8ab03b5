"""JSON:API documents as the Northpass API sends them, and the page URLs their links name.

Every answer of the API is a JSON:API document: a list (`{"data": [<resource>, ...], "links": {"next": ...}}`) or
an error (`{"errors": [...]}`, its 401/403/404). Anything else (a proxy's page, another server, a body cut off) is
not the API's answer and is never read as an empty list: the error handler retries a 200 that does not parse
(errors.py) and the stream fails on one that is not a list (base_stream.py).

The API pages by number (`page`, `limit`); its `links.next` is the next page's absolute URL, without `limit`
(followed verbatim, page 2 on may come at the API's default size, which is not documented): it is put back.
The URL edits below are the only places a page URL is taken apart or built. What a resource becomes as a record is
records.py's.
"""

from __future__ import annotations

import threading
from typing import Any, List, Mapping, Optional, Tuple
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from weakref import WeakKeyDictionary

import orjson
import requests

Resource = Mapping[str, Any]
PageIdentity = Tuple[str, Tuple[Tuple[str, str], ...]]

# Parsed bodies, by response: held only as long as the response itself is.
_parsed_bodies: WeakKeyDictionary[requests.Response, Any] = WeakKeyDictionary()
_parsed_bodies_lock = threading.Lock()


def json_body(response: requests.Response) -> Any:
    """The parsed body, parsed once: the error handler and the stream both need it. Raises ValueError."""
    with _parsed_bodies_lock:
        cached = _parsed_bodies.get(response)
    if cached is None:
        cached = orjson.loads(response.content)
        with _parsed_bodies_lock:
            _parsed_bodies[response] = cached
    return cached


def resources(response: requests.Response) -> Optional[List[Resource]]:
    """The resources of a JSON:API list answer, or None when the body is not one."""
    try:
        body = json_body(response)
    except ValueError:
        return None
    data = body.get("data") if isinstance(body, Mapping) else None
    if not isinstance(data, list) or not all(isinstance(resource, Mapping) for resource in data):
        return None
    return data


def is_error(response: requests.Response) -> bool:
    """Whether the body is a JSON:API error document: the API's 401/403/404, not a proxy's or another server's page."""
    try:
        body = json_body(response)
    except ValueError:
        return False
    return isinstance(body, Mapping) and "errors" in body


def next_link(response: requests.Response) -> Optional[str]:
    """The list's `links.next`, or None at its end: no link, or a page without resources (an API that links an
    empty page to another would otherwise be followed forever). For an answer already read as a list."""
    body = json_body(response)
    link = (body.get("links") or {}).get("next")
    if not body.get("data") or not link:
        return None
    return str(link)


def endpoint(url: Optional[str]) -> str:
    """A URL without its query, for messages."""
    parts = urlsplit(url or "")
    return urlunsplit(parts._replace(query="", fragment=""))


def page_identity(url: str) -> PageIdentity:
    """Which page of which list a URL asks for: its path and parameters, in any order, page 1 when unnumbered."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.setdefault("page", "1")
    return parts.path.rstrip("/"), tuple(sorted(query.items()))


def page_number(url: str) -> int:
    """The page a URL asks for (1 when it has no `page`)."""
    value = dict(parse_qsl(urlsplit(url).query)).get("page", "1")
    return int(value) if value.isdigit() else 1


def with_page(url: str, number: int) -> str:
    """The URL of another page of the same list: `page` replaced in place (or added), every other parameter kept."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if not any(key == "page" for key, _ in query):
        query.append(("page", ""))
    query = [(key, str(number) if key == "page" else value) for key, value in query]
    return urlunsplit(parts._replace(query=urlencode(query)))


def with_limit(url: str, limit: int) -> str:
    """A `links.next` URL with the page size put back: the API's links drop `limit`."""
    parts = urlsplit(url)
    query = [(key, value) for key, value in parse_qsl(parts.query, keep_blank_values=True) if key != "limit"]
    query.append(("limit", str(limit)))
    return urlunsplit(parts._replace(query=urlencode(query)))
