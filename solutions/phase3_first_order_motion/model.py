"""FOMM configurations, model building and checkpoints in the published layout.

Two configurations:

* `vox-256`: the published VoxCeleb model (`config/vox-256.yaml` model_params, 256x256 frames;
  kp_detector 14.2 M, generator 45.6 M, discriminator 2.8 M parameters). Its checkpoints load here.
* `tiny`: the same architecture, narrower and shallower, on 64x64 frames, so it trains on a laptop CPU
  in minutes (the demo and the tests use it).

A checkpoint is a `torch.save` dict with the published keys `kp_detector`, `generator`,
`discriminator`, `optimizer_generator`, `optimizer_kp_detector`, `optimizer_discriminator` and
`epoch` (module keys without a `module.` prefix). Ours add `model_params` (plain dicts) and
`frame_size`, which published readers ignore (train.py's run checkpoints keep them under `extra`).
Everything is read with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from common.atomic import write_atomic
from common.errors import UserError
from common.training import load_checkpoint
from solutions.phase3_first_order_motion.discriminator import MultiScaleDiscriminator
from solutions.phase3_first_order_motion.generator import OcclusionAwareGenerator
from solutions.phase3_first_order_motion.keypoint_detector import KPDetector
from solutions.phase3_first_order_motion.motion_transfer import normalize_kp


@dataclass
class KPDetectorConfig:
    """The keypoint detector's hourglass (`kp_detector_params` of the published yaml; sec. 3.1)."""

    temperature: float = 0.1  # softmax temperature of the heatmaps (lower: sharper peaks)
    block_expansion: int = 32  # base channel count: block i has block_expansion * 2^(i+1)
    max_features: int = 1024  # cap on the channels of any block
    scale_factor: float = 0.25  # the detector sees a 4x smaller image
    num_blocks: int = 5  # hourglass depth: down blocks, each halving the resolution


@dataclass
class DenseMotionConfig:
    """The dense motion network's hourglass, which turns K sparse motions into masks, the dense motion
    field and the occlusion map (`dense_motion_params` inside the published generator_params;
    sec. 3.1-3.2)."""

    block_expansion: int = 64  # base channel count: block i has block_expansion * 2^(i+1)
    max_features: int = 1024  # cap on the channels of any block
    num_blocks: int = 5  # hourglass depth: down blocks, each halving the resolution
    scale_factor: float = 0.25  # the motion field lives at 1/4 resolution


@dataclass
class GeneratorConfig:
    """The occlusion-aware generator (`generator_params` of the published yaml; sec. 3.2)."""

    block_expansion: int = 64  # channels of the first conv (doubled by each down block)
    max_features: int = 512  # cap on the channels of any block
    num_down_blocks: int = 2  # encoder down blocks, each halving the resolution the features are warped at
    num_bottleneck_blocks: int = 6  # residual blocks on the warped features
    estimate_occlusion_map: bool = True  # predict where the source does not show the driving frame
    dense_motion_params: DenseMotionConfig = field(default_factory=DenseMotionConfig)
    # Options of ours, not the paper's (off in vox-256, whose weights and model_params stay the published
    # ones; they appear in model_params only when on): sample at the pixel centres the keypoint grid names
    # (motion_transfer.to_sampling_grid), blend the warped source's pixels into the prediction by the
    # occlusion map (generator.blend_by_occlusion), and take those pixels from a bilateral-filtered source
    # (generator.BilateralFilter, 2 learned weights; only with blend_warped_source).
    exact_warp: bool = False
    blend_warped_source: bool = False
    denoise_source: bool = False


OPTIONS_OF_OURS = ("exact_warp", "blend_warped_source", "denoise_source")


@dataclass
class DiscriminatorConfig:
    """The patch discriminator used in training (`discriminator_params` of the published yaml)."""

    scales: list[float] = field(default_factory=lambda: [1])  # image scales, one discriminator each
    block_expansion: int = 32  # base channel count: block i has block_expansion * 2^(i+1)
    max_features: int = 512  # cap on the channels of any block
    num_blocks: int = 4  # 4x4 conv blocks
    sn: bool = True  # spectral normalisation on every conv


@dataclass
class FOMMConfig:
    """Everything that fixes the networks' shapes (`model_params` of the published yaml) + frame size."""

    num_kp: int = 10
    num_channels: int = 3
    estimate_jacobian: bool = True
    frame_size: int = 256
    kp_detector: KPDetectorConfig = field(default_factory=KPDetectorConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)

    def model_params(self) -> dict:
        """The published `model_params` dict (common / kp_detector / generator / discriminator params).

        Our generator options appear in generator_params only when on, so vox-256's dict stays the
        published one."""
        generator = asdict(self.generator)
        for option in OPTIONS_OF_OURS:
            if not generator[option]:
                del generator[option]
        return {
            "common_params": {"num_kp": self.num_kp, "num_channels": self.num_channels,
                              "estimate_jacobian": self.estimate_jacobian},
            "kp_detector_params": asdict(self.kp_detector),
            "generator_params": generator,
            "discriminator_params": asdict(self.discriminator),
        }

    @classmethod
    def from_model_params(cls, params: dict, frame_size: int = 256) -> FOMMConfig:
        """Inverse of `model_params` (accepts the dict of fomm_vox256_state_dict.json)."""
        gen = dict(params["generator_params"])
        dense = DenseMotionConfig(**gen.pop("dense_motion_params"))
        disc = dict(params["discriminator_params"])
        disc["scales"] = list(disc.get("scales", [1]))
        return cls(**params["common_params"], frame_size=frame_size,
                   kp_detector=KPDetectorConfig(**params["kp_detector_params"]),
                   generator=GeneratorConfig(**gen, dense_motion_params=dense),
                   discriminator=DiscriminatorConfig(**disc))


def tiny_config() -> FOMMConfig:
    """64x64 frames, ~1/30 of vox-256's compute: trains on 2 CPU cores in minutes.

    The generator has no down block: it warps its features at the full 64x64 (the motion field, computed
    at 32x32, is upsampled to them). vox-256's two down blocks would warp at 16x16, a 4-pixel cell that
    cannot hold a face's texture, and one down block (32x32) blurred the frames the decoder rebuilds
    (quick preset: held-out L1 / AKD 0.91x / 0.44x the copy-the-source baseline with no down block,
    0.94x / 0.51x with one).

    Three options of ours are on (vox-256 keeps the paper's generator): `exact_warp` samples at the pixel
    centres the keypoints name (the published W / (W - 1) zoom, plus resizing the field at
    align_corners=False, resampled every pixel of a 64 px frame a fraction of a pixel off: warping by the
    identity motion alone cost 1.03x the L1 of copying the source), and `blend_warped_source` takes the
    warped source's own pixels where the occlusion map says the source shows them, so the decoder only
    paints the rest. The prediction is then the warped source almost everywhere (mean occlusion 0.99)
    and L1 is set by the motion: the generator keeps no residual blocks and the dense motion network
    gets 32 channels instead of 16 (600-step proxies, L1 ratio: 1.14 published generator, 0.93 with
    exact_warp, 0.61 with both options, 0.58 with this split of the compute, 5 % more CPU per step).
    On the still half of the frame the prediction then carried the source frame's sensor noise, which no
    driving frame shares, so `denoise_source` takes the blended pixels from a bilateral-filtered source
    (generator.BilateralFilter: 5x5, two learned widths, which the quick preset moves from 1 px / 3 grey
    levels to 1.9 px / 6.3 levels). On the still pixels (those of the noise-free renders that do not
    change) L1 went from 0.98x to 0.84x the copy in 600-step proxies, and is 0.83x after the quick preset
    (a noise-free source would give 0.77x); the moving pixels end at 0.44x. The filter costs 6 % more CPU
    per step. After the quick preset (which also clips the gradients, demo.QUICK_OPTIMIZER): L1 0.49x
    and AKD 0.35x; 0.53x / 0.34x without the filter and the clipping, 0.92x / 0.46x with the paper's
    generator.
    """
    return FOMMConfig(
        frame_size=64,
        kp_detector=KPDetectorConfig(block_expansion=16, max_features=128, scale_factor=0.5, num_blocks=3),
        generator=GeneratorConfig(block_expansion=16, max_features=128, num_down_blocks=0,
                                  num_bottleneck_blocks=0, exact_warp=True, blend_warped_source=True,
                                  denoise_source=True,
                                  dense_motion_params=DenseMotionConfig(block_expansion=32, max_features=128,
                                                                        num_blocks=3, scale_factor=0.5)),
        discriminator=DiscriminatorConfig(block_expansion=16, max_features=128),
    )


CONFIGS = {"vox-256": FOMMConfig, "tiny": tiny_config}


def get_config(name: str) -> FOMMConfig:
    """A named configuration ('vox-256' or 'tiny')."""
    if name not in CONFIGS:
        raise UserError(f"unknown FOMM config {name!r}; choose one of {', '.join(CONFIGS)}")
    return CONFIGS[name]()


def build_fomm(model_params: dict | FOMMConfig | None = None) -> dict:
    """Build {'kp_detector', 'generator', 'discriminator', 'normalize_kp'} (vox-256 when no params).

    `model_params` may be the published dict or a FOMMConfig. This is the builder that
    ../shared/reference/verify_reference.py calls.
    """
    if model_params is None:
        config = FOMMConfig()
    elif isinstance(model_params, FOMMConfig):
        config = model_params
    else:
        config = FOMMConfig.from_model_params(model_params)
    common = {"num_kp": config.num_kp, "num_channels": config.num_channels,
              "estimate_jacobian": config.estimate_jacobian}
    gen = asdict(config.generator)
    disc = asdict(config.discriminator)
    return {
        "kp_detector": KPDetector(**asdict(config.kp_detector), **common),
        "generator": OcclusionAwareGenerator(**gen, **common),
        "discriminator": MultiScaleDiscriminator(scales=disc.pop("scales"), num_channels=config.num_channels,
                                                 **disc),
        "normalize_kp": normalize_kp,
    }


MODULES = ("kp_detector", "generator", "discriminator")
OPTIMIZERS = {f"optimizer_{name}": name for name in MODULES}


def save_checkpoint(path: str | Path, modules: dict[str, nn.Module], config: FOMMConfig, epoch: int = 0,
                    optimizers: dict[str, torch.optim.Optimizer] | None = None,
                    extra: dict | None = None) -> Path:
    """Write a checkpoint in the published layout, whole or not at all (`common.atomic.write_atomic`:
    temporary file, fsync, rename)."""
    state: dict = {name: module.state_dict() for name, module in modules.items()}
    for name, opt in (optimizers or {}).items():
        state[name] = opt.state_dict()
    state["epoch"] = int(epoch)
    state["model_params"] = config.model_params()
    state["frame_size"] = config.frame_size
    state.update(extra or {})
    return write_atomic(path, lambda file: torch.save(state, file), durable=True)


def read_checkpoint(path: str | Path) -> dict:
    """A FOMM checkpoint's dict (`common.training.load_checkpoint`: weights only, a one-line UserError for
    a missing or unreadable file), which must hold 'kp_detector' and 'generator' entries."""
    state = load_checkpoint(path)
    if "kp_detector" not in state or "generator" not in state:
        raise UserError(f"{path} is not a FOMM checkpoint (no 'kp_detector' and 'generator' entries)")
    return state


def config_of_checkpoint(state: dict) -> FOMMConfig:
    """The config stored in our checkpoints, or the one whose shapes match a published checkpoint."""
    for where in (state, state.get("extra") or {}):  # ours: top level; train.py's run checkpoints: 'extra'
        if "model_params" in where:
            frame_size = int(where.get("frame_size", 256))
            return FOMMConfig.from_model_params(where["model_params"], frame_size=frame_size)
    for name in CONFIGS:
        config = get_config(name)
        built = build_fomm(config)
        if _shapes_match(built["kp_detector"], state["kp_detector"]) and _shapes_match(
                built["generator"], state["generator"]):
            return config
    raise UserError("the checkpoint matches neither the vox-256 nor the tiny FOMM layout")


def _shapes_match(module: nn.Module, state_dict: dict) -> bool:
    own = module.state_dict()
    return own.keys() == state_dict.keys() and all(own[k].shape == state_dict[k].shape for k in own)


def load_fomm(path: str | Path, expect: FOMMConfig | None = None) -> tuple[dict, FOMMConfig, dict]:
    """Build the modules for a checkpoint and load its weights strictly; eval mode.

    Returns (models dict as from `build_fomm`, config, the raw checkpoint). With `expect`, a checkpoint
    of another configuration is a UserError.
    """
    state = read_checkpoint(path)
    config = config_of_checkpoint(state)
    if expect is not None and config.model_params() != expect.model_params():
        raise UserError(f"checkpoint {path} holds another FOMM configuration than the one asked for")
    models = build_fomm(config)
    for name in MODULES:
        if name not in state:
            continue
        if not _shapes_match(models[name], state[name]):
            if name == "discriminator":  # published vox-adv discriminators differ; the demo never needs it
                continue
            raise UserError(f"checkpoint {path}: the {name} weights do not fit the {name} layout")
        models[name].load_state_dict(state[name], strict=True)
    for name in MODULES:
        models[name].eval()
    return models, config, state
