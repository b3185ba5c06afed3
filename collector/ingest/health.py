"""Whether the pipeline can take batches: its log and its store each report their last error."""

from __future__ import annotations

import logging
import threading

_logger = logging.getLogger(__name__)


class Health:
    """The log's and the store's last errors (None once they work again). Thread-safe.

    The writer reports the log (an append failed or worked), the folder the store (a fold
    failed or worked). While the store fails, the writer refuses new batches: the store has
    to take what is held first.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._log_error: str | None = None
        self.store_error: str | None = None

    @property
    def healthy(self) -> bool:
        return self._log_error is None and self.store_error is None

    @property
    def last_error(self) -> str | None:
        return self.store_error or self._log_error

    def log_reported(self, error: str | None) -> None:
        with self._lock:
            was_healthy = self.healthy
            self._log_error = error
            self._log_transition(was_healthy)

    def store_reported(self, error: str | None) -> None:
        with self._lock:
            was_healthy = self.healthy
            self.store_error = error
            self._log_transition(was_healthy)

    def _log_transition(self, was_healthy: bool) -> None:
        if self.healthy and not was_healthy:
            _logger.warning("store recovered; ingest resumed")
        elif was_healthy and not self.healthy:
            _logger.error("store failing, batches refused until it recovers: %s", self.last_error)
