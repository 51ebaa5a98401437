"""The dummy source (performance mode): one seeded pair, fed to every
submission, so that every configuration sees the same frames. The other
sources (source.Source) are vimeo.py's triplets and video.py's pairs."""

from __future__ import annotations

from rifebench.data.batch import Batch


def dummy_frames(height: int, width: int, seed: int):
    """A reproducible pair that looks like video rather than white noise.

    Smooth random structure (upsampled coarse noise) plus fine texture, and the
    second frame shifted by a few pixels, so the flow network sees real motion
    and the 4.0 model's large-motion branch stays off as it would on most video.
    Returns two float32 CPU tensors, 1x3xHxW in [0, 1].
    """
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, max(2, height // 16) + 1, max(2, width // 16) + 1, generator=g)
    base = F.interpolate(coarse, size=(height + 8, width + 8), mode="bicubic", align_corners=False)
    base = base + 0.05 * torch.rand(base.shape, generator=g)
    base = base.clamp(0, 1)
    frame0 = base[:, :, 4 : 4 + height, 4 : 4 + width]
    frame1 = base[:, :, 1 : 1 + height, 7 : 7 + width]  # 3 px down, 3 px left
    return frame0.contiguous(), frame1.contiguous()


class DummySource:
    """The same prepared pair for every index, BATCH_SIZE times over in one
    batch, prepared once: nothing to load or copy in the loop (the reference
    feeds the same input to every submission). Endless (source.Source): one
    distinct pair, served at any index; nothing scores its outputs."""

    endless = True
    checks_quality = False

    def __init__(self, cfg, interp):
        f0, f1 = dummy_frames(cfg.data_height, cfg.data_width, cfg.seed)
        n = cfg.batch_size
        self.img0, self.img1 = interp.prepare(f0.repeat(n, 1, 1, 1)), interp.prepare(f1.repeat(n, 1, 1, 1))
        self.size = n
        self.cfg = cfg

    def __len__(self) -> int:
        return 1  # the one distinct pair: an endless source's length (source.Source)

    def get(self, index: int, count: int = 1) -> Batch:
        """Always a full batch: dummy runs count whole batches."""
        return Batch(index, self.img0, self.img1, [None] * self.size)

    def release(self, batch: Batch) -> None:
        """Nothing to do: nothing is read ahead."""

    def rewind(self) -> None:
        """Nothing to do: every index is the same pair."""

    def close(self) -> None:
        """Nothing to do: nothing is read ahead."""
