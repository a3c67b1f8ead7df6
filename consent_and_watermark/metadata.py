"""Plain metadata that says "this is synthetic": written beside the pixels, read back by ``verify``.

The machine-readable statement is IPTC's *Digital Source Type* term ``trainedAlgorithmicMedia``
(https://cv.iptc.org/newscodes/digitalsourcetype/), the same term the C2PA manifest uses. Where it goes:

| format | where |
|---|---|
| PNG  | iTXt ``XML:com.adobe.xmp`` (XMP packet) + iTXt ``Description``/``Software``/``Comment`` |
| JPEG | APP1 XMP packet + EXIF ``ImageDescription``/``Software`` |
| MP4  | global tags ``title``, ``description``, ``comment`` (the ones FFmpeg's mp4 muxer keeps) |
| WAV  | RIFF ``LIST/INFO`` chunk: ``ICMT`` (comment), ``ISFT`` (software), ``INAM`` (title) |

Metadata is a label, not a seal: anyone can strip it (a Pillow or OpenCV re-save drops PNG/JPEG
metadata) or forge it. The watermark survives re-saves, the C2PA signature proves who wrote what.
"""

from __future__ import annotations

import datetime
import re
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import av
from PIL import Image, UnidentifiedImageError

TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
GENERATOR = "deepfake-creation"

_NS = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "Iptc4xmpExt": "http://iptc.org/std/Iptc4xmpExt/2008-02-29/",
    "dfc": "https://deepfake-creation.invalid/ns/provenance/1.0/",
}
_EXIF_IMAGE_DESCRIPTION, _EXIF_SOFTWARE = 0x010E, 0x0131


@dataclass(frozen=True)
class SyntheticInfo:
    """What the metadata states about one output."""

    payload: int | None  # the watermark payload (None when the output was too small to carry it)
    technique: str | None = None  # swap / reenact / animate / lipsync, or None for previews and plots
    consent_ids: tuple[str, ...] = ()
    visible_label: bool = False
    created: datetime.datetime = field(default_factory=lambda: datetime.datetime.now(datetime.UTC))

    def description(self) -> str:
        """The human-readable sentence written into every metadata format."""
        what = f"made with {self.technique}" if self.technique else "made"
        return f"Synthetic media {what} by {GENERATOR} (AI-generated; not a recording of real events)."

    def claim(self) -> str:
        """The compact ``key=value; ...`` line stored in comment fields and parsed back by ``parse_claim``."""
        parts = {
            "digitalsourcetype": TRAINED_ALGORITHMIC_MEDIA,
            "generator": GENERATOR,
            "payload": f"{self.payload:016x}" if self.payload is not None else "none",
            "technique": self.technique or "none",
            "consent": ",".join(self.consent_ids) or "none",
            "visible_label": "yes" if self.visible_label else "no",
            "created": self.created.isoformat(),
        }
        return "; ".join(f"{k}={v}" for k, v in parts.items())

    def xmp(self) -> str:
        """An XMP packet (RDF/XML) with the IPTC digital source type and the project's own fields."""
        ns = " ".join(f'xmlns:{k}="{v}"' for k, v in _NS.items() if k not in ("x", "rdf"))
        payload = f"{self.payload:016x}" if self.payload is not None else "none"
        return (
            '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
            f'<x:xmpmeta xmlns:x="{_NS["x"]}"><rdf:RDF xmlns:rdf="{_NS["rdf"]}">\n'
            f'<rdf:Description rdf:about="" {ns}\n'
            f' Iptc4xmpExt:DigitalSourceType="{TRAINED_ALGORITHMIC_MEDIA}"\n'
            f' xmp:CreatorTool="{GENERATOR}" xmp:CreateDate="{self.created.isoformat()}"\n'
            f' dfc:WatermarkPayload="{payload}" dfc:Technique={quoteattr(self.technique or "none")}\n'
            f" dfc:ConsentRecords={quoteattr(','.join(self.consent_ids) or 'none')}"
            f' dfc:VisibleLabel="{"yes" if self.visible_label else "no"}">\n'
            f'<dc:description><rdf:Alt><rdf:li xml:lang="x-default">{escape(self.description())}</rdf:li>'
            "</rdf:Alt></dc:description>\n"
            '</rdf:Description></rdf:RDF></x:xmpmeta>\n<?xpacket end="w"?>'
        )


def image_fields(info: SyntheticInfo) -> dict:
    """Keyword arguments for ``encode.encode_image``: PNG text chunks, EXIF bytes and the XMP packet."""
    exif = Image.Exif()
    exif[_EXIF_IMAGE_DESCRIPTION] = f"{info.description()} {info.claim()}"
    exif[_EXIF_SOFTWARE] = GENERATOR
    return {
        "text": {"Description": info.description(), "Software": GENERATOR, "Comment": info.claim()},
        "exif": exif.tobytes(),
        "xmp": info.xmp(),
    }


def mp4_tags(info: SyntheticInfo) -> dict[str, str]:
    """Global MP4 tags (``encode.encode_mp4(tags=...)``); custom keys would be dropped by the muxer."""
    return {
        "title": f"synthetic media ({GENERATOR})",
        "description": info.description(),
        "comment": info.claim(),
    }


def wav_info(info: SyntheticInfo) -> dict[str, str]:
    """RIFF INFO entries for ``encode.encode_wav(info=...)``."""
    return {"INAM": f"synthetic audio ({GENERATOR})", "ISFT": GENERATOR, "ICMT": info.claim()}


@dataclass
class MetadataReport:
    """What ``read_metadata`` found in a file."""

    synthetic: bool  # True when a field states the IPTC trainedAlgorithmicMedia source type
    digital_source_type: str | None
    payload: int | None  # the watermark payload the metadata claims (a claim, not a detection)
    fields: dict[str, str]  # every field read, by "container:key"


def parse_claim(text: str) -> dict[str, str]:
    """Parse a ``key=value; key=value`` claim line (inverse of ``SyntheticInfo.claim``)."""
    return dict(re.findall(r"(\w+)=([^;]*)", text))


def parse_xmp(packet: str) -> dict[str, str]:
    """The attributes of every ``rdf:Description`` in an XMP packet, keyed ``prefix:Name``."""
    try:
        root = ET.fromstring(packet.strip().lstrip("\ufeff"))
    except ET.ParseError:
        return {}
    prefixes = {uri: prefix for prefix, uri in _NS.items()}
    out = {}
    for desc in root.iter(f"{{{_NS['rdf']}}}Description"):
        for key, value in desc.attrib.items():
            uri, _, name = key[1:].partition("}") if key.startswith("{") else ("", "", key)
            out[f"{prefixes.get(uri, uri)}:{name}"] = value
    return out


def _image_fields(path: Path) -> dict[str, str]:
    with Image.open(path) as img:
        try:
            text = getattr(img, "text", {})  # PNG: decodes the pixels to reach chunks after them
        except OSError:  # damaged pixel data: the chunks read before it still say what the file claims
            text = {k: v for k, v in img.info.items() if isinstance(v, str)}
        fields = {f"text:{k}": str(v) for k, v in text.items()}
        xmp = img.info.get("xmp") or fields.pop("text:XML:com.adobe.xmp", None)
        if isinstance(xmp, bytes):
            xmp = xmp.decode("utf-8", "replace")
        if xmp:
            fields.update({f"xmp:{k}": v for k, v in parse_xmp(xmp).items()})
        exif = img.getexif()
        for tag, name in ((_EXIF_IMAGE_DESCRIPTION, "ImageDescription"), (_EXIF_SOFTWARE, "Software")):
            if tag in exif:
                fields[f"exif:{name}"] = str(exif[tag])
    return fields


def _container_fields(path: Path) -> dict[str, str]:
    with av.open(str(path)) as container:
        return {f"tag:{k}": str(v) for k, v in container.metadata.items()}


def read_wav_info(data: bytes) -> dict[str, str]:
    """Entries of the RIFF ``LIST/INFO`` chunks in a WAV file's bytes."""
    out = {}
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return out
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = data[pos + 8 : pos + 8 + size]
        if cid == b"LIST" and body[:4] == b"INFO":
            sub = 4
            while sub + 8 <= len(body):
                key, n = body[sub : sub + 4], struct.unpack("<I", body[sub + 4 : sub + 8])[0]
                out[key.decode("ascii", "replace")] = (
                    body[sub + 8 : sub + 8 + n].rstrip(b"\0").decode("utf-8", "replace")
                )
                sub += 8 + n + (n % 2)
        pos += 8 + size + (size % 2)
    return out


METADATA_SUFFIXES = (".png", ".jpg", ".jpeg", ".wav", ".mp4", ".m4a", ".mp3", ".mov")  # what it reads


def read_metadata(path: str | Path) -> MetadataReport:
    """Read the synthetic-media metadata of a PNG, JPEG, MP4/M4A, MP3 or WAV file.

    Raises ``ValueError`` for an unsupported suffix and ``OSError`` for an unreadable file.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".png", ".jpg", ".jpeg"):
        try:
            fields = _image_fields(path)
        except UnidentifiedImageError as err:
            raise OSError(f"not a readable image: {err}") from err
    elif suffix == ".wav":
        fields = {f"info:{k}": v for k, v in read_wav_info(path.read_bytes()).items()}
    elif suffix in (".mp4", ".m4a", ".mp3", ".mov"):
        try:
            fields = _container_fields(path)
        except av.error.FFmpegError as err:
            raise OSError(f"not a readable media file: {err}") from err
    else:
        raise ValueError(f"unsupported format {suffix!r}")
    claims: dict[str, str] = {}
    for key, value in fields.items():
        if key.startswith("xmp:dfc:"):
            claims[key.removeprefix("xmp:dfc:").lower()] = value
        elif "digitalsourcetype=" in value:
            claims.update(parse_claim(value))
    source = fields.get("xmp:Iptc4xmpExt:DigitalSourceType") or claims.get("digitalsourcetype")
    payload_text = claims.get("watermarkpayload") or claims.get("payload") or "none"
    payload = int(payload_text, 16) if re.fullmatch(r"[0-9a-f]{16}", payload_text) else None
    return MetadataReport(
        synthetic=source == TRAINED_ALGORITHMIC_MEDIA,
        digital_source_type=source,
        payload=payload,
        fields=fields,
    )
