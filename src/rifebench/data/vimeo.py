"""Quality mode: Vimeo-90K triplets in, scored predictions out.

Two layouts share one list file (tri_testlist.txt, one `<folder>/<clip>` entry per
line): `sequences/<entry>/im1.png im2.png im3.png` (vimeo_triplet) and
`input/<entry>/im1.png im3.png` with `target/<entry>/im2.png` (vimeo_interp_test.zip).
im2 is the ground truth. A stream tests the first min(NUM_INPUTS, list size) entries.

Nothing here runs inside the timed region. A loader thread decodes the next
triplets ahead (PNG in OpenCV's BGR order, the order the models were trained on,
converted once to float [0, 1]); `get` only moves a ready pair to the device. New
decodes are queued by `release`, after the timed inference, never during it.
The predictions are scored by scoring.TripletScorer.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from rifebench.data.batch import Batch
from rifebench.data.images import read_image
from rifebench.errors import RifebenchError

LIST_FILE = "tri_testlist.txt"
# Decoded triplets held ahead of the one asked for: at most PREFETCH_BYTES of them
# (5 triplets of 8000x8000 are 8.6 GB), at least one, and no more than PREFETCH (one
# loader thread decodes one at a time: a deeper queue only moves decoding earlier).
PREFETCH_BYTES = 512 * 1024 * 1024
PREFETCH = 4
ACCEPTED = (
    "a Vimeo-90K triplet test folder: tri_testlist.txt with sequences/<entry>/im1.png im2.png im3.png, "
    "or input/<entry>/im1.png im3.png and target/<entry>/im2.png"
)


class DatasetError(RifebenchError, RuntimeError):
    """A bad dataset: the message names the file and what is wrong with it."""


@dataclass(frozen=True)
class Triplet:
    line: int
    entry: str
    first: Path
    middle: Path  # ground truth
    last: Path


def read_list(root: str | os.PathLike) -> list[tuple[int, str]]:
    """(line number, entry) of every non-blank line of the list file."""
    path = Path(root) / LIST_FILE
    try:
        text = path.read_text(encoding="utf-8-sig")  # a BOM (Windows editors) is not part of line 1
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    out = []
    for number, raw in enumerate(text.splitlines(), 1):
        entry = raw.strip()
        if not entry:
            continue
        parts = PurePosixPath(entry).parts
        if entry.startswith("/") or "\\" in entry or ".." in parts:
            raise DatasetError(f"{path} line {number}: entry {entry!r} is not a relative <folder>/<clip> path")
        entry = str(PurePosixPath(entry))  # "00001/0389/" names the same clip as "00001/0389"
        if entry == ".":
            raise DatasetError(f"{path} line {number}: entry {raw.strip()!r} is not a relative <folder>/<clip> path")
        out.append((number, entry))
    if not out:
        raise DatasetError(f"{path} lists no triplets")
    return out


def layout(root: str | os.PathLike) -> str:
    root = Path(root)
    if (root / "sequences").is_dir():
        return "sequences"
    if (root / "input").is_dir() and (root / "target").is_dir():
        return "input+target"
    raise DatasetError(f"{root} has neither a sequences/ folder nor input/ and target/ folders")


def _paths(root: Path, kind: str, line: int, entry: str) -> Triplet:
    if kind == "sequences":
        d = root / "sequences" / entry
        return Triplet(line, entry, d / "im1.png", d / "im2.png", d / "im3.png")
    i, t = root / "input" / entry, root / "target" / entry
    return Triplet(line, entry, i / "im1.png", t / "im2.png", i / "im3.png")


def triplets(root: str | os.PathLike, limit: int | None = None) -> tuple[str, int, list[Triplet]]:
    """(layout, list size, the first `limit` triplets), each file checked to exist,
    so that a broken dataset fails before any model is loaded."""
    root = Path(root)
    kind = layout(root)
    listed = read_list(root)
    chosen = [_paths(root, kind, n, e) for n, e in listed[:limit]]
    for t in chosen:
        for f in (t.first, t.middle, t.last):
            if not f.is_file():
                where = f.parent if not f.parent.is_dir() else f
                raise DatasetError(
                    f"list entry {t.entry!r} (line {t.line} of {root / LIST_FILE}): "
                    f"{'no folder' if where != f else 'missing image'} {where}"
                )
    return kind, len(listed), chosen


def load(t: Triplet) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The triplet's three uint8 HxWx3 BGR frames; DatasetError naming a bad file."""
    frames = []
    for f in (t.first, t.middle, t.last):
        try:
            frames.append(read_image(str(f)))
        except OSError as exc:
            raise DatasetError(f"list entry {t.entry!r}: {exc}") from None
    sizes = {f.name: a.shape for f, a in zip((t.first, t.middle, t.last), frames, strict=True)}
    if len(set(sizes.values())) != 1:
        shown = ", ".join(
            f"{p} is {s[1]}x{s[0]}" for p, s in zip((t.first, t.middle, t.last), sizes.values(), strict=True)
        )
        raise DatasetError(f"list entry {t.entry!r}: frames differ in size ({shown})")
    return frames[0], frames[1], frames[2]


def to_model_input(frame: np.ndarray):
    """uint8 HxWx3 -> float32 1x3xHxW in [0, 1] (x / 255, as the RIFE evaluation divides)."""
    import torch

    chw = np.ascontiguousarray(frame.transpose(2, 0, 1)).astype(np.float32) / np.float32(255.0)
    return torch.from_numpy(chw).unsqueeze(0)


def _decode(t: Triplet):
    f0, gt, f1 = load(t)
    return to_model_input(f0), to_model_input(f1), gt


def image_name(entry: str, k: int, n: int) -> str:
    """images/<entry>.png, or images/<entry>_<k>.png (t = k/(N+1)) with N > 1 frames per pair."""
    entry = str(PurePosixPath(entry))  # a trailing slash would give <entry>/.png, a hidden file
    return f"{entry}.png" if n == 1 else f"{entry}_{k}.png"


class DatasetSource:
    """The first min(NUM_INPUTS, list size) triplets of the list, decoded ahead
    (source.Source); the stream's pairs in quality mode."""

    endless = False
    checks_quality = False  # by itself: with its scorer (scoring.scored_dataset) it is checked

    def __init__(self, cfg, interp, stream_id: int = 0):
        self.cfg, self.interp, self.stream_id = cfg, interp, stream_id
        self.layout, self.list_size, self.triplets = triplets(cfg.dataset_dir, cfg.num_inputs)
        self._loader = ThreadPoolExecutor(1, thread_name_prefix=f"rife-load-{stream_id}")
        self._loads: dict[int, Future] = {}
        self.error: str | None = None  # the triplet that failed to load: the stream stops there
        self.io = {"load_wait_s": 0.0, "to_device_s": 0.0}
        self._triplet_bytes = 0  # the latest decoded triplet's size (0: none decoded yet)

    def __len__(self) -> int:
        return len(self.triplets)

    def _schedule(self, index: int) -> None:
        # No wrap-around: the timed loop ends at the last triplet, and decoding past it
        # would only take CPU from the last pairs being timed.
        wanted = range(index, min(index + 1 + self._ahead(), len(self.triplets)))
        for i in [i for i in self._loads if i not in wanted]:
            self._loads.pop(i).cancel()  # keeps memory bounded when the order jumps (warm-up -> timed)
        for i in wanted:
            if i not in self._loads:
                self._loads[i] = self._loader.submit(_decode, self.triplets[i])

    def _ahead(self) -> int:
        """How many triplets PREFETCH_BYTES holds (up to PREFETCH), sized by the latest one decoded
        (one until a triplet has been decoded: its size is not known before)."""
        for fut in self._loads.values():
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                self._triplet_bytes = sum(int(x.nbytes) for x in fut.result())
        size = self._triplet_bytes
        return min(PREFETCH, max(1, PREFETCH_BYTES // size)) if size else 1

    def get(self, index: int, count: int = 1) -> Batch:
        """Up to `count` consecutive triplets from `index` as one batch on the device,
        padded. A triplet of another size than the first ends the batch early (it
        starts the next one), so sizes may change along the list."""
        t0 = time.monotonic()
        picked: list = []
        for i in range(index, min(index + count, len(self.triplets))):
            self._schedule(i)
            fut = self._loads.pop(i)
            try:
                a, b, gt = fut.result()
            except DatasetError as exc:
                if picked:  # the batch so far is good: the bad one fails as the next batch's first
                    self._loads[i] = fut
                    break
                self.error = str(exc)
                raise
            if picked and a.shape != picked[0][0].shape:
                self._loads[i] = fut  # already decoded: kept for the next batch
                break
            picked.append((a, b, gt, i))
        t1 = time.monotonic()
        import torch

        img0 = self.interp.prepare(torch.cat([p[0] for p in picked]) if len(picked) > 1 else picked[0][0])
        img1 = self.interp.prepare(torch.cat([p[1] for p in picked]) if len(picked) > 1 else picked[0][1])
        self.io["load_wait_s"] += t1 - t0
        self.io["to_device_s"] += time.monotonic() - t1
        metas = [{"index": i, "entry": self.triplets[i].entry, "gt": gt} for _, _, gt, i in picked]
        return Batch(index, img0, img1, metas)

    def release(self, batch: Batch) -> None:
        """The batch's inference is over: the next decodes start here, so that on a CPU
        they overlap the copy of its predictions instead of taking cores from the model."""
        self._schedule(batch.first + batch.size)

    def rewind(self) -> None:
        """Nothing to do: `get` serves any index, in any order."""

    def close(self) -> None:
        """Stop loading."""
        for fut in self._loads.values():
            fut.cancel()
        self._loads.clear()
        self._loader.shutdown(wait=True, cancel_futures=True)
