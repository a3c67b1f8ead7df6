"""One training step of the face swap, and the batches it eats.

Each step trains both identities through the shared encoder:

    for identity k in (A, B):
        input  = random_warp(random_affine(face_k))        # what the encoder sees
        target = random_affine(face_k)                     # what decoder_k must draw
        face_hat, mask_hat = decoder_k(encoder(input))
        loss_k = masked L1 (eyes/mouth x3) + SSIM + |mask_hat - landmark hull|^2

With `gan=True` (FaceSwap-GAN) the output is composited onto the warped input with the learned mask,
the mask is regularised instead of supervised, and a patch discriminator per identity adds an LSGAN
loss. The bookkeeping (checkpoints, previews, resume, Ctrl-C) is `common.training.train_loop`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from common.training import autocast, epoch_generator, grad_scaler
from solutions.phase1_face_swap.augment import AugmentConfig, random_affine, random_warp
from solutions.phase1_face_swap.autoencoder import FaceSwapAutoencoder
from solutions.phase1_face_swap.faceset import FaceSet
from solutions.phase1_face_swap.gan import PatchDiscriminator, composite, lsgan_losses, mask_regularisation
from solutions.phase1_face_swap.losses import face_weight_map, hull_mask, reconstruction_loss


@dataclass
class LossConfig:
    """Weights of the loss terms."""

    kind: str = "l1"  # "l1" or "mse"
    ssim_weight: float = 0.5
    eye_mouth_weight: float = 3.0
    mask_weight: float = 1.0  # supervision of the learned mask by the landmark hull (plain AE)
    adversarial_weight: float = 0.1  # GAN only
    mask_l1: float = 0.01  # GAN only: mask regularisation
    mask_tv: float = 0.1


def loss_maps(faces: FaceSet, eye_mouth_weight: float = 3.0) -> np.ndarray:
    """Per face: the loss weight map and the landmark hull mask, `(N, S, S, 2)` float32."""
    size = faces.size
    return np.stack([
        np.stack([face_weight_map(points, size, eye_mouth_weight), hull_mask(points, size)], axis=2)
        for points in faces.landmarks
    ])


def make_batch(faces: FaceSet, maps: np.ndarray, indices: np.ndarray, rng: np.random.Generator,
               aug: AugmentConfig) -> dict:
    """Augmented tensors for `indices` of one face set (`maps` from `loss_maps`).

    Returns `warped`, `target` (B, 3, S, S) in [0, 1]; `weight`, `hull` (B, 1, S, S).
    """
    warped, target, weight, hull = [], [], [], []
    for i in indices:
        crop, face_maps = random_affine([faces.crops[i].astype(np.float32) / 255, maps[i]], rng, aug)
        warped.append(random_warp(crop, rng, aug.warp_jitter, aug.warp_grid))
        target.append(crop)
        weight.append(face_maps[..., :1])
        hull.append(face_maps[..., 1:])
    to_t = lambda xs: torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).float().contiguous()  # noqa: E731
    return {"warped": to_t(warped), "target": to_t(target), "weight": to_t(weight), "hull": to_t(hull)}


def steps_per_epoch(sets: Sequence[FaceSet], batch_size: int) -> int:
    """Steps in one epoch: one pass over the larger face set (at least one step)."""
    return max(1, max(len(faces) for faces in sets) // batch_size)


class Batches:
    """`batches(epoch)` for the training loop: depends only on (seed, epoch), so resume is exact."""

    def __init__(self, sets: tuple[FaceSet, FaceSet], batch_size: int, seed: int,
                 aug: AugmentConfig | None = None, eye_mouth_weight: float = 3.0):
        self.sets, self.batch_size, self.seed = sets, batch_size, seed
        self.aug = aug or AugmentConfig()
        self.maps = [loss_maps(faces, eye_mouth_weight) for faces in sets]
        self.steps = steps_per_epoch(sets, batch_size)

    def __call__(self, epoch: int):
        seed = int(epoch_generator(self.seed, epoch).initial_seed())
        rng = np.random.default_rng(seed)
        for _ in range(self.steps):
            yield tuple(
                make_batch(faces, maps, rng.integers(0, len(faces), self.batch_size), rng, self.aug)
                for faces, maps in zip(self.sets, self.maps, strict=True)
            )


class FaceSwapTrainer:
    """The model, its optimizers and the step function (plain autoencoder or FaceSwap-GAN)."""

    def __init__(self, model: FaceSwapAutoencoder, device: torch.device, gan: bool = False,
                 lr: float = 2e-4, loss: LossConfig | None = None, precision: str = "fp32"):
        self.model = model.to(device)
        self.device, self.gan, self.precision = device, gan, precision
        self.loss = loss or LossConfig()
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.5, 0.999))
        self.discriminators = torch.nn.ModuleList(PatchDiscriminator() for _ in model.decoders).to(device)
        self.optimizer_d = torch.optim.Adam(self.discriminators.parameters(), lr=lr, betas=(0.5, 0.999))
        self.scaler = grad_scaler(device, precision)  # fp16 only: scales the losses (a no-op otherwise)

    def stateful(self) -> dict:
        """What the checkpoint stores (names become top-level checkpoint keys)."""
        objects = {"model": self.model, "optimizer": self.optimizer}
        if self.gan:
            objects.update(discriminators=self.discriminators, optimizer_d=self.optimizer_d)
        if self.scaler.is_enabled():
            objects["scaler"] = self.scaler
        return objects

    def _generator_loss(self, identity: int, batch: dict) -> tuple[torch.Tensor, dict, torch.Tensor]:
        cfg = self.loss
        face, mask = self.model(batch["warped"], identity)
        if self.gan:
            output = composite(face, mask, batch["warped"])
            weight = batch["weight"] + 0.1  # the composite covers the whole crop: count the background
            rec = reconstruction_loss(output, batch["target"], weight, cfg.ssim_weight, cfg.kind)
            _, adv = lsgan_losses(torch.ones(1), self.discriminators[identity](output))
            total = rec + cfg.adversarial_weight * adv + mask_regularisation(mask, cfg.mask_l1, cfg.mask_tv)
            return total, {"rec": rec.item(), "adv": adv.item()}, output
        rec = reconstruction_loss(face, batch["target"], batch["weight"], cfg.ssim_weight, cfg.kind)
        mask_loss = F.mse_loss(mask, batch["hull"])
        return rec + cfg.mask_weight * mask_loss, {"rec": rec.item(), "mask": mask_loss.item()}, face

    def step(self, batch: tuple[dict, dict], step: int = 0,
             reduce_gradients: Callable[[torch.nn.Module], None] | None = None) -> dict[str, float]:
        """One optimisation step on a batch of each identity; returns the metrics.

        `reduce_gradients(module)` runs between backward and the optimizer step (e.g. averaging the
        gradients of several processes). In fp16 it sees the scaled gradients: averaging is linear,
        and an overflow on one process then reaches all of them, so they all skip the step together.
        """
        self.model.train()
        batch = tuple({k: v.to(self.device) for k, v in b.items()} for b in batch)
        metrics: dict[str, float] = {}
        self.optimizer.zero_grad(set_to_none=True)
        outputs = []
        with autocast(self.device, self.precision):
            total = torch.zeros((), device=self.device)
            for identity, part in enumerate(batch):
                loss, parts, output = self._generator_loss(identity, part)
                total = total + loss
                outputs.append(output.detach())
                metrics.update({f"{name}_{'ab'[identity]}": value for name, value in parts.items()})
        self.scaler.scale(total).backward()
        if reduce_gradients is not None:
            reduce_gradients(self.model)
        self.scaler.step(self.optimizer)
        metrics["loss"] = total.item()
        if self.gan:
            self.optimizer_d.zero_grad(set_to_none=True)
            with autocast(self.device, self.precision):
                loss_d = sum(
                    lsgan_losses(disc(part["target"]), disc(fake))[0]
                    for disc, part, fake in zip(self.discriminators, batch, outputs, strict=True)
                )
            self.scaler.scale(loss_d).backward()
            if reduce_gradients is not None:
                reduce_gradients(self.discriminators)
            self.scaler.step(self.optimizer_d)
            metrics["loss_d"] = float(loss_d.item())
        self.scaler.update()
        return metrics

    @torch.no_grad()
    def preview(self, sets: tuple[FaceSet, FaceSet], count: int = 4) -> np.ndarray:
        """Rows per identity: input | reconstruction | swapped to the other identity (uint8 RGB grid)."""
        self.model.eval()
        rows = []
        for identity, faces in enumerate(sets):
            picks = np.linspace(0, len(faces) - 1, count).astype(int)
            x = torch.from_numpy(faces.crops[picks]).permute(0, 3, 1, 2).float().div(255).to(self.device)
            recon = self.model(x, identity)[0]
            swapped = self.model(x, 1 - identity)[0]
            for images in (x, recon, swapped):
                rows.append(torch.cat(list(images.float().cpu()), dim=2))  # (3, S, count * S)
        grid = torch.cat(rows, dim=1).clamp(0, 1)  # (3, 6 S, count * S)
        return (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
