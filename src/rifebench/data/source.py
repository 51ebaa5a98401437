"""Where a stream's pairs come from, and what scores its outputs, apart (as
MLPerf LoadGen keeps the sample library apart from the accuracy log).

A `Source` serves pairs: dummy.py (one seeded pair, endless), vimeo.py (the
triplets of a list) and video.py (the pairs of a video). A `Scorer` takes the
predictions inside the timed window and scores (and saves) them after it:
scoring.py, one for the triplets and one for the video's frames. The stream
sees one object: the dummy source alone, or a source with its scorer
(`Scored`), which is both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from rifebench.data.batch import Batch


class Source(Protocol):
    """Pairs, read ahead off the timed path.

    `endless`: `get` serves any index (the dummy source: the same pair for all):
    NUM_INPUTS and the durations end the run, not the source, and `len` is the
    number of distinct pairs it serves (1). Otherwise `len` is the number of
    pairs the stream runs through, in order from 0."""

    endless: bool
    checks_quality: bool  # its outputs go to a Scorer (consume, finish, summary)

    def __len__(self) -> int: ...

    def get(self, index: int, count: int = 1) -> Batch:
        """Up to `count` consecutive pairs from `index`, prepared on the device."""
        ...

    def release(self, batch: Batch) -> None:
        """The stream is done with `batch` (its timed inference is over): a source
        that decodes ahead starts the next decodes here, never during inference."""
        ...

    def rewind(self) -> None:
        """After the warm-up, before the timed pass: back to pair 0 (a no-op where
        `get` serves any index in any order)."""
        ...

    def close(self) -> None:
        """Stop reading ahead; nothing it holds is needed any more."""
        ...


class Scorer(Protocol):
    """The predictions' judge: `consume` keeps them inside the timed window
    (8-bit host frames, nothing scored unless the kept frames reach the memory
    bound), `finish` scores and saves them after it, `summary` is the stream's
    `quality` record (plain data)."""

    def consume(self, batch: Batch, outs: Sequence[Any]) -> None: ...

    def finish(self) -> None: ...

    def summary(self) -> dict[str, Any]: ...

    def close(self) -> None:
        """Predictions not scored yet are dropped (an aborted run); an output cut
        short is closed and kept."""
        ...


class Scored:
    """A source with the scorer of its outputs: quality and video mode."""

    endless = False
    checks_quality = True

    def __init__(self, source: Source, scorer: Scorer):
        self.source, self.scorer = source, scorer

    def __len__(self) -> int:
        return len(self.source)

    def get(self, index: int, count: int = 1) -> Batch:
        return self.source.get(index, count)

    def release(self, batch: Batch) -> None:
        self.source.release(batch)

    def rewind(self) -> None:
        self.source.rewind()

    def consume(self, batch: Batch, outs: Sequence[Any]) -> None:
        self.source.release(batch)  # first: the next decodes overlap the copy below, not the model
        self.scorer.consume(batch, outs)

    def finish(self) -> None:
        self.scorer.finish()

    def summary(self) -> dict[str, Any]:
        return self.scorer.summary()

    def close(self) -> None:
        self.source.close()
        self.scorer.close()


def open_source(cfg: Any, interp: Any, stream_id: int) -> Source | Scored:
    """The stream's source for the run's mode: dummy, dataset (quality) or video."""
    if cfg.dummy:
        from rifebench.data.dummy import DummySource

        return DummySource(cfg, interp)
    from rifebench.data.scoring import scored_dataset, scored_video

    return (scored_video if cfg.mode == "video" else scored_dataset)(cfg, interp, stream_id)
