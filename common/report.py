"""Items of the `make demo` HTML report (`outputs/index.html`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal


@dataclass
class ReportItem:
    """One picture, clip, sound or paragraph in the demo report."""

    title: str
    path: Path | None
    kind: Literal["image", "video", "audio", "text"] = "image"
    caption: str = ""
