"""SyncNet, the lip-sync expert: does this 0.2 s of mouth motion match this 0.2 s of speech?

Chung & Zisserman (2016, "Out of time: automated lip sync in the wild") trained two encoders, one for
a short window of mouth crops and one for the matching audio, so that in-sync pairs land close together
in a shared embedding space. Wav2Lip (Prajwal et al. 2020, Sec. 3.2) retrains it on colour frames
("SyncNet_color") with a cosine similarity and a binary cross-entropy,

    P_sync = (v . s) / max(||v||_2 ||s||_2, eps)          (eq. 1)
    E_sync = -log P_sync  for in-sync pairs,  -log(1 - P_sync) for off-sync ones,

and then *freezes* it and uses it as a judge of the generator's output (the "expert").

    face window: lower halves of 5 BGR frames, frame-major on channels  (B, 15, 48, 96)
    audio window: 16 mel columns                                          (B, 1, 80, 16)
    embeddings: ReLU then L2-normalised                                   (B, 512) each

Because both embeddings are non-negative, the cosine lies in [0, 1] and can go straight into BCE.

The second half evaluates sync the way the published LSE-D / LSE-C metrics do: for every frame,
compare the face embedding with audio embeddings shifted by -15 .. +15 frames, average the distances
over the clip per shift, and read off the best shift (the offset), its distance (LSE-D, lower is
better) and how far it sits below the median over shifts (LSE-C, confidence, higher is better).
Unlike the published code, each shift averages only the frames where both windows exist (see the
pitfall in `offset_search`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from solutions.phase4_audio_driven.audio_encoder import DEFAULT, AudioConfig
from solutions.phase4_audio_driven.blocks import Conv2d, channels


class SyncNet(nn.Module):
    """SyncNet_color; width 1.0 is the published state_dict layout (16,435,072 parameters)."""

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        self.width = width
        c = partial(channels, width=width)
        self.face_encoder = nn.Sequential(  # (B, 15, 48, 96)
            Conv2d(15, c(32), kernel_size=(7, 7), stride=1, padding=3),  # 48 x 96
            Conv2d(c(32), c(64), kernel_size=5, stride=(1, 2), padding=1),  # 46 x 47
            Conv2d(c(64), c(64), kernel_size=3, stride=1, padding=1, residual=True),
            Conv2d(c(64), c(64), kernel_size=3, stride=1, padding=1, residual=True),
            Conv2d(c(64), c(128), kernel_size=3, stride=2, padding=1),  # 23 x 24
            Conv2d(c(128), c(128), kernel_size=3, stride=1, padding=1, residual=True),
            Conv2d(c(128), c(128), kernel_size=3, stride=1, padding=1, residual=True),
            Conv2d(c(128), c(128), kernel_size=3, stride=1, padding=1, residual=True),
            Conv2d(c(128), c(256), kernel_size=3, stride=2, padding=1),  # 12 x 12
            Conv2d(c(256), c(256), kernel_size=3, stride=1, padding=1, residual=True),
            Conv2d(c(256), c(256), kernel_size=3, stride=1, padding=1, residual=True),
            Conv2d(c(256), c(512), kernel_size=3, stride=2, padding=1),  # 6 x 6
            Conv2d(c(512), c(512), kernel_size=3, stride=1, padding=1, residual=True),
            Conv2d(c(512), c(512), kernel_size=3, stride=1, padding=1, residual=True),
            Conv2d(c(512), c(512), kernel_size=3, stride=2, padding=1),  # 3 x 3
            Conv2d(c(512), c(512), kernel_size=3, stride=1, padding=0),  # 1 x 1
            Conv2d(c(512), c(512), kernel_size=1, stride=1, padding=0),  # (B, 512, 1, 1)
        )
        self.audio_encoder = nn.Sequential(  # (B, 1, 80, 16)
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
            Conv2d(c(256), c(256), kernel_size=3, stride=1, padding=1, residual=True),
            Conv2d(c(256), c(512), kernel_size=3, stride=1, padding=0),  # 1 x 1
            Conv2d(c(512), c(512), kernel_size=1, stride=1, padding=0),  # (B, 512, 1, 1)
        )

    def forward(self, audio: torch.Tensor, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """audio (B, 1, 80, 16), faces (B, 15, 48, 96) -> unit-length (audio_emb, face_emb), (B, 512) each."""
        # TODO p4.sync.embed: Encode both windows and L2-normalise the 512-D embeddings.
        # Hint: run self.face_encoder and self.audio_encoder (each ends in a ReLU block, so the
        # Hint: embeddings are >= 0), flatten (B, 512, 1, 1) -> (B, 512), then F.normalize(p=2, dim=1).
        # Hint: pitfall: return (audio, face) in that order, as the published checkpoints' code does.
        # Hint: tested by tests/phase4_audio_driven/test_lip_sync.py::test_syncnet_shapes_and_unit_norm.
        # BEGIN SOLUTION p4.sync.embed
        face = self.face_encoder(faces).flatten(1)  # (B, 512)
        aud = self.audio_encoder(audio).flatten(1)  # (B, 512)
        return F.normalize(aud, p=2, dim=1), F.normalize(face, p=2, dim=1)
        # END SOLUTION


def sync_probability(audio_emb: torch.Tensor, face_emb: torch.Tensor) -> torch.Tensor:
    """P_sync = cosine similarity (B,) of the two embeddings (in [0, 1] for ReLU embeddings)."""
    return F.cosine_similarity(audio_emb, face_emb, dim=1)


def sync_loss(audio_emb: torch.Tensor, face_emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the cosine against labels (B, 1) (1 = in sync, 0 = shifted): a scalar."""
    # TODO p4.sync.loss: The expert's loss: BCE of the cosine similarity against the sync labels.
    # Hint: Wav2Lip eq. 1: P_sync = cos(a, v) per row (B,), then
    # Hint: -mean(y log P + (1 - y) log(1 - P)); F.binary_cross_entropy(P.unsqueeze(1), labels).
    # Hint: identical embeddings give P = 1, so an in-sync label gives loss ~0; label 0 gives a large loss.
    # Hint: pitfall: the cosine is already a probability here (ReLU embeddings): no sigmoid. But rounding
    # Hint: can give 1.0000001 for identical vectors, which BCE rejects: clamp to [0, 1] first.
    # Hint: tested by test_lip_sync.py::test_sync_loss_sign and the reference check (sync_bce_loss).
    # BEGIN SOLUTION p4.sync.loss
    p = sync_probability(audio_emb, face_emb).clamp(0.0, 1.0).unsqueeze(1)  # (B, 1)
    return F.binary_cross_entropy(p, labels.to(p.dtype))
    # END SOLUTION


@dataclass
class SyncScores:
    """Result of the offset search over one clip."""

    offset: int  # frames; positive: the face at frame i matches the audio at frame i - offset
    lse_d: float  # mean embedding distance at the best offset (lower = better sync)
    lse_c: float  # median over offsets minus the best mean distance (higher = more confident)
    mean_dists: np.ndarray  # (2 * vshift + 1,) mean distance per audio shift k = index - vshift


def offset_search(audio_emb: torch.Tensor, face_emb: torch.Tensor, vshift: int = 15) -> SyncScores:
    """LSE-D / LSE-C of per-frame embeddings audio (N, D) and face (N, D), over shifts -vshift..vshift."""
    # TODO p4.sync.lse: Search the audio-video offset and compute LSE-D and LSE-C.
    # Hint: as the published evaluation (syncnet_python calc_pdist): for every shift k in -vshift..vshift,
    # Hint: d_k = mean over frames i of ||face[i] - audio[i + k]||_2, using only the frames where i + k is
    # Hint: inside the clip -> mean_dists (2 vshift + 1,); k* = argmin; offset = -k* (positive: the face
    # Hint: at frame i shows the audio of frame i - offset); LSE-D = d_k*; LSE-C = median(d) - d_k*.
    # Hint: pitfall: the published code zero-pads instead; with unit-length embeddings a zero row sits at
    # Hint: distance exactly 1, closer than most real pairs, which drags the minimum to +-vshift.
    # Hint: never wrap around (torch.roll) either. Tested by test_lip_sync.py::test_offset_search_finds_shift.
    # BEGIN SOLUTION p4.sync.lse
    n = face_emb.shape[0]
    if n <= vshift:
        raise ValueError(f"need more than {vshift} frames for a +-{vshift} search, got {n}")
    means = []
    for k in range(-vshift, vshift + 1):
        lo, hi = max(0, -k), min(n, n - k)  # frames i with 0 <= i + k < n
        d = torch.linalg.vector_norm(face_emb[lo:hi] - audio_emb[lo + k : hi + k], dim=1)  # (hi - lo,)
        means.append(d.mean())
    mean_dists = torch.stack(means).detach().cpu().double().numpy()  # (2 vshift + 1,)
    best = int(np.argmin(mean_dists))
    return SyncScores(
        offset=vshift - best,
        lse_d=float(mean_dists[best]),
        lse_c=float(np.median(mean_dists) - mean_dists[best]),
        mean_dists=mean_dists,
    )
    # END SOLUTION


# ----------------------------------------------------------------------------- clip -> embeddings --
def sync_face_windows(faces: torch.Tensor, window: int = 5) -> torch.Tensor:
    """Per-frame SyncNet inputs from face crops (T, 3, 96, 96) BGR [0, 1] -> (T - window + 1, 15, 48, 96)."""
    lower = faces[:, :, faces.shape[2] // 2 :]  # (T, 3, 48, 96)
    n = lower.shape[0] - window + 1
    return torch.stack([lower[i : i + window].flatten(0, 1) for i in range(n)])  # frame-major channels


def sync_audio_windows(mel: np.ndarray, n: int, fps: float, cfg: AudioConfig = DEFAULT) -> torch.Tensor:
    """SyncNet audio windows of frames 0..n-1, mel (80, T) -> (n, 1, 80, 16); windows past the end are cut."""
    starts = [int(cfg.mel_fps * (i / fps)) for i in range(n)]
    starts = [s for s in starts if s + cfg.mel_step_size <= mel.shape[1]]
    if not starts:
        return torch.zeros(0, 1, mel.shape[0], cfg.mel_step_size)
    chunks = np.stack([mel[:, s : s + cfg.mel_step_size] for s in starts])
    return torch.from_numpy(chunks.astype(np.float32)).unsqueeze(1)


@torch.no_grad()
def clip_embeddings(
    syncnet: SyncNet, faces: torch.Tensor, mel: np.ndarray, fps: float, batch_size: int = 64,
    to_input: Callable[[Any], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings of every 5-frame window of a clip: faces (T, 3, 96, 96), mel (80, T') -> (N, 512) x 2.

    N is the number of windows both cover: where the audio ends before the video, the frames after it
    have no audio window and are left out. The windows (5 lower halves a frame in floats: 830 MB for
    2 minutes at 25 fps) are built one batch at a time. `to_input` turns a slice of `faces` into
    (n, 3, 96, 96) network input, so that the clip can stay in a smaller form until then (e.g. uint8
    crops (T, 96, 96, 3) with `phase4_audio_driven.pipeline.to_network`, a quarter of the floats' size)."""
    device = next(syncnet.parameters()).device
    to_input = to_input or torch.as_tensor
    window = 5
    audio_windows = sync_audio_windows(mel, max(0, len(faces) - window + 1), fps)
    n = min(len(faces) - window + 1, audio_windows.shape[0])  # audio shorter than the video: fewer windows
    audio_out, face_out = [], []
    batches = range(0, n, batch_size)  # a progress bar on a terminal: a long clip on a CPU takes minutes
    for i in tqdm(batches, desc="embedding windows", unit="batch", disable=None, leave=False):
        stop = min(i + batch_size, n)
        face_windows = sync_face_windows(to_input(faces[i : stop + window - 1]).to(device), window)
        a, v = syncnet(audio_windows[i:stop].to(device), face_windows)
        audio_out.append(a.float().cpu())
        face_out.append(v.float().cpu())
    if not audio_out:
        return torch.zeros(0, 512), torch.zeros(0, 512)
    return torch.cat(audio_out), torch.cat(face_out)
