"""What a source hands the stream: BATCH_SIZE pairs, already on the device."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Batch:
    first: int  # index of its first pair in the source
    img0: Any  # N,3,H,W prepared (padded, cast) on the device
    img1: Any
    metas: list = field(default_factory=list)  # one per pair: what scoring needs (dataset), or None

    @property
    def size(self) -> int:
        return len(self.metas)
