"""Cost of the marking pipeline per output: prints a table (median of N runs, wall-clock, this machine).

    python benchmarks/provenance_cost.py

Runs in a temporary DEEPFAKE_DATA_DIR / DEEPFAKE_CONFIG_DIR so it never touches the user's ledger or keys
(removed at the end: it holds a fresh key set).
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from skimage import data


def _tracking(rgb: np.ndarray):
    """One GridTracker step on ``rgb``, matched against an anchor (as every video frame after the first)."""
    from consent_and_watermark.watermark_image import GridTracker

    tracker = GridTracker()
    tracker(rgb)
    return lambda: tracker(rgb)


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    argparse.ArgumentParser(description=__doc__, formatter_class=formatter).parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="provenance-bench-"))
    atexit.register(shutil.rmtree, tmp, True)
    os.environ["DEEPFAKE_DATA_DIR"], os.environ["DEEPFAKE_CONFIG_DIR"] = (
        str(tmp / "data"),
        str(tmp / "config"),
    )
    from consent_and_watermark import c2pa_sign, encode, watermark_audio, watermark_image, writer
    from consent_and_watermark.keys import load_keys, medium_key
    from consent_and_watermark.label import draw_label
    from consent_and_watermark.metadata import SyntheticInfo, image_fields
    from consent_and_watermark.verify import verify

    keys = load_keys()
    key = medium_key(keys, "image")
    small = np.ascontiguousarray(data.astronaut()[:256, :256])
    hd = np.ascontiguousarray(np.resize(data.astronaut(), (720, 1280, 3)))
    clip = np.stack([data.astronaut()[100:356, 4 * t : 4 * t + 256] for t in range(30)])
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(16000 * 10)).astype(np.float32)
    marked = list(watermark_image.embed_video(clip, 1, key))
    facts = c2pa_sign.ManifestFacts(title="x.png", payload=1)
    rows = []
    for name, rgb in (("256x256", small), ("1280x720", hd)):
        png = encode.encode_image(tmp / "raw.png", rgb).read_bytes()
        rows += [
            (f"label {name}", _median_ms(lambda rgb=rgb: draw_label(rgb), 10)),
            (f"watermark embed {name}", _median_ms(lambda rgb=rgb: watermark_image.embed(rgb, 1, key), 5)),
            (f"video grid tracking {name}", _median_ms(_tracking(rgb), 5)),
            (
                f"PNG encode + metadata {name}",
                _median_ms(
                    lambda rgb=rgb: encode.encode_image(tmp / "m.png", rgb, **image_fields(SyntheticInfo(1))),
                    5,
                ),
            ),
            (
                f"C2PA sign PNG {name}",
                _median_ms(lambda png=png: c2pa_sign.sign_bytes(png, "image/png", facts), 10),
            ),
            (
                f"save_image .png {name} (total)",
                _median_ms(lambda rgb=rgb: writer.save_image(tmp / "o.png", rgb), 5),
            ),
            (
                f"save_image .jpg {name} (total)",
                _median_ms(lambda rgb=rgb: writer.save_image(tmp / "o.jpg", rgb), 5),
            ),
            (f"verify .png {name}", _median_ms(lambda: verify(tmp / "o.png"), 5)),
        ]
    rows += [
        ("save_video 30x256x256 (total)", _median_ms(lambda: writer.save_video(tmp / "v.mp4", clip, 25), 3)),
        (
            "encode_mp4 alone, unmarked frames",
            _median_ms(lambda: encode.encode_mp4(tmp / "e.mp4", clip, 25), 3),
        ),
        (
            "encode_mp4 alone, watermarked frames",
            _median_ms(lambda: encode.encode_mp4(tmp / "e.mp4", marked, 25), 3),
        ),
        ("verify 30x256x256 mp4", _median_ms(lambda: verify(tmp / "v.mp4"), 3)),
        (
            "audio watermark embed 10 s @16 kHz",
            _median_ms(lambda: watermark_audio.embed(audio, 16000, 1, medium_key(keys, "audio")), 3),
        ),
        (
            "save_audio 10 s @16 kHz (total)",
            _median_ms(lambda: writer.save_audio(tmp / "a.wav", audio, 16000), 3),
        ),
        ("verify 10 s wav", _median_ms(lambda: verify(tmp / "a.wav"), 3)),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'step':<{width}}  median ms")
    for label, ms in rows:
        print(f"{label:<{width}}  {ms:9.1f}")


if __name__ == "__main__":
    main()
