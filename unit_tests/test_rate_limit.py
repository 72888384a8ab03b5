"""The shared limiter on a virtual clock: never more than N calls in any window, under many threads, in lane order."""

from __future__ import annotations

import socket
import threading
import time
from collections import deque
from typing import Any, List, Optional

import pytest
import requests

from sandbox import SandboxOptions, SandboxServer
from source_northpass_lms.auth import ApiKeyAuthenticator
from source_northpass_lms.config import NorthpassConfig
from source_northpass_lms.rate_limit import PacedAdapter, SlidingWindowBudget, ahead_in_line
from source_northpass_lms.streams import People
from source_northpass_lms.sync import SyncClock, SyncContext

OVERSHOOT = 1e-6


class VirtualClock:
    """Time that passes only when a caller sleeps; `gate` holds sleepers until the test lets time run.

    A sleep lasts a microsecond longer than asked, as real sleeps overshoot: without it, float rounding can leave
    the clock a hair short of the moment a call leaves the window, forever.
    """

    def __init__(self) -> None:
        self.now = 0.0
        self.gate = threading.Event()
        self.gate.set()
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            target = self.now + seconds
        self.gate.wait()
        with self._lock:
            self.now = max(self.now, target + OVERSHOOT)


class RecordingDeque(deque):
    def __init__(self, log: List[float]) -> None:
        super().__init__()
        self.log = log

    def append(self, stamp: float) -> None:
        self.log.append(stamp)
        super().append(stamp)


def join_all(threads: List[threading.Thread]) -> None:
    """A limiter that deadlocks fails the test instead of hanging it (the clock is virtual: 30 s is generous)."""
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads), "callers still waiting for the limiter"


def most_in_any_window(stamps: List[float], window: float) -> int:
    stamps = sorted(stamps)
    start, most = 0, 0
    for end, stamp in enumerate(stamps):
        while stamps[start] <= stamp - window:
            start += 1
        most = max(most, end - start + 1)
    return most


def test_given_many_threads_when_they_all_call_then_never_more_than_n_calls_in_any_one_second_window() -> None:
    clock = VirtualClock()
    budget = SlidingWindowBudget(10, clock=clock, sleep=clock.sleep)
    stamps: List[float] = []
    budget._stamps = RecordingDeque(stamps)  # the times the limiter granted calls at, exactly

    def caller(ahead: bool) -> None:
        with ahead_in_line(ahead):
            for _ in range(25):
                budget.acquire_call(None)

    threads = [threading.Thread(target=caller, args=(i % 4 == 0,), daemon=True) for i in range(16)]
    for thread in threads:
        thread.start()
    join_all(threads)

    assert len(stamps) == budget.acquired == 400
    assert most_in_any_window(stamps, 1.0) == 10
    gaps = [later - earlier for earlier, later in zip(stamps[:-1], stamps[1:], strict=True)]
    assert min(gaps) >= budget.spacing == budget.window / 10  # spread evenly, never in bursts
    # 400 calls at 10 per window: the clock moved no further than the windows needed.
    assert clock.now <= (400 / 10) * budget.window


def test_given_fractional_rate_when_calls_then_window_stretched_to_keep_the_average() -> None:
    budget = SlidingWindowBudget(2.5, margin_seconds=0)

    assert (budget.calls, budget.window) == (2, 0.8)


def test_given_full_window_and_waiting_callers_when_a_caller_ahead_in_line_arrives_then_it_gets_the_next_call() -> None:
    clock = VirtualClock()
    budget = SlidingWindowBudget(1, margin_seconds=0, clock=clock, sleep=clock.sleep)
    budget.acquire_call(None)  # the window is full until t = 1
    clock.gate.clear()
    order: List[str] = []

    def caller(name: str, ahead: bool) -> None:
        with ahead_in_line(ahead):
            budget.acquire_call(None)
        order.append(name)

    def start(name: str, ahead: bool, queued: int) -> threading.Thread:
        thread = threading.Thread(target=caller, args=(name, ahead), daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while len(budget._queue) < queued:  # until it stands in line
            assert time.monotonic() < deadline, f"{name} did not have to wait for a call"
            time.sleep(0.001)
        return thread

    threads = [start("child-1", False, 1), start("child-2", False, 2), start("list", True, 3)]
    clock.gate.set()
    join_all(threads)

    assert order == ["list", "child-1", "child-2"]
    assert 3.0 <= clock.now < 3.001


def test_given_lane_set_in_a_block_when_block_ends_then_previous_lane_restored() -> None:
    clock = VirtualClock()
    budget = SlidingWindowBudget(1, margin_seconds=0, clock=clock, sleep=clock.sleep)

    with ahead_in_line(True):
        with ahead_in_line(False):
            budget.acquire_call(None)
        budget.acquire_call(None)
    budget.acquire_call(None)

    assert budget.acquired == 3 and not budget._queue


class CountingBudget(SlidingWindowBudget):
    def __init__(self) -> None:
        super().__init__(1000)
        self.calls_taken = 0

    def acquire_call(self, request: Any, block: bool = True, timeout: Optional[float] = None) -> None:
        self.calls_taken += 1


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends: connections to it are refused


def test_given_connection_that_cannot_open_when_sent_then_no_call_taken_since_nothing_reached_the_server() -> None:
    budget = CountingBudget()
    request = requests.Request("GET", f"http://127.0.0.1:{closed_port()}/v2/people").prepare()

    with pytest.raises(requests.ConnectionError):
        PacedAdapter(budget, pool_maxsize=4).send(request, timeout=2)

    assert budget.calls_taken == 0


def test_given_open_connection_when_sent_then_one_call_taken_just_before_the_request_is_written() -> None:
    budget = CountingBudget()
    with SandboxServer(
        SandboxOptions(people=1, courses=1, events=0, quiz_attempts=0, requests_per_second=None)
    ) as sandbox:
        request = requests.Request("GET", f"{sandbox.base_url}/v2/people", headers={"X-Api-Key": "sandbox-key"})

        response = PacedAdapter(budget, pool_maxsize=4).send(request.prepare(), timeout=5)

        assert response.status_code == 200 and sandbox.stats()["requests"] == 1
    assert budget.calls_taken == 1


def test_given_proxy_when_sent_then_call_taken_before_the_proxys_connection() -> None:
    budget = CountingBudget()
    request = requests.Request("GET", "http://api.northpass.test/v2/people").prepare()
    proxies = {"http": f"http://127.0.0.1:{closed_port()}"}

    with pytest.raises(requests.ConnectionError):
        PacedAdapter(budget, pool_maxsize=4).send(request, timeout=2, proxies=proxies)

    assert budget.calls_taken == 1  # the proxy's own connections are not paced: the call is taken before them


@pytest.mark.parametrize("base_url", ["https://api.northpass.test", "http://127.0.0.1:8080"])
def test_given_base_url_of_either_scheme_when_a_stream_sends_then_it_goes_through_the_paced_adapter(
    base_url: str,
) -> None:
    config = NorthpassConfig.parse({"api_key": "key", "base_url": base_url})
    budget = CountingBudget()
    stream = People(SyncContext(config, ApiKeyAuthenticator(config.api_key, config.base_url), budget, SyncClock()))

    adapter = stream.session.get_adapter(f"{config.api_root}people")

    assert isinstance(adapter, PacedAdapter)
