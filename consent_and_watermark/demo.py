"""`make demo` stage: how every output of this project is marked, and how the mark is read back.

1. The mark: a synthetic face (a person who does not exist) before and after marking, the change
   amplified, one period of the tiled pattern, and where its energy sits in the spectrum (pilot and
   payload coefficients in a mid-frequency ring).
2. What the blind detector sees: the whitened luminance folded onto one tile, and the pilot's phase
   correlation over every cyclic shift: a sharp peak where the tile grid sits on the marked face,
   noise on the unmarked one.
3. What edits cost: the share of payload chips read wrong after ten of the robustness benchmark's still
   edits (`consent_and_watermark.attacks`) and H.264 at CRF 23 and 28, against the share the
   false-positive bound tolerates.
4. The audio mark: the keyed chip pattern of one 2.56-s period and the detector's folded reading of
   marked synthetic speech.
5. `verify` on one of these pictures: watermark, metadata, C2PA manifest and provenance row.

Nothing is trained: the stage takes a few seconds. The figures use this install's own keys, so they
show the mark every other stage writes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from common.metrics import psnr
from common.report import ReportItem
from common.synthetic import make_identity, render_clip, synthesize_speech
from consent_and_watermark import attacks, writer
from consent_and_watermark import watermark_audio as wa
from consent_and_watermark import watermark_image as wm
from consent_and_watermark.detection import min_matches
from consent_and_watermark.ecc import PAYLOAD_BITS
from consent_and_watermark.keys import load_keys, medium_key
from consent_and_watermark.verify import format_report, verify

FACE_SEED = 2101  # a held-out synthetic person (in no training set)
SIZE = 256  # the small-frame case: informed embedding, the inverted mask, the strength rule
PAYLOAD = 0x5EED_F00D_0000_0001  # what the pictures carry; real outputs carry (row, time) payloads
EDITS = ["none", "jpeg90", "jpeg50", "resize0.5+back", "crop75%", "crop75%+resize", "noise5", "blur3x3",
         "rotate2", "hflip"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def anatomy_figure(face: np.ndarray, marked: np.ndarray, key: bytes):
    """Original | marked | the change x 20 | one period of the plain tile | the tile's carriers."""
    plt = _plt()
    change = marked.astype(np.int16) - face.astype(np.int16)  # (H, W, 3), the same on R, G and B
    tile = wm._tile(key, PAYLOAD, wm.CONFIG)  # (T, T) unit-RMS plain tile (small frames shape it further)
    carriers = wm.carrier_map(key)  # (T, T/2+1)
    fig, axes = plt.subplots(1, 5, figsize=(15, 3.4))
    panels = [
        (face, "synthetic face, 256 px"),
        (marked, f"marked ({psnr(face, marked):.1f} dB PSNR)"),
        (np.clip(128 + 20 * change, 0, 255).astype(np.uint8), "the change, x 20"),
    ]
    for ax, (image, title) in zip(axes, panels, strict=False):
        ax.imshow(image)
        ax.set_title(title, fontsize=9)
    axes[3].imshow(tile, cmap="gray")
    axes[3].set_title(f"one {wm.CONFIG.tile} x {wm.CONFIG.tile} period, tiled", fontsize=9)
    colours = np.array([[1.0, 1.0, 1.0], [0.85, 0.2, 0.2], [0.2, 0.35, 0.85]])[carriers]  # (T, T/2+1, 3)
    freq = np.fft.fftshift(colours, axes=0)  # zero frequency in the middle row
    axes[4].imshow(freq, extent=(0, 0.5, -0.5, 0.5), aspect="auto")
    axes[4].set_title("spectrum: pilot (red), payload (blue)", fontsize=9)
    axes[4].set_xlabel("cycles / pixel", fontsize=8)
    for ax in axes[:4]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def reading_figure(marked: np.ndarray, face: np.ndarray, key: bytes):
    """Top: the marked face's fold and pilot correlation; bottom: the same for the unmarked face."""
    plt = _plt()
    fig, axes = plt.subplots(2, 3, figsize=(11, 7))
    for row, (image, name) in enumerate([(marked, "marked"), (face, "unmarked")]):
        r = wm.read(image, key)
        axes[row, 0].imshow(r.whitened, cmap="gray", vmin=-2, vmax=2)
        axes[row, 0].set_title(f"{name}: whitened luminance", fontsize=9)
        axes[row, 1].imshow(r.fold, cmap="gray")
        axes[row, 1].set_title("folded onto one tile (blocks summed)", fontsize=9)
        axes[row, 2].imshow(np.fft.fftshift(r.correlation), cmap="magma")
        axes[row, 2].set_title(f"pilot correlation: peak z = {r.peak_z:.1f}", fontsize=9)
        for ax in axes[row]:
            ax.axis("off")
    fig.tight_layout()
    return fig


def edits_figure(marked: np.ndarray, face: np.ndarray, clip: np.ndarray, key: bytes):
    """Share of chips read wrong per edit (and for H.264 clips), against the bound's limit."""
    plt = _plt()
    rng = np.random.default_rng(0)
    rows = []  # (name, chip error rate, detected with the right payload)
    for name in EDITS:
        found = wm.detect(attacks.ATTACKS[name](marked, rng), key)
        rows.append((name, found.bit_errors / found.n_bits, found.detected and found.payload == PAYLOAD))
    marked_clip = list(wm.embed_video(clip, PAYLOAD, key))  # every frame, as the writer marks a video
    for crf in (23, 28):
        found = wm.detect_video(attacks.h264_round_trip(marked_clip, crf), key)
        rows.append((f"H.264 CRF {crf}", found.bit_errors / found.n_bits,
                     found.detected and found.payload == PAYLOAD))
    unmarked = wm.detect(face, key)
    rows.append(("unmarked", unmarked.bit_errors / unmarked.n_bits, unmarked.detected))
    n = unmarked.n_bits
    limit = 1 - min_matches(n, 2 * wm.N_CANDIDATES, PAYLOAD_BITS) / n  # a still image's bound
    fig, ax = plt.subplots(figsize=(10, 3.8))
    colours = ["tab:green" if ok else "tab:gray" for _, _, ok in rows]
    ax.bar(range(len(rows)), [rate for _, rate, _ in rows], color=colours)
    ax.axhline(limit, color="tab:red", ls="--", lw=1)
    ax.text(len(rows) - 0.5, limit + 0.01, f"bound's limit {limit:.3f} (FPR < 1e-6)", color="tab:red",
            ha="right", fontsize=8)
    ax.set_xticks(range(len(rows)), [name for name, _, _ in rows], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("chips read wrong")
    ax.set_ylim(0, 0.55)
    ax.set_title("green: detected with the right payload; grey: not detected", fontsize=9)
    fig.tight_layout()
    return fig, rows


def audio_figure(speech: np.ndarray, rate: int, key: bytes):
    """The keyed chips of one period next to the detector's folded reading of marked speech."""
    plt = _plt()
    lay = wa._layout(key, wa.CONFIG)
    chips = lay.pilot.copy()  # (bands, period): pilot chips +-1, payload cells 0 for now
    chips[lay.data_cells] = lay.code.chips(PAYLOAD)
    marked = wa.embed(speech, rate, PAYLOAD, key)
    # (bands, period) the detector's cell readings on the embedder's grid (the mark starts at sample 0)
    reading = wa._cell_readings(wa._to_internal(marked, rate, wa.CONFIG.rate), wa.CONFIG, lay)
    agree = np.mean(np.sign(reading) == chips)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
    axes[0].imshow(chips, cmap="coolwarm", aspect="auto", origin="lower", vmin=-1.5, vmax=1.5)
    axes[0].set_title("chips of one 2.56 s period (24 sub-bands x 40 blocks of 64 ms)", fontsize=9)
    limit = np.percentile(np.abs(reading), 95)
    axes[1].imshow(reading, cmap="coolwarm", aspect="auto", origin="lower", vmin=-limit, vmax=limit)
    axes[1].set_title(f"folded reading of marked speech: {agree:.0%} of cells agree", fontsize=9)
    for ax in axes:
        ax.set_xlabel("block in the period")
        ax.set_ylabel("sub-band (300-3400 Hz)")
    fig.tight_layout()
    return fig


def run_stage(out_dir: Path, quick: bool = True) -> list[ReportItem]:
    """Draw the pictures above into ``out_dir`` (each through the writer, so each is marked itself)."""
    out_dir = Path(out_dir)
    keys = load_keys()
    image_key, audio_key = medium_key(keys, "image"), medium_key(keys, "audio")
    clip = render_clip(make_identity(FACE_SEED), frames=30 if quick else 60, size=SIZE).frames
    face = clip[0]
    marked = wm.embed(face, PAYLOAD, image_key)

    anatomy = writer.save_figure(anatomy_figure(face, marked, image_key), out_dir / "watermark_anatomy.png")
    reading = writer.save_figure(reading_figure(marked, face, image_key), out_dir / "watermark_reading.png")
    fig, rows = edits_figure(marked, face, clip, image_key)
    edits = writer.save_figure(fig, out_dir / "watermark_edits.png")
    speech = synthesize_speech(6.0, seed=7)
    fig = audio_figure(speech.samples, speech.sample_rate, audio_key)
    audio = writer.save_figure(fig, out_dir / "audio_watermark.png")
    sound = writer.save_audio(out_dir / "marked_speech.wav", speech.samples, speech.sample_rate)
    report = format_report(verify(edits))

    lost = [name for name, _, ok in rows if not ok and name != "unmarked"]
    return [
        ReportItem("The invisible mark", anatomy, "image",
                   "A 64-bit payload, coded and keyed, spread over a 128-px pattern that repeats across the "
                   "frame. On small frames like this one the chips are shaped to the picture (informed "
                   "embedding) and the mark goes where the picture is flat, where the detector listens."),
        ReportItem("What the detector sees", reading, "image",
                   "No original needed: the detector whitens the luminance, folds it onto one tile (the mark "
                   "adds up, the picture does not) and finds the grid with the keyed pilot."),
        ReportItem("What edits cost", edits, "image",
                   "Chips read wrong against the decoded payload after each edit; a detection counts only "
                   "if the binomial bound puts its false-positive rate below 1e-6. The unmarked face reads "
                   "close to the limit: the decoder always returns the codeword that fits best, and among "
                   "2^64 of them one agrees with ~61 % of any picture's chips by chance; the limit is set "
                   "just beyond what chance reaches. "
                   + (f"Lost here: {', '.join(lost)}." if lost else "Every edit here is survived.")),
        ReportItem("The audio mark", audio, "image",
                   "Speech band energies are modulated by +-0.5 dB in a keyed pattern that repeats every "
                   "2.56 s; the detector folds the periods and reads the signs."),
        ReportItem("Marked speech", sound, "audio",
                   "Synthetic speech with the audio mark at 25.5 dB SNR (and the metadata and manifest)."),
        ReportItem("verify on the chart above", None, "text",
                   f"python -m consent_and_watermark verify {edits.name} prints: " + " | ".join(
                       report.splitlines())),
    ]
