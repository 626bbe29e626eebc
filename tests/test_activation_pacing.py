"""Pacing and retries the sinks share (activation.pacing), on a fake clock: no network."""

from __future__ import annotations

import email.utils
import itertools

import pytest

from activation.pacing import (
    RateLimiter,
    Retry,
    SendPacer,
    Waiter,
    backoff_seconds,
    retry_after_seconds,
)


class Clock:
    """A monotonic clock that only sleeps (and the calls' own time) move."""

    def __init__(self) -> None:
        self.t = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


def test_backoff_doubles_with_jitter_up_to_its_cap() -> None:
    for attempt, (low, high) in enumerate([(0.5, 1), (1, 2), (2, 4), (4, 8), (5, 10)], start=1):
        delays = [backoff_seconds(attempt, 1.0, 10.0) for _ in range(200)]
        assert all(low <= d <= high for d in delays)
        assert max(delays) - min(delays) > (high - low) / 4  # jittered, not one value
    assert backoff_seconds(3, 0.0, 10.0) == 0.0


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    assert retry_after_seconds({"Retry-After": "3"}) == 3.0
    assert retry_after_seconds({"Retry-After": "-4"}) == 0.0
    assert retry_after_seconds({"Retry-After": "soon"}) is None
    assert retry_after_seconds({}) is None and retry_after_seconds(None) is None
    date = email.utils.formatdate(1_000_030.0, usegmt=True)
    assert retry_after_seconds({"Retry-After": date}, now=1_000_000.0) == 30.0
    assert retry_after_seconds({"Retry-After": date}, now=1_000_060.0) == 0.0


def test_retry_counts_its_tries_and_waits_at_least_retry_after() -> None:
    clock = Clock()
    retry = Retry(3, 0.2, 10.0, clock, clock.sleep)
    assert [retry.exhausted(n) for n in (1, 2, 3, 4)] == [False, False, True, True]
    assert 0.1 <= retry.delay(1) <= 0.2 and 0.4 <= retry.delay(3) <= 0.8
    assert retry.delay(1, retry_after=5.0) == 5.0  # the server's floor
    assert 0.4 <= retry.delay(3, retry_after=0.01) <= 0.8  # the backoff when it is longer
    retry.pause(1.5)
    retry.pause(0.5)
    assert clock.sleeps == [1.5, 0.5] and retry.waited_s == 2.0


def test_every_wait_goes_through_pause() -> None:
    paused: list[float] = []

    class Recording(SendPacer):
        def pause(self, seconds: float) -> None:
            paused.append(seconds)
            super().pause(seconds)

    clock = Clock()
    pacer = Recording(10.0, clock, clock.sleep)
    pacer.wait()
    pacer.sent(20)
    pacer.wait()
    assert paused == clock.sleeps == [2.0]
    assert isinstance(pacer, Waiter) and pacer.waited_s == 2.0


def test_the_send_pacer_spaces_calls_by_their_size_over_the_rate() -> None:
    clock = Clock()
    pacer = SendPacer(10.0, clock, clock.sleep)
    starts = []
    for size in (50, 10, 30):
        pacer.wait()
        starts.append(clock.t)
        clock.t += 0.5  # the call takes 500 ms
        pacer.sent(size)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps == pytest.approx([0.5 + 5.0, 0.5 + 1.0])
    assert pacer.waited_s == pytest.approx(6.0)
    with pytest.raises(ValueError, match="positive"):
        SendPacer(0)


def test_a_slow_call_needs_no_wait() -> None:
    clock = Clock()
    pacer = SendPacer(10.0, clock, clock.sleep)
    pacer.sent(5)
    clock.t += 2.0  # longer than 5 / 10 s
    pacer.wait()
    assert clock.sleeps == []


def test_the_rate_limiter_keeps_any_rolling_window_under_its_limit() -> None:
    clock = Clock()
    limiter = RateLimiter(3, 1.0, clock, clock.sleep)
    starts = []
    for _ in range(10):
        limiter.acquire()
        starts.append(clock.t)
        clock.t += 0.1  # the call takes 100 ms
        limiter.release()
    assert starts[:3] == pytest.approx([100.0, 100.1, 100.2])  # the first `limit` go at once
    for i in range(len(starts) - 3):
        assert starts[i + 3] - (starts[i] + 0.1) >= 1.0
    assert limiter.waited_s == pytest.approx(sum(clock.sleeps))
