"""What a source hands the stream: BATCH_SIZE pairs, already on the device."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

PENDING_BYTES = 1 << 30  # 8-bit predictions kept per stream before scoring must start (1 GiB)


@dataclass
class Batch:
    first: int  # index of its first pair in the source
    img0: Any  # N,3,H,W prepared (padded, cast) on the device
    img1: Any
    metas: list = field(default_factory=list)  # one per pair: what scoring needs (dataset), or None

    @property
    def size(self) -> int:
        return len(self.metas)


class Backlog:
    """Predictions kept as host frames from inside the timed window until they are
    scored after it, in order. Bounded: once more than `limit` bytes are kept,
    `full` says so and the source scores the backlog inside the window (memory
    first), counting those pairs in `scored_in_window`."""

    def __init__(self, limit: int = PENDING_BYTES):
        self.limit = limit
        self.nbytes = 0
        self.scored_in_window = 0
        self._items: deque[tuple[Any, dict, int]] = deque()

    def __len__(self) -> int:
        return len(self._items)

    def add(self, meta, host: dict, nbytes: int) -> None:
        """nbytes: what the item holds (its frames, and any ground truth kept with it)."""
        self._items.append((meta, host, nbytes))
        self.nbytes += nbytes

    @property
    def full(self) -> bool:
        return self.nbytes > self.limit

    def drain(self) -> Iterator[tuple[Any, dict]]:
        """Each kept (meta, host) in order, released as it is handed out, so that a
        failure while scoring one leaves the rest in the backlog."""
        while self._items:
            meta, host, nbytes = self._items.popleft()
            self.nbytes -= nbytes
            yield meta, host
