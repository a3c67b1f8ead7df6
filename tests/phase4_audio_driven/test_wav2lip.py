"""Wav2Lip generator and losses: both input layouts, time-major folding, the expert loss and schedule."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from common.impl import load


@pytest.fixture(scope="module")
def w2l():
    return load("phase4_audio_driven", "wav2lip")


@pytest.fixture(scope="module")
def generator(w2l):
    torch.manual_seed(0)
    return w2l.Wav2Lip().eval()


@pytest.mark.todo("p4.w2l.fold")
def test_fold_unfold_time_major(w2l):
    b, t = 2, 3
    audio = torch.arange(b * t, dtype=torch.float32).view(b, t, 1, 1, 1).expand(b, t, 1, 80, 16)
    faces = torch.arange(b * t, dtype=torch.float32).view(b, 1, t, 1, 1).expand(b, 6, t, 8, 8)
    a2, f2 = w2l.fold_time(audio, faces)
    assert a2.shape == (t * b, 1, 80, 16) and f2.shape == (t * b, 6, 8, 8)
    for ti in range(t):
        for bi in range(b):  # item t*B + b is frame t of sample b
            assert a2[ti * b + bi, 0, 0, 0].item() == bi * t + ti
            assert f2[ti * b + bi, 0, 0, 0].item() == bi * t + ti
    x = torch.rand(b, 3, t, 8, 8)
    folded = torch.cat([x[:, :, i] for i in range(t)])
    torch.testing.assert_close(w2l.unfold_time(folded, b), x)
    _, f3 = w2l.fold_time(torch.zeros(b, t, 1, 80, 16), x)
    torch.testing.assert_close(w2l.unfold_time(f3, b), x)


@pytest.mark.todo("p4.w2l.forward")
def test_generator_shapes_inference_layout(generator):
    with torch.no_grad():
        out = generator(torch.randn(2, 1, 80, 16), torch.rand(2, 6, 96, 96))
    assert out.shape == (2, 3, 96, 96)
    assert (out >= 0).all() and (out <= 1).all()


@pytest.mark.todo("p4.w2l.forward", "p4.w2l.fold")
def test_generator_shapes_training_layout(generator):
    audio, faces = torch.randn(1, 3, 1, 80, 16), torch.rand(1, 6, 3, 96, 96)
    with torch.no_grad():
        out = generator(audio, faces)
        per_frame = generator(audio[:, 1], faces[:, :, 1])  # eval mode: frames are independent
    assert out.shape == (1, 3, 3, 96, 96)
    torch.testing.assert_close(out[:, :, 1], per_frame, atol=1e-5, rtol=1e-4)


@pytest.mark.todo("p4.w2l.sync_loss", "p4.sync.embed", "p4.sync.loss")
def test_expert_sync_loss_reaches_generator_only(w2l):
    ls = load("phase4_audio_driven", "lip_sync")
    torch.manual_seed(1)
    expert = ls.SyncNet().eval()
    for p in expert.parameters():
        p.requires_grad_(False)
    mel = torch.randn(1, 1, 80, 16)
    generated = torch.rand(1, 3, 5, 96, 96, requires_grad=True)
    loss = w2l.expert_sync_loss(expert, mel, generated)
    loss.backward()
    # closed form: -log cos(a, v) on the lower halves, frames on channels frame-major
    x = torch.cat([generated.detach()[:, :, t, 48:] for t in range(5)], dim=1)
    a, v = expert(mel, x)
    assert loss.item() == pytest.approx(-torch.log(F.cosine_similarity(a, v)).item(), rel=1e-5)
    assert generated.grad is not None and generated.grad[:, :, :, 48:].abs().sum() > 0
    assert generated.grad[:, :, :, :48].abs().sum() == 0  # the upper half is not judged
    assert all(p.grad is None for p in expert.parameters())


@pytest.mark.todo("p4.w2l.schedule")
def test_sync_weight_schedule(w2l):
    assert w2l.sync_weight(0.0, None) == 0.0
    assert w2l.sync_weight(0.0, 0.9) == 0.0
    assert w2l.sync_weight(0.0, 0.7) == pytest.approx(0.03)
    assert w2l.sync_weight(0.03, 2.0) == pytest.approx(0.03)  # once on, stays on
    assert w2l.sync_weight(0.03, None) == pytest.approx(0.03)


@pytest.mark.todo("p4.w2l.schedule")
def test_sync_weight_schedule_follows_cfg(w2l):
    """train.py's --sync-threshold and --sync-weight reach the schedule through `cfg`, not the defaults."""
    cfg = w2l.LossConfig(sync_weight_final=0.05, sync_threshold=1.5)
    assert w2l.sync_weight(0.0, None, cfg) == 0.0
    assert w2l.sync_weight(0.0, 1.6, cfg) == 0.0
    assert w2l.sync_weight(0.0, 1.0, cfg) == pytest.approx(0.05)  # above 0.75, below this threshold
    assert w2l.sync_weight(0.05, 2.0, cfg) == pytest.approx(0.05)  # once on, stays on at cfg's weight
    assert w2l.sync_weight(0.05, None, cfg) == pytest.approx(0.05)
    strict = w2l.LossConfig(sync_threshold=0.5)
    assert w2l.sync_weight(0.0, 0.6, strict) == 0.0  # below 0.75 but not below this threshold
    assert w2l.sync_weight(0.0, 0.4, strict) == pytest.approx(0.03)
    always = w2l.LossConfig(sync_threshold=float("inf"))  # the demo's setting: on at the first check
    assert w2l.sync_weight(0.0, 100.0, always) == pytest.approx(0.03)


def test_generator_loss_weights(w2l):
    g, t = torch.full((1, 3, 5, 4, 4), 0.5), torch.zeros(1, 3, 5, 4, 4)
    sync = torch.tensor(2.0)
    prob = torch.full((5, 1), 0.5)
    out = w2l.generator_loss(g, t, sync, prob, s_w=0.03)
    perceptual = -torch.log(torch.tensor(0.5))
    want = 0.03 * 2.0 + 0.07 * perceptual + (1 - 0.03 - 0.07) * 0.5
    assert out["total"].item() == pytest.approx(want.item(), rel=1e-6)
    assert w2l.generator_loss(g, t, sync, None, s_w=0.0)["total"].item() == pytest.approx(0.5)


def test_generator_loss_mouth_weight(w2l):
    g, t = torch.zeros(1, 3, 5, 4, 4), torch.zeros(1, 3, 5, 4, 4)
    g[:, :, :, 2:] = 0.6  # an error of 0.6 on the lower half only
    published = w2l.generator_loss(g, t, torch.tensor(0.0), None, s_w=0.0)
    assert published["total"].item() == pytest.approx(0.3)  # plain L1 (mouth_weight 1)
    cfg = w2l.LossConfig(mouth_weight=3.0)
    out = w2l.generator_loss(g, t, torch.tensor(0.0), None, s_w=0.0, cfg=cfg)
    # row weights 1 (upper) and 3 (lower), divided by their mean 2: 0.6 * 1.5 / 2 on average
    assert out["total"].item() == pytest.approx(0.45)
    assert out["l1"].item() == pytest.approx(0.3)  # the logged L1 stays the plain one
    upper = torch.zeros_like(g)
    upper[:, :, :, :2] = 0.6
    upper_total = w2l.generator_loss(upper, t, torch.tensor(0.0), None, 0.0, cfg)["total"]
    assert upper_total.item() == pytest.approx(0.15)  # 0.6 * 0.5 / 2



def test_channel_widths_scale_round_and_keep_at_least_four(w2l):
    from common.impl import load

    blocks = load("phase4_audio_driven", "blocks")
    assert blocks.channels(512) == 512 and blocks.channels(16, 1.0) == 16
    assert blocks.channels(512, 0.25) == 128 and blocks.channels(96, 0.3) == 29  # round(28.8)
    assert blocks.channels(16, 0.25) == 4 and blocks.channels(16, 0.1) == 4  # round(1.6) = 2 -> 4


def test_discriminator_loss_is_bce_real_one_fake_zero_without_generator_gradient(w2l):
    torch.manual_seed(0)
    disc = w2l.Wav2LipDiscQual(width=0.0625)
    target = torch.rand(1, 3, 2, 96, 96)
    generated = torch.rand(1, 3, 2, 96, 96, requires_grad=True)
    loss = w2l.discriminator_loss(disc, generated, target)
    with torch.no_grad():
        p_real, p_fake = disc(target), disc(generated)
    want = -torch.log(p_real).mean() - torch.log(1 - p_fake).mean()
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)
    loss.backward()
    assert generated.grad is None  # the generator's output is detached for the discriminator's step
    assert all(p.grad is not None for p in disc.parameters())
