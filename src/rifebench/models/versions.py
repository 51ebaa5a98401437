"""Every Practical-RIFE 4.x IFNet release as data: the handful of facts that differ.

One record per version, under vs-rife's names (4.0 ... 4.26, .lite and .heavy).
The facts were read from vs-rife 5.7.0 (its per-version modules and the table
in its __init__.py that gives each version's feature-head channels and padding
modulus) and are written here in this project's own terms; one parameterised
family of modules (nets/ifnet_v4.py) builds any of them, and a test holds every
record to vs-rife's code. Torch-free, so that the zoo and the CLI can list the
versions without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class IFNetArch:
    """What one release's IFNet is made of.

    widths: the IFBlocks' channel counts c, coarsest first (checkpoint names
        block0, block1, ...). Each block: two stride-2 conv+activation (c/2, c),
        eight 3x3 convs, a transposed-conv head.
    scales: block i sees the frames resized by 1/scales[i] (then divided by the
        user's scale).
    activation: "prelu" (conv + PReLU(c), learnt slopes) or "leaky" (LeakyReLU 0.2).
    stack: the eight convs: "residual" (conv+act each, one skip around all eight),
        "plain" (the same, no skip) or "resconv" (each leaky(conv(x) * beta + x)).
    groups: the resconv convs' groups (4.14.lite splits them in two).
    head: "deconv" (ConvTranspose2d to head_channels at half the block input's
        size, resized by 2 x scale) or "shuffle" (ConvTranspose2d to
        4 x head_channels, PixelShuffle(2): back at the block input's size).
    head_channels: 4 flow + 1 mask, then unused or block_features channels.
    block_features: head channels after flow and mask handed on to the next
        block as input (4.21 on); 0 for none.
    large_motion: 4.0's re-run of blocks 0-1 at doubled scales when block 1
        finds more than 32 px of motion both ways (data-dependent).
    encoder: the per-frame feature head (checkpoint keys encode.*): None,
        "conv-deconv" (a stride-2 conv then a transposed conv, no activation),
        "sequential" (three convs with LeakyReLU then a transposed conv, keys
        by index) or "named" (the same four layers as cnn0..cnn3).
    encoder_width: the head's hidden channels.
    encode_channels: its output channels per frame; every block sees both
        frames' features (warped after block 0).
    mask_sum: the mask accumulates over blocks (to 4.6) or each block's mask
        replaces the last (4.7 on).
    ensemble: whether the release has the reversed-pair ensemble (4.21 on do not).
    modulus: the padding modulus at scale 1.
    """

    name: str
    widths: tuple[int, ...]
    scales: tuple[float, ...]
    activation: str
    stack: str
    head: str
    head_channels: int
    groups: int = 1
    block_features: int = 0
    large_motion: bool = False
    encoder: str | None = None
    encoder_width: int = 0
    encode_channels: int = 0
    mask_sum: bool = True
    ensemble: bool = True
    modulus: int = 32

    @property
    def blocks(self) -> int:
        return len(self.widths)

    def block_inputs(self, i: int) -> int:
        """Input channels of block i: both frames (warped after block 0), their
        features, the timestep map; after block 0 also mask, handed-on features
        and the 4-channel flow."""
        frames = 3 + 3 + 2 * self.encode_channels + 1
        return frames if i == 0 else frames + 1 + self.block_features + 4

    @property
    def parameters(self) -> int:
        """The inference parameters, counted from the facts alone (no torch): a
        test holds this to the built network."""
        total = sum(self._block_parameters(self.block_inputs(i), c) for i, c in enumerate(self.widths))
        return total + self._encoder_parameters()

    def _block_parameters(self, cin: int, c: int) -> int:
        half = c // 2
        n = conv(cin, half) + conv(half, c) + 8 * conv(c, c, groups=self.groups)
        if self.activation == "prelu":
            n += half + c + (8 * c if self.stack != "resconv" else 0)  # one slope per channel
        if self.stack == "resconv":
            n += 8 * c  # beta
        out = self.head_channels * (4 if self.head == "shuffle" else 1)
        return n + conv(c, out, kernel=4)

    def _encoder_parameters(self) -> int:
        w, e = self.encoder_width, self.encode_channels
        if self.encoder is None:
            return 0
        hidden = 0 if self.encoder == "conv-deconv" else 2 * conv(w, w)
        return conv(3, w) + hidden + conv(w, e, kernel=4)

    def summary(self) -> str:
        """One line of what sets this version apart, for listings and descriptions."""
        parts = [f"{self.blocks} blocks c={'/'.join(map(str, self.widths))}"]
        parts.append(f"scales {'/'.join(f'{s:g}' for s in self.scales)}")
        parts.append(f"{self.activation} {self.stack}" + (f" groups={self.groups}" if self.groups > 1 else ""))
        parts.append(f"{self.head} head {self.head_channels} ch")
        if self.encoder:
            parts.append(f"{self.encoder} encoder {self.encoder_width}->{self.encode_channels} ch")
        if self.block_features:
            parts.append(f"{self.block_features} ch handed between blocks")
        if self.large_motion:
            parts.append("large-motion re-run")
        parts.append(f"modulus {self.modulus}")
        return ", ".join(parts)


def conv(cin: int, cout: int, kernel: int = 3, groups: int = 1) -> int:
    """Weights and bias of one (transposed) convolution."""
    return cin * cout * kernel * kernel // groups + cout


FOUR_BLOCKS = (8.0, 4.0, 2.0, 1.0)
FIVE_BLOCKS = (16.0, 8.0, 4.0, 2.0, 1.0)
WIDE = (192, 128, 96, 64)
LITE = (128, 96, 64, 48)


def _before_encoders() -> tuple[IFNetArch, ...]:
    """4.0 to 4.6, each written as its predecessor plus what changed."""
    # 4.0 pads to 64 here, where vs-rife pads to 32: at 32 the large-motion branch
    # crashes (1280x736 at doubled scales leaves a block an odd size).
    v40 = IFNetArch("4.0", WIDE, FOUR_BLOCKS, "prelu", "residual", "deconv", 5, large_motion=True, modulus=64)
    v42 = replace(v40, name="4.2", activation="leaky", stack="plain", large_motion=False, modulus=32)
    v45 = replace(v42, name="4.5", stack="resconv", head="shuffle", head_channels=5)
    return (
        v40,
        replace(v40, name="4.1"),
        v42,
        replace(v42, name="4.3"),
        replace(v42, name="4.4"),
        v45,
        replace(v45, name="4.6", head_channels=6),
    )


def _with_encoders(v46: IFNetArch) -> tuple[IFNetArch, ...]:
    """4.7 to 4.26: a per-frame feature encoder, each block's mask replacing the last."""
    v47 = replace(v46, name="4.7", encoder="conv-deconv", encoder_width=16, encode_channels=4, mask_sum=False)
    v410 = replace(v47, name="4.10", encoder="sequential", encoder_width=32, encode_channels=8)
    v412l = replace(v410, name="4.12.lite", widths=LITE, encode_channels=4)
    v413 = replace(v410, name="4.13", encoder="named")
    v415l = replace(v413, name="4.15.lite", widths=LITE, encoder_width=16, encode_channels=4)
    v421 = replace(v413, name="4.21", widths=(256, 192, 96, 48), head_channels=13, block_features=8, ensemble=False)
    v425 = replace(
        v421,
        name="4.25",
        widths=(192, 128, 96, 64, 32),
        scales=FIVE_BLOCKS,
        encoder_width=16,
        encode_channels=4,
        modulus=64,
    )
    same = {  # releases that changed the weights only: the same architecture under a new name
        v47: ("4.8", "4.9"),
        v410: ("4.11", "4.12"),
        v412l: ("4.13.lite",),
        v413: ("4.14", "4.15", "4.17", "4.18", "4.19", "4.24"),
        v415l: ("4.16.lite", "4.17.lite"),
        v421: ("4.22", "4.23"),
        v425: ("4.26",),
    }
    changed = (
        replace(v413, name="4.14.lite", groups=2),
        replace(v413, name="4.20", widths=(384, 192, 96, 48)),
        replace(v421, name="4.22.lite", widths=(192, 128, 64, 32), encoder_width=16, encode_channels=4),
        replace(v425, name="4.25.lite", widths=(192, 128, 96, 64, 24), scales=(32.0, 16.0, 8.0, 4.0, 1.0), modulus=128),
        replace(v425, name="4.25.heavy", widths=(384, 256, 192, 128, 64)),
        replace(v425, name="4.26.heavy", encode_channels=16),
    )
    archs = [*same, *changed, *(replace(base, name=n) for base, names in same.items() for n in names)]
    return tuple(sorted(archs, key=lambda a: release_order(a.name)))


VARIANTS = ("", "lite", "heavy")


def release_order(name: str) -> tuple[int, int, int]:
    """4.9 before 4.10; a version's plain release, then its .lite, then its .heavy (vs-rife's order)."""
    major, minor, *variant = name.split(".")
    return int(major), int(minor), VARIANTS.index(variant[0] if variant else "")


def _table() -> tuple[IFNetArch, ...]:
    early = _before_encoders()
    return early + _with_encoders(early[-1])


VERSIONS: dict[str, IFNetArch] = {arch.name: arch for arch in _table()}


def get(name: str) -> IFNetArch:
    try:
        return VERSIONS[name]
    except KeyError:
        raise KeyError(f"unknown IFNet version {name!r} (accepted: {', '.join(VERSIONS)})") from None
