"""SyncNet expert: shapes, unit-length embeddings, the sign of its loss and the LSE offset search."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from common.impl import load


@pytest.fixture(scope="module")
def ls():
    return load("phase4_audio_driven", "lip_sync")


@pytest.fixture(scope="module")
def syncnet(ls):
    torch.manual_seed(0)
    return ls.SyncNet().eval()


@pytest.mark.todo("p4.sync.embed")
def test_syncnet_shapes_and_unit_norm(syncnet):
    audio = torch.rand(2, 1, 80, 16) * 8 - 4
    faces = torch.rand(2, 15, 48, 96)
    with torch.no_grad():
        a, v = syncnet(audio, faces)
    assert a.shape == (2, 512) and v.shape == (2, 512)
    torch.testing.assert_close(a.norm(dim=1), torch.ones(2))
    torch.testing.assert_close(v.norm(dim=1), torch.ones(2))
    assert (a >= 0).all() and (v >= 0).all()  # ReLU embeddings: the cosine is in [0, 1]
    with torch.no_grad():  # the audio embedding depends on the audio only
        a2, _ = syncnet(audio, torch.rand(2, 15, 48, 96))
    torch.testing.assert_close(a, a2)


@pytest.mark.todo("p4.sync.loss")
def test_sync_loss_sign(ls):
    e = torch.nn.functional.normalize(torch.rand(4, 512), dim=1)
    ones, zeros = torch.ones(4, 1), torch.zeros(4, 1)
    assert ls.sync_loss(e, e, ones).item() < 1e-4  # identical embeddings, in sync -> ~0
    assert ls.sync_loss(e, e, zeros).item() > 10  # identical but labelled off-sync -> large
    a = torch.zeros(2, 4)
    a[:, 0] = 1
    v = torch.tensor([[0.6, 0.8, 0, 0], [0, 1.0, 0, 0]])  # cosines 0.6 and 0 (clamped in BCE)
    want = -np.log(0.6)  # closed form for the first row, label 1
    assert abs(ls.sync_loss(a[:1], v[:1], ones[:1]).item() - want) < 1e-5
    assert ls.sync_loss(a[1:], v[1:], zeros[:1]).item() < 1e-6  # orthogonal, labelled off-sync -> 0


def pdist_reference(face: np.ndarray, audio: np.ndarray, vshift: int) -> np.ndarray:
    """Mean distance per shift, with loops: audio frame i + k vs face frame i, where both exist."""
    n = len(face)
    out = []
    for k in range(-vshift, vshift + 1):
        out.append(np.mean([np.linalg.norm(face[i] - audio[i + k]) for i in range(n) if 0 <= i + k < n]))
    return np.array(out)


@pytest.mark.todo("p4.sync.lse")
@pytest.mark.parametrize("lag", [0, 4, -6])
def test_offset_search_finds_shift(ls, lag):
    rng = np.random.default_rng(3)
    n, vshift = 50, 15
    audio = rng.random((n, 32))
    audio /= np.linalg.norm(audio, axis=1, keepdims=True)
    face = rng.random((n, 32))
    face /= np.linalg.norm(face, axis=1, keepdims=True)
    for i in range(n):  # the face at frame i shows what was said at frame i - lag
        if 0 <= i - lag < n:
            face[i] = audio[i - lag] + 0.01 * rng.standard_normal(32)
    scores = ls.offset_search(torch.from_numpy(audio), torch.from_numpy(face), vshift=vshift)
    want = pdist_reference(face, audio, vshift)
    np.testing.assert_allclose(scores.mean_dists, want, rtol=1e-9, atol=1e-12)
    assert scores.offset == lag
    assert scores.lse_d == pytest.approx(want.min())
    assert scores.lse_c == pytest.approx(np.median(want) - want.min())
    assert scores.lse_c > 0.2


def _window_by_hand(syncnet, faces: torch.Tensor, mel: np.ndarray, i: int) -> tuple[torch.Tensor, ...]:
    """SyncNet on window i of a 25 fps clip, built here: the lower halves of frames i..i+4 stacked on the
    channels (frame by frame), and the 16 mel columns from 80 * i / 25 (80 columns a second)."""
    face = torch.cat([faces[i + k, :, 48:] for k in range(5)])[None]  # (1, 15, 48, 96)
    start = i * 80 // 25
    audio = torch.from_numpy(np.ascontiguousarray(mel[:, start : start + 16]))[None, None]  # (1, 1, 80, 16)
    with torch.no_grad():
        a, v = syncnet(audio, face)
    return a[0], v[0]


def _random_mel(columns: int, seed: int) -> np.ndarray:
    """(80, columns) float32 in the spectrogram's range [-4, 4]."""
    return np.random.default_rng(seed).uniform(-4, 4, (80, columns)).astype(np.float32)


@pytest.mark.todo("p4.sync.embed")
def test_clip_embeddings_one_per_window(ls, syncnet):
    torch.manual_seed(1)
    faces = torch.rand(9, 3, 96, 96)  # 9 frames -> 5 windows of 5 frames
    mel = _random_mel(9 * 80 // 25 + 16, seed=1)
    a, v = ls.clip_embeddings(syncnet, faces, mel, fps=25.0)
    assert a.shape == v.shape == (5, 512)
    for i in range(5):  # row i is window i: its own frames and its own slice of the audio
        want_a, want_v = _window_by_hand(syncnet, faces, mel, i)
        torch.testing.assert_close(a[i], want_a, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(v[i], want_v, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(a[0], a[1]) and not torch.allclose(v[0], v[1])  # the windows differ


@pytest.mark.todo("p4.sync.embed")
def test_clip_embeddings_stop_where_the_audio_ends(ls, syncnet):
    torch.manual_seed(2)
    faces = torch.rand(70, 3, 96, 96)  # 66 windows (more than one batch of 64) ...
    mel = _random_mel(40 * 80 // 25 + 16, seed=2)  # ... audio for the first 41 only
    a, v = ls.clip_embeddings(syncnet, faces, mel, fps=25.0, batch_size=16)
    assert a.shape == v.shape == (41, 512)
    for i in (0, 15, 16, 40):  # either side of a batch boundary, and the last window the audio covers
        want_a, want_v = _window_by_hand(syncnet, faces, mel, i)
        torch.testing.assert_close(a[i], want_a, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(v[i], want_v, rtol=1e-4, atol=1e-5)


@pytest.mark.todo("p4.sync.embed")
def test_clip_embeddings_of_uint8_crops_equal_the_whole_clip_computed_at_once(ls, syncnet):
    """Windows built a batch at a time from uint8 crops (`to_input`) give what the straightforward
    computation gives: every window of the whole clip's floats built first, then embedded batch by batch."""
    from phase4_audio_driven.pipeline import to_network

    crops = np.random.default_rng(4).integers(0, 256, (40, 96, 96, 3), dtype=np.uint8)
    mel = _random_mel(30 * 80 // 25 + 16, seed=4)  # audio for the first 31 of the 36 windows
    a, v = ls.clip_embeddings(syncnet, crops, mel, fps=25.0, batch_size=8, to_input=to_network)
    windows = ls.sync_face_windows(to_network(crops))  # (36, 15, 48, 96): all at once
    audio = ls.sync_audio_windows(mel, len(windows), fps=25.0)
    assert a.shape == v.shape == (len(audio), 512) == (31, 512)
    with torch.no_grad():
        n = len(audio)
        pairs = [syncnet(audio[i : i + 8], windows[i : min(i + 8, n)]) for i in range(0, n, 8)]
    torch.testing.assert_close(a, torch.cat([p[0] for p in pairs]), rtol=0, atol=0)
    torch.testing.assert_close(v, torch.cat([p[1] for p in pairs]), rtol=0, atol=0)


@pytest.mark.todo("p4.sync.lse")
def test_offset_search_needs_more_frames_than_the_shift(ls):
    """With n = vshift frames the extreme shifts leave no frame pair: refuse, rather than average nothing."""
    emb = torch.nn.functional.normalize(torch.rand(15, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    with pytest.raises(ValueError, match="need more than 15 frames"):
        ls.offset_search(emb, emb, vshift=15)
    assert ls.offset_search(emb, emb, vshift=14).offset == 0
