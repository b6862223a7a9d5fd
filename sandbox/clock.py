"""The sandbox's clock: real time shifted by an offset a test can set, so that a run is
reproducible at any hour (Sora's 02:00–04:00 UTC spike fires when the test says it is 03:00)."""

import threading
import time
from datetime import UTC, datetime


class Clock:
    """Virtual epoch seconds = real epoch seconds + offset."""

    def __init__(self, offset_s: float = 0.0):
        self._offset = offset_s
        self._lock = threading.Lock()

    @property
    def offset_s(self) -> float:
        return self._offset

    def now(self) -> float:
        return time.time() + self._offset

    def now_dt(self) -> datetime:
        return datetime.fromtimestamp(self.now(), UTC)

    def set(self, when: datetime) -> None:
        with self._lock:
            self._offset = when.timestamp() - time.time()
