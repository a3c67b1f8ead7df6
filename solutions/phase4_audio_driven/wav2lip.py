"""Wav2Lip: redraw the mouth of a face crop so that it says a given 0.2 s of speech.

Prajwal et al. 2020, "A Lip Sync Expert Is All You Need for Speech to Lip Generation in the Wild".

    faces  (B, 6, 96, 96): [target frame with its lower half zeroed | reference frame of the same person]
    audio  (B, 1, 80, 16): the mel window of that frame
        face encoder: 7 blocks 96 -> 48 -> 24 -> 12 -> 6 -> 3 -> 1, every output kept for a skip
        audio encoder: (B, 512, 1, 1), the bottleneck the decoder starts from
        decoder: 7 blocks 1 -> 3 -> 6 -> ... -> 96, each output concatenated with the encoder feature
                 of the same size (U-Net skips), then a 1x1 conv and a sigmoid
    -> (B, 3, 96, 96) BGR in [0, 1]

During training a window of T = 5 consecutive frames is fed at once, (B, 6, T, 96, 96) with audio
(B, T, 1, 80, 16). The network is 2-D, so the window is folded *time-major* into T*B images and unfolded
back to (B, 3, T, 96, 96): the expert SyncNet then judges 5 generated frames against their audio.

The generator loss (Sec. 3.3-3.4) mixes three terms:

    L = (1 - s_w - s_g) L1 + s_w E_sync + s_g L_gen,    s_w: 0 -> 0.03 (once the expert's loss < 0.75),
                                                         s_g = 0.07 (the visual-quality GAN, hq version)

with E_sync the frozen expert's BCE on the generated window and L_gen the discriminator's BCE
against "real".
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from solutions.phase4_audio_driven.blocks import Conv2d, Conv2dTranspose, NoNormConv2d, channels
from solutions.phase4_audio_driven.lip_sync import SyncNet, sync_loss


def fold_time(audio: torch.Tensor, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold a window into the batch, time-major: audio (B, T, 1, 80, 16) -> (T*B, 1, 80, 16),
    faces (B, C, T, H, W) -> (T*B, C, H, W); item t*B + b is frame t of sample b."""
    # TODO p4.w2l.fold: Fold the time axis of a training window into the batch, time-major.
    # Hint: audio: torch.cat([audio[:, t] for t in range(T)], dim=0); faces: torch.cat([faces[:, :, t] ...]).
    # Hint: it must be the exact inverse of unfold_time below (split into T chunks of B, stack on dim 2).
    # Hint: pitfall: folding batch-major (reshape of (B, T, ...)) and unfolding time-major scrambles
    # Hint: frames across samples (the reference differs by up to 0.92). BatchNorm makes both "work".
    # Hint: tested by test_wav2lip.py::test_fold_unfold_time_major and the reference check (gen5_out).
    # BEGIN SOLUTION p4.w2l.fold
    t = faces.shape[2]
    audio_2d = torch.cat([audio[:, i] for i in range(t)], dim=0)  # (T*B, 1, 80, 16)
    faces_2d = torch.cat([faces[:, :, i] for i in range(t)], dim=0)  # (T*B, C, H, W)
    return audio_2d, faces_2d
    # END SOLUTION


def unfold_time(x: torch.Tensor, batch: int) -> torch.Tensor:
    """Inverse of `fold_time` for images: (T*B, C, H, W) -> (B, C, T, H, W)."""
    return torch.stack(torch.split(x, batch, dim=0), dim=2)  # T chunks of (B, C, H, W), stacked on dim 2


class Wav2Lip(nn.Module):
    """The Wav2Lip generator; width 1.0 is the published state_dict layout (36,298,035 parameters)."""

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        self.width = width
        c = partial(channels, width=width)
        self.face_encoder_blocks = nn.ModuleList(
            [
                nn.Sequential(Conv2d(6, c(16), kernel_size=7, stride=1, padding=3)),  # 96
                nn.Sequential(
                    Conv2d(c(16), c(32), kernel_size=3, stride=2, padding=1),  # 48
                    Conv2d(c(32), c(32), kernel_size=3, stride=1, padding=1, residual=True),
                    Conv2d(c(32), c(32), kernel_size=3, stride=1, padding=1, residual=True),
                ),
                nn.Sequential(
                    Conv2d(c(32), c(64), kernel_size=3, stride=2, padding=1),  # 24
                    Conv2d(c(64), c(64), kernel_size=3, stride=1, padding=1, residual=True),
                    Conv2d(c(64), c(64), kernel_size=3, stride=1, padding=1, residual=True),
                    Conv2d(c(64), c(64), kernel_size=3, stride=1, padding=1, residual=True),
                ),
                nn.Sequential(
                    Conv2d(c(64), c(128), kernel_size=3, stride=2, padding=1),  # 12
                    Conv2d(c(128), c(128), kernel_size=3, stride=1, padding=1, residual=True),
                    Conv2d(c(128), c(128), kernel_size=3, stride=1, padding=1, residual=True),
                ),
                nn.Sequential(
                    Conv2d(c(128), c(256), kernel_size=3, stride=2, padding=1),  # 6
                    Conv2d(c(256), c(256), kernel_size=3, stride=1, padding=1, residual=True),
                    Conv2d(c(256), c(256), kernel_size=3, stride=1, padding=1, residual=True),
                ),
                nn.Sequential(
                    Conv2d(c(256), c(512), kernel_size=3, stride=2, padding=1),  # 3
                    Conv2d(c(512), c(512), kernel_size=3, stride=1, padding=1, residual=True),
                ),
                nn.Sequential(
                    Conv2d(c(512), c(512), kernel_size=3, stride=1, padding=0),  # 1
                    Conv2d(c(512), c(512), kernel_size=1, stride=1, padding=0),
                ),
            ]
        )
        self.audio_encoder = nn.Sequential(  # (B, 1, 80, 16) -> (B, 512, 1, 1)
            Conv2d(1, c(32), kernel_size=3, stride=1, padding=1),
            Conv2d(c(32), c(32), kernel_size=3, stride=1, padding=1, residual=True),
            Conv2d(c(32), c(32), kernel_size=3, stride=1, padding=1, residual=True),
            Conv2d(c(32), c(64), kernel_size=3, stride=(3, 1), padding=1),  # 27 x 16
            Conv2d(c(64), c(64), kernel_size=3, stride=1, padding=1, residual=True),
            Conv2d(c(64), c(64), kernel_size=3, stride=1, padding=1, residual=True),
            Conv2d(c(64), c(128), kernel_size=3, stride=3, padding=1),  # 9 x 6
            Conv2d(c(128), c(128), kernel_size=3, stride=1, padding=1, residual=True),
            Conv2d(c(128), c(128), kernel_size=3, stride=1, padding=1, residual=True),
            Conv2d(c(128), c(256), kernel_size=3, stride=(3, 2), padding=1),  # 3 x 3
            Conv2d(c(256), c(256), kernel_size=3, stride=1, padding=1, residual=True),
            Conv2d(c(256), c(512), kernel_size=3, stride=1, padding=0),  # 1 x 1
            Conv2d(c(512), c(512), kernel_size=1, stride=1, padding=0),
        )
        self.face_decoder_blocks = nn.ModuleList(
            [  # input channels = previous output + skip
                nn.Sequential(Conv2d(c(512), c(512), kernel_size=1, stride=1, padding=0)),  # 1
                nn.Sequential(
                    Conv2dTranspose(c(512) + c(512), c(512), kernel_size=3, stride=1, padding=0),  # 3
                    Conv2d(c(512), c(512), kernel_size=3, stride=1, padding=1, residual=True),
                ),
                nn.Sequential(
                    Conv2dTranspose(
                        c(512) + c(512), c(512), kernel_size=3, stride=2, padding=1, output_padding=1
                    ),
                    Conv2d(c(512), c(512), kernel_size=3, stride=1, padding=1, residual=True),
                    Conv2d(c(512), c(512), kernel_size=3, stride=1, padding=1, residual=True),
                ),
                nn.Sequential(
                    Conv2dTranspose(
                        c(512) + c(256), c(384), kernel_size=3, stride=2, padding=1, output_padding=1
                    ),  # 12
                    Conv2d(c(384), c(384), kernel_size=3, stride=1, padding=1, residual=True),
                    Conv2d(c(384), c(384), kernel_size=3, stride=1, padding=1, residual=True),
                ),
                nn.Sequential(
                    Conv2dTranspose(
                        c(384) + c(128), c(256), kernel_size=3, stride=2, padding=1, output_padding=1
                    ),  # 24
                    Conv2d(c(256), c(256), kernel_size=3, stride=1, padding=1, residual=True),
                    Conv2d(c(256), c(256), kernel_size=3, stride=1, padding=1, residual=True),
                ),
                nn.Sequential(
                    Conv2dTranspose(
                        c(256) + c(64), c(128), kernel_size=3, stride=2, padding=1, output_padding=1
                    ),  # 48
                    Conv2d(c(128), c(128), kernel_size=3, stride=1, padding=1, residual=True),
                    Conv2d(c(128), c(128), kernel_size=3, stride=1, padding=1, residual=True),
                ),
                nn.Sequential(
                    Conv2dTranspose(
                        c(128) + c(32), c(64), kernel_size=3, stride=2, padding=1, output_padding=1
                    ),  # 96
                    Conv2d(c(64), c(64), kernel_size=3, stride=1, padding=1, residual=True),
                    Conv2d(c(64), c(64), kernel_size=3, stride=1, padding=1, residual=True),
                ),
            ]
        )
        self.output_block = nn.Sequential(
            Conv2d(c(64) + c(16), c(32), kernel_size=3, stride=1, padding=1),
            nn.Conv2d(c(32), 3, kernel_size=1, stride=1, padding=0),
            nn.Sigmoid(),
        )

    def forward(self, audio: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
        """4-D: audio (B, 1, 80, 16), faces (B, 6, 96, 96) -> (B, 3, 96, 96).
        5-D: audio (B, T, 1, 80, 16), faces (B, 6, T, 96, 96) -> (B, 3, T, 96, 96). BGR in [0, 1]."""
        # TODO p4.w2l.forward: Encode face and audio, decode with U-Net skips, fold/unfold 5-D windows.
        # Hint: if faces.dim() == 5: fold_time first (remember B) and unfold_time at the end.
        # Hint: run the 7 face_encoder_blocks, keeping each output in a list (96, 48, 24, 12, 6, 3, 1 px).
        # Hint: x = self.audio_encoder(audio) (N, 512, 1, 1); for each decoder block: x = block(x), then
        # Hint: x = torch.cat([x, feats.pop()], dim=1) (the deepest unused skip). Finally output_block.
        # Hint: channels: 512 + 512 = 1024 after block 0, ..., 64 + 16 = 80 into output_block.
        # Hint: tested by test_wav2lip.py::test_generator_shapes_* and the reference check (gen4/gen5).
        # BEGIN SOLUTION p4.w2l.forward
        batch = audio.shape[0]
        is_window = faces.dim() > 4
        if is_window:
            audio, faces = fold_time(audio, faces)
        feats = []
        x = faces
        for block in self.face_encoder_blocks:
            x = block(x)
            feats.append(x)
        x = self.audio_encoder(audio)  # (N, 512, 1, 1)
        for block in self.face_decoder_blocks:
            x = block(x)
            x = torch.cat([x, feats.pop()], dim=1)
        x = self.output_block(x)  # (N, 3, 96, 96)
        return unfold_time(x, batch) if is_window else x
        # END SOLUTION


class Wav2LipDiscQual(nn.Module):
    """The visual-quality discriminator (Wav2Lip_disc_qual, 14,113,793 parameters, no BatchNorm):
    faces (B, 3, T, 96, 96) -> (T*B, 1) probability that each lower half is a real frame, time-major."""

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        self.width = width
        c = partial(channels, width=width)
        self.face_encoder_blocks = nn.ModuleList(
            [
                nn.Sequential(NoNormConv2d(3, c(32), kernel_size=7, stride=1, padding=3)),  # 48 x 96
                nn.Sequential(
                    NoNormConv2d(c(32), c(64), kernel_size=5, stride=(1, 2), padding=2),  # 48 x 48
                    NoNormConv2d(c(64), c(64), kernel_size=5, stride=1, padding=2),
                ),
                nn.Sequential(
                    NoNormConv2d(c(64), c(128), kernel_size=5, stride=2, padding=2),  # 24
                    NoNormConv2d(c(128), c(128), kernel_size=5, stride=1, padding=2),
                ),
                nn.Sequential(
                    NoNormConv2d(c(128), c(256), kernel_size=5, stride=2, padding=2),  # 12
                    NoNormConv2d(c(256), c(256), kernel_size=5, stride=1, padding=2),
                ),
                nn.Sequential(
                    NoNormConv2d(c(256), c(512), kernel_size=3, stride=2, padding=1),  # 6
                    NoNormConv2d(c(512), c(512), kernel_size=3, stride=1, padding=1),
                ),
                nn.Sequential(
                    NoNormConv2d(c(512), c(512), kernel_size=3, stride=2, padding=1),  # 3
                    NoNormConv2d(c(512), c(512), kernel_size=3, stride=1, padding=1),
                ),
                nn.Sequential(
                    NoNormConv2d(c(512), c(512), kernel_size=3, stride=1, padding=0),  # 1
                    NoNormConv2d(c(512), c(512), kernel_size=1, stride=1, padding=0),
                ),
            ]
        )
        self.binary_pred = nn.Sequential(
            nn.Conv2d(c(512), 1, kernel_size=1, stride=1, padding=0), nn.Sigmoid()
        )

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        x = torch.cat([faces[:, :, t] for t in range(faces.shape[2])], dim=0)  # (T*B, 3, 96, 96) time-major
        x = x[:, :, x.shape[2] // 2 :]  # lower half (T*B, 3, 48, 96)
        for block in self.face_encoder_blocks:
            x = block(x)
        return self.binary_pred(x).view(x.shape[0], -1)  # (T*B, 1)


# ------------------------------------------------------------------------------------------ losses --
@dataclass
class LossConfig:
    """Loss weights of the published hq trainer (hq_wav2lip_train.py)."""

    sync_weight_final: float = 0.03  # s_w once the expert's eval loss on generated windows < threshold
    sync_threshold: float = 0.75
    disc_weight: float = 0.07  # s_g
    mouth_weight: float = 1.0  # L1 weight of the lower half of the face vs the upper half (published 1)


PUBLISHED_LOSSES = LossConfig()


def expert_sync_loss(expert: SyncNet, mel: torch.Tensor, generated: torch.Tensor) -> torch.Tensor:
    """E_sync: the frozen expert's BCE (label "in sync") on a generated window.
    mel (B, 1, 80, 16), generated (B, 3, T, 96, 96) -> scalar. Gradients reach the generator only."""
    # TODO p4.w2l.sync_loss: The expert sync loss on the generator's output window.
    # Hint: keep the lower half g[:, :, :, 48:] (B, 3, T, 48, 96), put frames on channels frame-major:
    # Hint: torch.cat([g[:, :, t] for t in range(T)], dim=1) -> (B, 15, 48, 96); a, v = expert(mel, x);
    # Hint: return sync_loss(a, v, ones (B, 1)): Wav2Lip eq. 3, E_sync = mean(-log P_sync).
    # Hint: pitfall: the expert stays frozen (eval mode, requires_grad False) but must not be run under
    # Hint: no_grad, or no gradient reaches the generator. Tested by test_wav2lip.py::test_expert_sync_loss_*.
    # BEGIN SOLUTION p4.w2l.sync_loss
    lower = generated[:, :, :, generated.shape[3] // 2 :]  # (B, 3, T, 48, 96)
    x = torch.cat([lower[:, :, t] for t in range(lower.shape[2])], dim=1)  # (B, 3T, 48, 96)
    a, v = expert(mel, x)
    return sync_loss(a, v, torch.ones(x.shape[0], 1, dtype=a.dtype, device=a.device))
    # END SOLUTION


def sync_weight(current: float, eval_sync_loss: float | None, cfg: LossConfig = PUBLISHED_LOSSES) -> float:
    """The published schedule of s_w: 0 until the expert's loss on generated windows (measured on held-out
    data) first drops below `sync_threshold`, then `sync_weight_final` for the rest of training."""
    # TODO p4.w2l.schedule: Switch the sync-loss weight on once the generator is close enough.
    # Hint: start at 0 (L1 alone first teaches the generator to copy the reference); when
    # Hint: eval_sync_loss < cfg.sync_threshold return cfg.sync_weight_final, and never go back (once on,
    # Hint: stays on); None = not measured.
    # Hint: pitfall: the published 0.75 and 0.03 are only cfg's defaults: train.py's --sync-threshold and
    # Hint: --sync-weight arrive through cfg. Tested by test_wav2lip.py::test_sync_weight_schedule*.
    # BEGIN SOLUTION p4.w2l.schedule
    if current > 0 or (eval_sync_loss is not None and eval_sync_loss < cfg.sync_threshold):
        return cfg.sync_weight_final
    return 0.0
    # END SOLUTION


def generator_loss(
    generated: torch.Tensor,
    target: torch.Tensor,
    sync: torch.Tensor,
    disc_real_prob: torch.Tensor | None,
    s_w: float,
    cfg: LossConfig = PUBLISHED_LOSSES,
) -> dict[str, torch.Tensor]:
    """Total generator loss L = s_w E_sync + s_g L_gen + (1 - s_w - s_g) L1 (s_g = 0 without a disc).

    generated, target (B, 3, T, 96, 96); sync = expert_sync_loss; disc_real_prob = disc(generated)
    (T*B, 1) or None. Returns the scalar terms and `total`. With `cfg.mouth_weight` w != 1 (not in the
    paper) the L1 in `total` weighs the pixels of the lower half w times those of the upper half (the
    weights averaging 1, so its scale stays that of the L1): the masked half, where the mouth has to
    follow the audio, instead of the half the masked input already shows. `l1` stays the plain L1."""
    l1 = F.l1_loss(generated, target)
    recon = l1
    if cfg.mouth_weight != 1.0:
        h = generated.shape[3]
        rows = torch.ones(h, 1, dtype=generated.dtype, device=generated.device)  # (H, 1), broadcast over W
        rows[h // 2 :] = cfg.mouth_weight
        recon = ((generated - target).abs() * (rows / rows.mean())).mean()
    s_g = cfg.disc_weight if disc_real_prob is not None else 0.0
    out = {"l1": l1, "sync": sync}
    total = s_w * sync + (1.0 - s_w - s_g) * recon
    if disc_real_prob is not None:
        perceptual = F.binary_cross_entropy(disc_real_prob, torch.ones_like(disc_real_prob))
        out["perceptual"] = perceptual
        total = total + s_g * perceptual
    out["total"] = total
    return out


def discriminator_loss(disc: Wav2LipDiscQual, generated: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE(disc(real), 1) + BCE(disc(fake), 0), with the generator's output detached."""
    real = disc(target)
    fake = disc(generated.detach())
    return F.binary_cross_entropy(real, torch.ones_like(real)) + F.binary_cross_entropy(
        fake, torch.zeros_like(fake)
    )
