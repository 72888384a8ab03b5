"""The only place the connector reaches past the public API of the CDK and of the HTTP stack under it (urllib3).

A release can rename or reshape any name used here without notice: `unit_tests/test_cdk_internals.py` checks the
shape of each against the installed versions, failing with the library, its version and this module's name, and
fails too when another module of the package uses one of them.

- `AirbyteTracedException._exception`: the exception the CDK wraps, given as `exception=` and kept with no public
  getter. When its HttpClient gives up retrying it wraps the last `BaseBackoffException` so, and only that tells
  which request failed and what the API last answered (base_stream.py names both to the user). The CDK raises the
  wrapper inside its `except`, not `from` the cause, so `__cause__` is None; `__context__` holds the same exception
  today only by where the `raise` stands, a link one refactor can drop without an error. The explicit one is read.
- `PoolManager.pool_classes_by_scheme` and `HTTPConnectionPool.ConnectionCls` (urllib3; no leading underscore, but
  undocumented internals): the only way to choose the class of the connections a pool opens. The rate limiter takes its call on an open connection, just before the
  request is written (rate_limit.PacedAdapter); requests and urllib3 have no public hook between the two.
"""

from __future__ import annotations

from typing import Callable, Optional

from airbyte_cdk.utils.traced_exception import AirbyteTracedException
from urllib3 import HTTPConnectionPool, PoolManager


def wrapped_exception(error: AirbyteTracedException) -> Optional[BaseException]:
    """The exception `error` was raised for, as the CDK passed it (`exception=`), or None."""
    return error._exception


def open_connections_as(poolmanager: PoolManager, connection_for: Callable[[type], type]) -> None:
    """Makes the pools `poolmanager` creates open their connections as `connection_for(<urllib3's class for them>)`."""
    pool_classes: dict[str, type[HTTPConnectionPool]] = poolmanager.pool_classes_by_scheme
    poolmanager.pool_classes_by_scheme = {
        scheme: type(pool_class.__name__, (pool_class,), {"ConnectionCls": connection_for(pool_class.ConnectionCls)})
        for scheme, pool_class in pool_classes.items()
    }
