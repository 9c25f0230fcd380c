"""The preset table: every architecture the package knows, in one place.

`oscar-r18-p2-256` and `oscar-r18-p2-128` reproduce the two released OSCAR configurations
(``../shared/docs/oscar-spec.md`` section 1-2). `oscar-edge` is this project's own design for
Jetson and CPU latency; its deviations from the released architecture are listed in its
``notes`` and in the README.

Nothing here imports torch: the runtime reads presets too.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Dict, Optional, Tuple


@dataclass(frozen=True)
class Preset:
    """Architecture hyper-parameters of one OSCAR variant.

    Attributes:
        name: preset name used on the command line.
        stem_channels: output channels of the stem convs. Three entries: the released
            deep stem (3x3 s2, 3x3, 3x3, then 3x3 max-pool s2). Two entries: a light stem
            (3x3 s2, 3x3 s2, no max-pool).
        stem_fine_convs: light stem only: extra 3x3 stride-1 convs at stride 2 (width
            stem_channels[0]) between its two stride-2 convs: more processing of a few-pixel
            target before stride 4.
        stage_channels: channels of C2..C5.
        stage_depths: BasicBlocks per stage.
        fpn_channels: F, the FPN width.
        head_channels: H, the head tower width (F/2 in the released models).
        coarse_tower_depth: convs per tower on P3.
        refine_tower_depth: convs per tower on P2.
        gn_groups: GroupNorm groups in the towers (``norm`` "gn").
        norm: tower normalisation, "gn" (GroupNorm, the released design) or "bn" (BatchNorm,
            folded into the convolutions at export: no normalisation op in the graph).
    """

    name: str
    stem_channels: Tuple[int, ...]
    stage_channels: Tuple[int, int, int, int]
    stage_depths: Tuple[int, int, int, int]
    fpn_channels: int
    head_channels: int
    coarse_tower_depth: int = 4
    refine_tower_depth: int = 4
    gn_groups: int = 32
    norm: str = "gn"
    stem_fine_convs: int = 0
    notes: str = ""
    # Published / counted reference figures (spec section 1), for the tests.
    reference_params: Optional[float] = None


# The project's own design; the deploy-first v2 keeps its backbone and FPN.
_EDGE = Preset(
    name="oscar-edge",
    stem_channels=(16, 32),
    stage_channels=(32, 64, 128, 256),
    stage_depths=(1, 1, 1, 1),
    fpn_channels=32,
    head_channels=32,
    coarse_tower_depth=2,
    refine_tower_depth=2,
    gn_groups=8,
    notes=(
        "project design for Jetson/CPU: light 2-conv stem without max-pool, "
        "ResNet-style BasicBlock stages (1,1,1,1) of width 32-256, FPN width 32, "
        "head width 32 (= F, not F/2), 2-conv towers, GroupNorm(8)"
    ),
)

# The deploy-first v2; its experimental variants below are copies with one change.
_V2 = replace(
    _EDGE,
    name="oscar-edge-v2",
    head_channels=24,
    norm="bn",  # gn_groups is unused with BatchNorm
    notes=(
        "deploy-first oscar-edge: the same backbone and FPN, head towers of width 24 "
        "with BatchNorm + ReLU (folded into the convolutions at export: the graph is "
        "convolutions, ReLU, Resize, Add, Concat, Sigmoid, Mul), 2-conv towers"
    ),
)

# The shipped architecture (SHIPPED_PRESET below).
_D4 = replace(
    _V2,
    name="oscar-edge-v2-h16-d4",
    head_channels=16,
    coarse_tower_depth=4,
    refine_tower_depth=4,
    notes=(
        "the shipped model (README, \"Training and the shipped model\"): "
        "oscar-edge-v2-h16 with the spec's 4-conv towers, depth bought back with the "
        "time the narrower head saves"
    ),
)


PRESETS: Dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="oscar-r18-p2-256",
            stem_channels=(32, 32, 64),
            stage_channels=(64, 128, 256, 512),
            stage_depths=(2, 2, 2, 2),
            fpn_channels=256,
            head_channels=128,
            notes="released configuration (DeepInfrared oscar_r18_p2_256)",
            reference_params=16.48e6,
        ),
        Preset(
            name="oscar-r18-p2-128",
            stem_channels=(32, 32, 64),
            stage_channels=(64, 128, 256, 512),
            stage_depths=(2, 2, 2, 2),
            fpn_channels=128,
            head_channels=64,
            notes="released configuration (DeepInfrared oscar_r18_p2_128)",
            reference_params=12.58e6,
        ),
        _EDGE,
        _V2,
        replace(
            _V2,
            name="oscar-edge-v2-h16",
            head_channels=16,
            notes=(
                "experiment (docs/deploy-first-v2.md): oscar-edge-v2 with head towers of "
                "width 16, one 16-channel block of the CPU runtimes' AVX-512 layouts (24 channels "
                "are padded to 32 there)"
            ),
        ),
        _D4,
        replace(
            _D4,
            name="oscar-edge-v2-h16-d4-s2",
            stem_fine_convs=1,
            notes=(
                "experiment (docs/deploy-first-v2.md): oscar-edge-v2-h16-d4 with one more "
                "16-channel 3x3 conv at stride 2 in the stem, for targets of a few network pixels"
            ),
        ),
    )
}

# The architecture of the shipped weights (oscar_edge/weights/oscar-edge.pt and the graphs
# beside it); `oscar-edge train` trains it unless --preset says otherwise.
SHIPPED_PRESET = "oscar-edge-v2-h16-d4"


def get_preset(name: str) -> Preset:
    """Return the preset called ``name``; raise ``KeyError`` naming the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(
            f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}"
        ) from None
