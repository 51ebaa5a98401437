"""The Source and Scorer protocols (data/source.py): the dummy source is endless,
and a source with its scorer hands pairs from one and predictions to the other."""

from __future__ import annotations

from types import SimpleNamespace

from rifebench.data.batch import Batch
from rifebench.data.dummy import DummySource
from rifebench.data.source import Scored


def test_dummy_source_is_endless_with_one_distinct_pair():
    cfg = SimpleNamespace(data_height=16, data_width=24, seed=0, batch_size=3)
    src = DummySource(cfg, SimpleNamespace(prepare=lambda x: x))
    assert src.endless and not src.checks_quality and len(src) == 1
    first, far = src.get(0, 3), src.get(10**6, 3)
    assert first.size == far.size == 3 and first.img0 is far.img0 and tuple(first.img0.shape) == (3, 3, 16, 24)
    src.release(first)
    src.rewind()
    src.close()


class Recorder:
    def __init__(self, calls: list, name: str):
        self.calls, self.name = calls, name

    def __getattr__(self, method):
        def call(*args):
            self.calls.append((self.name, method, *args))
            return Batch(args[0], None, None, [None]) if method == "get" else {"scored": 1}

        return call

    def __len__(self):
        return 5


def test_scored_hands_pairs_from_the_source_and_outputs_to_the_scorer():
    calls: list = []
    s = Scored(Recorder(calls, "source"), Recorder(calls, "scorer"))
    assert s.checks_quality and not s.endless and len(s) == 5
    batch = s.get(2, 1)
    s.consume(batch, ["out"])
    s.rewind()
    s.finish()
    assert s.summary() == {"scored": 1}
    s.close()
    assert [c[:2] for c in calls] == [
        ("source", "get"),
        ("source", "release"),  # first: the next decodes overlap the copy of the predictions
        ("scorer", "consume"),
        ("source", "rewind"),
        ("scorer", "finish"),
        ("scorer", "summary"),
        ("source", "close"),
        ("scorer", "close"),
    ]
