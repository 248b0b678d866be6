"""Throughput: how many files the daemon finished, and how fast lately."""

from __future__ import annotations

import time
from collections import deque


class Throughput:
    """Counts finished renders and gives files per minute over a sliding window."""

    def __init__(self, window_seconds: float = 300.0) -> None:
        self.window = window_seconds
        self.finished: deque[float] = deque()
        self.rendered = 0
        self.failed = 0
        self.started = time.monotonic()

    def add(self, ok: bool, now: float | None = None) -> None:
        """Record one finished file."""
        now = time.monotonic() if now is None else now
        self.finished.append(now)
        if ok:
            self.rendered += 1
        else:
            self.failed += 1
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self.finished and now - self.finished[0] > self.window:
            self.finished.popleft()

    def per_minute(self, now: float | None = None) -> float:
        """Files per minute over the window (or since start, when younger than the window)."""
        now = time.monotonic() if now is None else now
        self._trim(now)
        span = min(self.window, max(now - self.started, 1e-9))
        return len(self.finished) * 60.0 / span
