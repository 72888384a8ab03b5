"""The fence around private names (source_northpass_lms/cdk_internals.py): each still has the shape the connector
relies on in the installed libraries, and no other module of the package touches a private name of them."""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import inspect
import logging
import re
from pathlib import Path
from typing import Any, Dict, Iterator, List, Set, Tuple

import pytest
import requests
from airbyte_cdk.sources.streams.http import HttpClient
from airbyte_cdk.sources.streams.http.error_handlers import HttpStatusErrorHandler
from airbyte_cdk.sources.streams.http.exceptions import BaseBackoffException
from airbyte_cdk.utils.traced_exception import AirbyteTracedException
from urllib3 import HTTPConnectionPool, PoolManager

from source_northpass_lms.cdk_internals import open_connections_as, wrapped_exception

FENCE = "source_northpass_lms/cdk_internals.py"
PACKAGE = Path(__file__).resolve().parent.parent / "source_northpass_lms"
LIBRARIES = ("airbyte_cdk", "requests", "urllib3")
# Names with no leading underscore that are internals all the same (see the fence's docstring).
FENCED_PUBLIC_LOOKING = ("pool_classes_by_scheme", "ConnectionCls")
# The public API of namedtuples carries a leading underscore so as not to clash with field names.
NAMEDTUPLE_API = {"_replace", "_asdict", "_fields", "_make"}
ATTRIBUTE_BUILTINS = {"getattr", "setattr", "hasattr", "delattr"}


def gone(distribution: str, what: str) -> str:
    return f"{distribution} {importlib.metadata.version(distribution)} no longer has {what}: see {FENCE}"


class RefusedConnection(requests.Session):
    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        raise requests.ConnectionError("refused", request=request)


def test_given_the_installed_cdk_then_a_traced_exception_keeps_the_exception_it_wraps() -> None:
    cause = ValueError("the cause")

    assert "exception" in inspect.signature(AirbyteTracedException).parameters, gone(
        "airbyte-cdk", "AirbyteTracedException(exception=...)"
    )
    assert vars(AirbyteTracedException(exception=cause)).get("_exception") is cause, gone(
        "airbyte-cdk", "AirbyteTracedException._exception"
    )
    assert wrapped_exception(AirbyteTracedException(message="no cause")) is None


def test_given_the_installed_cdk_when_its_http_client_gives_up_then_it_wraps_the_last_backoff_exception() -> None:
    logger = logging.getLogger("test_cdk_internals")
    client = HttpClient(
        "people", logger, error_handler=HttpStatusErrorHandler(logger, max_retries=0), session=RefusedConnection()
    )

    with pytest.raises(AirbyteTracedException) as raised:
        client.send_request("GET", "https://api.northpass.test/v2/people", request_kwargs={})

    cause = wrapped_exception(raised.value)
    assert isinstance(cause, BaseBackoffException), gone(
        "airbyte-cdk", f"HttpClient giving up with its last BaseBackoffException as _exception (got {cause!r})"
    )
    assert cause.request is not None and cause.request.url == "https://api.northpass.test/v2/people"


def test_given_the_installed_urllib3_then_a_pool_manager_picks_each_schemes_pool_class_by_name() -> None:
    manager = PoolManager()

    pool_classes = getattr(manager, "pool_classes_by_scheme", None)

    assert isinstance(pool_classes, dict) and {"http", "https"} <= set(pool_classes), gone(
        "urllib3", "PoolManager.pool_classes_by_scheme (a dict of pool classes by scheme)"
    )
    for scheme, pool_class in pool_classes.items():
        assert issubclass(pool_class, HTTPConnectionPool), gone("urllib3", f"an HTTPConnectionPool for {scheme}")
        assert isinstance(getattr(pool_class, "ConnectionCls", None), type), gone(
            "urllib3", f"{pool_class.__name__}.ConnectionCls (the class of the connections it opens)"
        )


def test_given_connections_opened_as_a_class_then_every_new_pool_opens_its_connections_as_that_class() -> None:
    manager = PoolManager()
    wrapped: Dict[type, type] = {}

    def subclass(connection_class: type) -> type:
        wrapped[connection_class] = type(f"Marked{connection_class.__name__}", (connection_class,), {})
        return wrapped[connection_class]

    open_connections_as(manager, subclass)

    for url in ("http://127.0.0.1:9/", "https://api.northpass.test/"):
        pool = manager.connection_from_url(url)
        assert pool.ConnectionCls in wrapped.values(), gone("urllib3", "pools opening connections as ConnectionCls")
        assert pool.ConnectionCls.__mro__[1] in wrapped


def package_modules() -> Iterator[Tuple[Path, ast.Module]]:
    for path in sorted(PACKAGE.glob("*.py")):
        if path.name != Path(FENCE).name:
            yield path, ast.parse(path.read_text(), str(path))


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def is_self(node: ast.expr) -> bool:
    """`self`, `cls` or `super()`: the object whose own private names a class may use."""
    if isinstance(node, ast.Name):
        return node.id in ("self", "cls")
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "super"


def private_names_of_libraries(cls: type) -> Set[str]:
    """The private attributes and methods that the classes `cls` inherits from the libraries define."""
    names: Set[str] = set()
    for base in cls.__mro__[1:]:
        if base.__module__.split(".")[0] not in LIBRARIES:
            continue
        names.update(name for name in vars(base) if is_private(name))
        try:
            source = inspect.getsource(base)
        except (OSError, TypeError):
            continue
        names.update(re.findall(r"self\.(_[A-Za-z]\w*)\s*(?::[^=\n]+)?=(?!=)", source))
    return names


def member_names(statement: ast.stmt) -> List[str]:
    """The names a statement of a class body defines: a method, or class attributes."""
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return [statement.name]
    targets = statement.targets if isinstance(statement, ast.Assign) else [getattr(statement, "target", None)]
    return [target.id for target in targets if isinstance(target, ast.Name)]


def private_uses(path: Path, tree: ast.Module) -> Iterator[str]:
    """Where a module names something private to the libraries, or private to an object other than its own."""
    module = importlib.import_module(f"source_northpass_lms.{path.stem}")
    for node in ast.walk(tree):
        where = f"{path.name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in LIBRARIES:
            parts = (node.module or "").split(".") + [alias.name for alias in node.names]
            yield from (f"{where} imports {part} from {node.module}" for part in parts if is_private(part))
        elif isinstance(node, ast.Attribute) and node.attr in FENCED_PUBLIC_LOOKING:
            yield f"{where} uses .{node.attr}"
        elif isinstance(node, ast.Constant) and node.value in FENCED_PUBLIC_LOOKING:
            yield f"{where} names {node.value!r}"
        elif isinstance(node, ast.Attribute) and is_private(node.attr) and node.attr not in NAMEDTUPLE_API:
            if not is_self(node.value):
                yield f"{where} uses .{node.attr} of another object"
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ATTRIBUTE_BUILTINS:
            name = node.args[1] if len(node.args) > 1 else None
            if isinstance(name, ast.Constant) and is_private(str(name.value)) and not is_self(node.args[0]):
                yield f"{where} uses {name.value!r} of another object"
        elif isinstance(node, ast.ClassDef) and isinstance(getattr(module, node.name, None), type):
            inherited = private_names_of_libraries(getattr(module, node.name))
            uses = [(inner.lineno, inner.attr) for inner in ast.walk(node) if isinstance(inner, ast.Attribute)]
            uses += [(member.lineno, name) for member in node.body for name in member_names(member)]
            yield from (
                f"{path.name}:{line} uses {name}, which a base of {node.name} keeps private"
                for line, name in uses
                if name in inherited
            )


def test_given_the_package_then_no_module_but_the_fence_uses_a_private_name_of_the_cdk_requests_or_urllib3() -> None:
    found = [use for path, tree in package_modules() for use in private_uses(path, tree)]

    assert not found, f"Private names of {', '.join(LIBRARIES)} belong in {FENCE} only: " + "; ".join(found)
