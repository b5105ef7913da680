"""Retrying one HTTP call to a model server: which failures earn another try, and the loop that tries.

A status in ``RETRY_STATUS`` (429, 5xx, 408, 409, 425), a timeout or a connection error is worth
another try; the wait before it comes from the caller's backoff, which sees the server's
``Retry-After`` when it sent one. Any other failure (a 4xx, a malformed answer) ends the call at
once. When the tries run out the call fails with one ``AdapterError`` naming the last reason.
"""

from __future__ import annotations

import email.utils
import time
from typing import Callable, TypeVar

from recaudit.adapters.base import AdapterError

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
T = TypeVar("T")


class Retryable(Exception):
    """A failure worth another try; ``wait_s`` is the server's Retry-After, if it gave one."""

    def __init__(self, message: str, wait_s: float | None = None):
        super().__init__(message)
        self.wait_s = wait_s


def retry_after(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date), None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def with_retries(
    once: Callable[[], T], shown: str, max_retries: int, timeout_s: float,
    backoff: Callable[[int, float | None], float],
) -> T:
    """``once()``, tried up to ``max_retries + 1`` times on Retryable, timeouts and connection errors.

    ``backoff(attempt, server_wait)`` is the sleep before the next try; ``shown`` names the URL in
    the final AdapterError. Any other exception of ``once`` propagates at once."""
    import httpx

    last = "no attempt made"
    for attempt in range(max_retries + 1):
        try:
            return once()
        except Retryable as e:
            last, wait = str(e), e.wait_s
        except httpx.TimeoutException:
            last, wait = f"timed out after {timeout_s:g} s", None
        except httpx.TransportError as e:
            last, wait = f"connection error: {type(e).__name__}", None
        if attempt < max_retries:
            time.sleep(backoff(attempt, wait))
    raise AdapterError(f"{shown} failed after {max_retries + 1} attempts: {last}")
