"""Pacing and retries, shared by the sinks that call rate-limited APIs (HubSpot, SES).

- :class:`RateLimiter`: at most ``limit`` calls in any rolling window (HubSpot's private-app
  limit, counted per call);
- :class:`SendPacer`: at most ``rate`` messages a second (SES's ``MaxSendRate``, counted per
  message, so a call of ``n`` messages spaces the next one by ``n / rate``);
- :class:`Retry`: how often a call is tried and how long to wait between tries: exponential
  backoff with jitter (:func:`backoff_seconds`), never shorter than what the server asked for
  in ``Retry-After`` (:func:`retry_after_seconds`).

Which errors are worth retrying is each sink's own decision (its API's error codes); this module
decides only how long to wait. Every wait of the three goes through :meth:`Waiter.pause`, on the
clock and sleep the sink was given (tests pass fakes), and that is where a sink's overall
:class:`Deadline` is checked: a wait that would end past it raises :class:`DeadlineExceeded`
instead of sleeping, so pacing and retries both stop when the run's time is up. The sinks also
bound each call's own timeout by :meth:`Deadline.remaining`.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections import deque
from collections.abc import Callable, Mapping

Clock = Callable[[], float]
Sleep = Callable[[float], None]


def backoff_seconds(attempt: int, base_s: float, max_s: float) -> float:
    """Exponential backoff with jitter: between half and all of ``base * 2^(attempt-1)``,
    capped at ``max_s``."""
    ceiling = min(max_s, base_s * 2 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def retry_after_seconds(
    headers: Mapping[str, str] | None, now: float | None = None
) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), or None."""
    value = (headers or {}).get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


class DeadlineExceeded(Exception):
    """A wait (or a call) would end past the sink run's deadline."""

    def __init__(self, seconds: float, wait: float) -> None:
        super().__init__(f"the run's deadline of {seconds:g} s would pass (a wait of {wait:.1f} s)")
        self.seconds = seconds
        self.wait = wait


class Deadline:
    """A sink run's overall deadline: ``seconds`` after :meth:`start`, on ``clock``; None: no
    deadline. One object is shared by all of a sink's waiters."""

    def __init__(self, seconds: float | None, clock: Clock = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self._ends: float | None = None

    def start(self) -> None:
        """The run starts now: its deadline is ``seconds`` from here."""
        self._ends = None if self.seconds is None else self.clock() + self.seconds

    def remaining(self) -> float | None:
        """Seconds left before the deadline (None: no deadline, or not started)."""
        return None if self._ends is None else self._ends - self.clock()

    def check(self, wait: float = 0.0) -> None:
        """Raise :class:`DeadlineExceeded` if waiting ``wait`` seconds more would pass it."""
        left = self.remaining()
        if left is not None and self.seconds is not None and wait >= left:
            raise DeadlineExceeded(self.seconds, wait)

    def timeout(self, seconds: float) -> float:
        """A call's timeout, cut to what is left of the run (at least a tenth of a second)."""
        left = self.remaining()
        return seconds if left is None else max(0.1, min(seconds, left))


class Waiter:
    """Waits on a clock, counted in ``waited_s``: every pause of its subclasses goes through
    :meth:`pause`, which checks the run's ``deadline`` first."""

    def __init__(
        self,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        deadline: Deadline | None = None,
    ) -> None:
        self.clock = clock
        self.sleep = sleep
        self.deadline = deadline
        self.waited_s = 0.0

    def pause(self, seconds: float) -> None:
        if self.deadline is not None:
            self.deadline.check(seconds)
        self.waited_s += seconds
        self.sleep(seconds)


class RateLimiter(Waiter):
    """At most ``limit`` calls in any rolling ``window_s``, as the server counts them.

    It remembers when each of the last ``limit`` calls *finished* and starts a call only once
    the call ``limit`` places back finished ``window_s`` ago. The server received that call
    before it finished and receives this one after it starts, so any server-side window of
    ``window_s`` holds at most ``limit`` calls, whatever the latency. (A token bucket of
    ``limit`` refilled over the window would allow up to twice that in one rolling window.)
    The sink makes one call at a time, which this reasoning assumes.
    """

    def __init__(
        self,
        limit: int,
        window_s: float,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        deadline: Deadline | None = None,
    ) -> None:
        super().__init__(clock, sleep, deadline)
        self.limit = limit
        self.window_s = window_s
        self._finished: deque[float] = deque(maxlen=limit)

    def acquire(self) -> None:
        if len(self._finished) < self.limit:
            return
        wait = self._finished[0] + self.window_s - self.clock()
        if wait > 0:
            wait += min(0.002, self.window_s / 1000)  # clear the boundary, not land on it
            self.pause(wait)

    def release(self) -> None:
        self._finished.append(self.clock())


class SendPacer(Waiter):
    """At most ``rate`` messages per second, as the server counts them: a call of ``n`` messages
    that finished at ``t`` lets the next call start at ``t + n / rate``. The server received
    that call before it finished and receives the next after it starts, so the gap between the
    two on its side is at least ``n / rate`` whatever the latency. The sink makes one call at a
    time.
    """

    def __init__(
        self,
        rate: float,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        deadline: Deadline | None = None,
    ):
        if rate <= 0:
            raise ValueError("the send rate must be positive")
        super().__init__(clock, sleep, deadline)
        self.rate = rate
        self._next: float | None = None

    def wait(self) -> None:
        if self._next is None:
            return
        delay = self._next - self.clock()
        if delay > 0:
            self.pause(delay)

    def sent(self, messages: int) -> None:
        self._next = self.clock() + messages / self.rate


class Retry(Waiter):
    """A call is tried at most ``max_attempts`` times; before try ``n + 1`` the sink waits
    :meth:`delay` (``n``), exponential backoff with jitter, at least the server's
    ``Retry-After``."""

    def __init__(
        self,
        max_attempts: int,
        base_s: float,
        max_s: float,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        deadline: Deadline | None = None,
    ) -> None:
        super().__init__(clock, sleep, deadline)
        self.max_attempts = max_attempts
        self.base_s = base_s
        self.max_s = max_s

    def exhausted(self, attempt: int) -> bool:
        """Whether try ``attempt`` was the last one allowed."""
        return attempt >= self.max_attempts

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """How long to wait after try ``attempt`` failed; ``retry_after`` (the server's
        ``Retry-After``) is a floor, the backoff adds to a server's bad day."""
        return max(backoff_seconds(attempt, self.base_s, self.max_s), retry_after or 0.0)
