"""Only ``consent_and_watermark`` may write media: every other module goes through ``writer``.

A regex scan of the repository's .py files (outside ``consent_and_watermark/``, ``tests/`` and
``.venv/``) for the calls that write images, video or audio directly. A line that writes only to an
in-memory buffer (e.g. a benchmark's JPEG attack) can opt out with the comment ``# media-write-ok``
followed by the reason.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXCLUDED_DIRS = {"consent_and_watermark", "tests", ".venv", ".git", "outputs", "__pycache__"}
ALLOW_COMMENT = "# media-write-ok"

FORBIDDEN = {
    "cv2.imwrite": r"\bcv2\.imwrite\s*\(",
    "cv2.VideoWriter": r"\bVideoWriter(_fourcc)?\s*\(",
    # one level of nested parentheses, across lines: av.open(str(path),\n mode="w")
    "PyAV output": r"\bav\.open\s*\((?:[^()]|\([^()]*\))*?(['\"]w['\"]|mode\s*=\s*['\"]w)",
    "imageio write": r"\b(imageio|iio|imageio\.v2|imageio\.v3)\."
    r"(imwrite|mimwrite|imsave|mimsave|get_writer)\s*\(",
    "imageio-ffmpeg writer": r"\bwrite_frames\s*\(",
    "soundfile write": r"\b(soundfile|sf)\.write\s*\(",
    "scipy wavfile write": r"\bwavfile\.write\s*\(",
    "torchaudio save": r"\btorchaudio\.save\s*\(",
    "torchvision save_image": r"(\b(utils|vutils|torchvision\.utils)\.save_image\s*\("
    r"|from\s+torchvision\.utils\s+import[^\n]*\bsave_image\b)",
    "matplotlib savefig/imsave": r"(\.savefig\s*\(|\bplt\.imsave\s*\()",
    "skimage imsave": r"\b(io|skimage\.io)\.imsave\s*\(",
    "ffmpeg subprocess": r"\bsubprocess\.\w+\s*\(\s*\[\s*['\"]ffmpeg['\"]",
}
# PIL's Image.save: in a file that imports PIL, any `.save(` that is not torch.save / np.save.
PIL_IMPORT = re.compile(r"^\s*(from\s+PIL\b|import\s+PIL\b)", re.MULTILINE)
PIL_SAVE = re.compile(r"(?<![\w.])(?!torch\.|np\.|numpy\.)[\w.\])]*\.save\s*\(")
PATTERNS = {name: re.compile(pattern) for name, pattern in FORBIDDEN.items()}


def offending_lines(source: str) -> list[tuple[int, str, str]]:
    """``(line number, rule, line)`` for every direct media write in ``source``."""
    lines = source.splitlines()
    # Comments never count; a line with the opt-out comment is blanked (kept, so numbers stay right).
    code = "\n".join("" if ALLOW_COMMENT in line else line.split("#", 1)[0] for line in lines)
    rules = dict(PATTERNS)
    if PIL_IMPORT.search(source):
        rules["PIL Image.save"] = PIL_SAVE
    found = []
    for name, pattern in rules.items():
        for match in pattern.finditer(code):
            number = code.count("\n", 0, match.start()) + 1
            found.append((number, name, lines[number - 1].strip()))
    return sorted(found)


def _python_files() -> list[Path]:
    """Every .py file of the repository, pruning the excluded folders while walking (.venv is big)."""
    files = []
    for folder, subdirs, names in os.walk(REPO):
        subdirs[:] = [d for d in subdirs if d not in EXCLUDED_DIRS and not d.startswith(".")]
        files += [Path(folder) / name for name in names if name.endswith(".py")]
    return files


@pytest.mark.parametrize(
    "line",
    [
        "cv2.imwrite('out.png', img)",
        "writer = cv2.VideoWriter(path, fourcc, 25, (w, h))",
        "with av.open(str(path), mode='w') as c:",
        "container = av.open(\n    str(tmp),\n    mode='w',\n)",
        'container = av.open(path, "w")',
        "imageio.mimwrite('a.mp4', frames)",
        "iio.imwrite('a.png', img)",
        "sf.write('a.wav', x, 16000)",
        "soundfile.write(path, audio, sr)",
        "wavfile.write('a.wav', 16000, x)",
        "torchaudio.save('a.wav', wav, 16000)",
        "vutils.save_image(grid, 'grid.png')",
        "from torchvision.utils import make_grid, save_image",
        "fig.savefig('loss.png')",
        "plt.imsave('a.png', img)",
        "skimage.io.imsave('a.png', img)",
        "subprocess.run(['ffmpeg', '-i', src, dst])",
    ],
)
def test_the_patterns_catch_direct_writes(line):
    assert offending_lines(line), line


def test_pil_saves_are_caught_only_where_pil_is_imported():
    source = "from PIL import Image\nImage.fromarray(rgb).save('a.png')\nimg.save(path)\n"
    assert [n for n, _, _ in offending_lines(source)] == [2, 3]
    assert offending_lines("checkpointer.save(step)\n") == []


@pytest.mark.parametrize(
    "line",
    [
        "from PIL import Image\ntorch.save(state, path)",
        "from PIL import Image\nnp.save(path, array)",
        "writer.save_image(path, rgb)",
        "save_video(path, frames, fps)",
        "with av.open(str(path)) as container:",
        "frames = iio.imread('a.png')",
        "x, sr = sf.read(path)",
        "# never call cv2.imwrite here",
        "Image.fromarray(x).save(buffer, format='JPEG')  # media-write-ok: in-memory JPEG attack",
    ],
)
def test_the_patterns_leave_other_code_alone(line):
    assert offending_lines(line) == [], line


def test_no_module_outside_consent_and_watermark_writes_media():
    offences = [
        f"{path.relative_to(REPO)}:{number}: {rule}: {line}"
        for path in _python_files()
        for number, rule, line in offending_lines(path.read_text(encoding="utf-8", errors="replace"))
    ]
    assert not offences, "write media through consent_and_watermark.writer instead:\n" + "\n".join(offences)
