"""X2Face (Wiles, Koepke & Zisserman, ECCV 2018): reenactment with learned sampling fields, no landmarks.

Two networks, and every image they make is *sampled* from an input image (they never paint pixels):

    source (B, 3, S, S) --embedding net--> field E (B, S, S, 2) --sample source at E--> canonical face
    driving (B, 3, S, S) --driving net--> field D (B, S, S, 2) --sample canonical at D--> generated

* The **embedding network** (a small U-Net) maps the source to a *canonical* face: a pose- and
  expression-free arrangement of the source's own pixels (X2Face sec. 3.1, the "embedded face").
* The **driving network** (an encoder to a bottleneck vector, the "driving vector", then a decoder)
  says for each output pixel where to look in the canonical face so that the result has the driving
  frame's pose and expression (sec. 3.2). The bottleneck squeezes out the driver's identity.

Training is self-supervised (sec. 3.3): take two frames of the *same* video; the first is the source,
the second the driving frame, and the generated frame must reproduce the second (L1 loss). With no
labels, nothing says what the canonical face must look like; it is whatever makes the job easy.

A field holds sampling positions in `grid_sample`'s convention: (x, y) in [-1, 1], align_corners=False
(pixel centres at (2 i + 1) / S - 1). Each network predicts an *offset* added to the identity grid
and starts at exactly zero offset, so an untrained model copies its input.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class X2FaceConfig:
    """Sizes (defaults: 64 px faces, trains on a CPU)."""

    size: int = 64  # input and output side
    channels: tuple[int, ...] = (16, 32, 64, 64)  # encoder widths, each stage halves the size
    driving_dim: int = 128  # the driving vector
    max_offset: float = 0.5  # largest field offset, in [-1, 1] units (tanh-limited)


def identity_grid(batch: int, height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """The field that samples every pixel from itself: `(B, H, W, 2)` (x, y), align_corners=False."""
    theta = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], device=device, dtype=dtype).expand(batch, 2, 3)
    return F.affine_grid(theta, [batch, 1, height, width], align_corners=False)


def sample(image: torch.Tensor, field: torch.Tensor) -> torch.Tensor:
    """Bilinear lookup of `image` `(B, C, H, W)` at `field` `(B, H', W', 2)` -> `(B, C, H', W')`."""
    return F.grid_sample(image, field, mode="bilinear", padding_mode="border", align_corners=False)


def compose(outer: torch.Tensor, inner: torch.Tensor) -> torch.Tensor:
    """The field of "sample with `outer`, then with `inner`" as one field: outer looked up at inner.

    generated = sample(sample(src, E), D) = sample(src, compose(E, D)), both `(B, H, W, 2)`.
    """
    return sample(outer.permute(0, 3, 1, 2), inner).permute(0, 2, 3, 1)


def down(cin: int, cout: int) -> nn.Sequential:
    """Halve the size: 4x4 stride-2 convolution, batch norm, leaky ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2))


def up(cin: int, cout: int) -> nn.Sequential:
    """Double the size: bilinear upsampling, 3x3 convolution, batch norm, ReLU."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                         nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


def field_head(cin: int) -> nn.Conv2d:
    """The last layer of a field predictor: 2 channels (dx, dy), zero-initialised (identity field)."""
    head = nn.Conv2d(cin, 2, 3, 1, 1)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    return head


class EmbeddingNet(nn.Module):
    """U-Net: source `(B, 3, S, S)` -> field `(B, S, S, 2)` and the canonical face `(B, 3, S, S)`."""

    def __init__(self, cfg: X2FaceConfig):
        super().__init__()
        self.cfg = cfg
        widths = (3, *cfg.channels)
        self.encoder = nn.ModuleList(down(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True))
        # Decoder stage i sees the previous stage's output and the matching encoder skip.
        dec_in = [widths[-1]] + [2 * w for w in reversed(widths[1:-1])]
        dec_out = list(reversed(widths[1:-1])) + [widths[1]]
        self.decoder = nn.ModuleList(up(a, b) for a, b in zip(dec_in, dec_out, strict=True))
        self.head = field_head(widths[1])

    def forward(self, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # TODO p2.x2f.embed: U-Net to (dx, dy) offsets; field = identity grid + offsets; canonical = sample.
        # Hint: skips = []; for each encoder stage: x = stage(x); keep x. Decoder stage 0 takes the deepest
        # Hint: x; stage i > 0 takes cat([x, skips[-1 - i]], dim=1). offsets = max_offset * tanh(head(x))
        # Hint: (B, 2, S, S) -> permute to (B, S, S, 2); field = identity_grid(B, S, S) + offsets;
        # Hint: canonical = sample(source, field). X2Face sec. 3.1; returns (field, canonical).
        # BEGIN SOLUTION p2.x2f.embed
        x, skips = source, []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        for i, stage in enumerate(self.decoder):
            x = stage(x if i == 0 else torch.cat([x, skips[-1 - i]], dim=1))
        offsets = self.cfg.max_offset * torch.tanh(self.head(x)).permute(0, 2, 3, 1)  # (B, S, S, 2)
        batch, _, height, width = source.shape
        field = identity_grid(batch, height, width, source.device, source.dtype) + offsets
        return field, sample(source, field)
        # END SOLUTION


class DrivingNet(nn.Module):
    """Encoder -> driving vector -> decoder: driving frame `(B, 3, S, S)` -> field `(B, S, S, 2)`."""

    def __init__(self, cfg: X2FaceConfig):
        super().__init__()
        self.cfg = cfg
        widths = (3, *cfg.channels)
        self.encoder = nn.Sequential(*[down(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)])
        self.bottom = cfg.size // 2 ** len(cfg.channels)  # side of the deepest feature map
        flat = widths[-1] * self.bottom**2
        self.to_vector = nn.Linear(flat, cfg.driving_dim)
        self.from_vector = nn.Linear(cfg.driving_dim, flat)
        rev = list(reversed(widths[1:]))
        self.decoder = nn.Sequential(*[up(a, b) for a, b in zip(rev, rev[1:] + [rev[-1]], strict=True)])
        self.head = field_head(rev[-1])

    def encode(self, driving: torch.Tensor) -> torch.Tensor:
        """The driving vector `(B, driving_dim)`: pose and expression, with little room for identity."""
        return self.to_vector(self.encoder(driving).flatten(1))

    def forward(self, driving: torch.Tensor) -> torch.Tensor:
        # TODO p2.x2f.drive: Encode to the driving vector, decode to offsets, add the identity grid.
        # Hint: v = encode(driving) (B, driving_dim); x = from_vector(v).view(B, C, b, b) with C =
        # Hint: cfg.channels[-1], b = self.bottom; x = decoder(x) (B, C1, S, S); offsets = max_offset *
        # Hint: tanh(head(x)).permute(0, 2, 3, 1); return identity_grid(B, S, S) + offsets (B, S, S, 2).
        # Hint: X2Face sec. 3.2. Pitfall: reshape with the batch size of *this* input.
        # BEGIN SOLUTION p2.x2f.drive
        batch, _, height, width = driving.shape
        vector = self.encode(driving)  # (B, driving_dim)
        x = self.from_vector(vector).view(batch, self.cfg.channels[-1], self.bottom, self.bottom)
        offsets = self.cfg.max_offset * torch.tanh(self.head(self.decoder(x))).permute(0, 2, 3, 1)
        return identity_grid(batch, height, width, driving.device, driving.dtype) + offsets
        # END SOLUTION


class X2Face(nn.Module):
    """Both networks: `forward(source, driving)` -> the source's face with the driving frame's motion."""

    def __init__(self, cfg: X2FaceConfig | None = None):
        super().__init__()
        self.cfg = cfg or X2FaceConfig()
        self.embedding = EmbeddingNet(self.cfg)
        self.driving = DrivingNet(self.cfg)

    def forward(self, source: torch.Tensor, driving: torch.Tensor) -> dict[str, torch.Tensor]:
        """Images `(B, 3, S, S)` in [0, 1] -> {"generated", "canonical" images, "embed", "drive",
        "field" (the composed source-to-output field, `(B, S, S, 2)`)}."""
        embed, canonical = self.embedding(source)
        drive = self.driving(driving)
        return {"generated": sample(canonical, drive), "canonical": canonical, "embed": embed,
                "drive": drive, "field": compose(embed, drive)}


def reconstruction_loss(model: X2Face, source: torch.Tensor,
                        driving: torch.Tensor) -> dict[str, torch.Tensor]:
    """Self-supervised loss on two frames of one video: L1 between the generated and the driving frame."""
    out = model(source, driving)
    l1 = (out["generated"] - driving).abs().mean()
    return {"loss": l1, "l1": l1}
