"""Synthetic-media metadata: written by the encoders, read back by ``read_metadata`` and by other readers."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile
from PIL import Image

from consent_and_watermark import encode
from consent_and_watermark.metadata import (
    TRAINED_ALGORITHMIC_MEDIA,
    SyntheticInfo,
    image_fields,
    mp4_tags,
    parse_claim,
    parse_xmp,
    read_metadata,
    read_wav_info,
    wav_info,
)

INFO = SyntheticInfo(
    payload=0x0123456789ABCDEF, technique="swap", consent_ids=("cr-1", "syn-2"), visible_label=True
)
RGB = np.ascontiguousarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))


def _png_text_chunks(data: bytes) -> dict[str, str]:
    """tEXt/iTXt chunks of a PNG, parsed by hand from the PNG specification (section 11.3.4)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    out, pos = {}, 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"iTXt":
            keyword, rest = body.split(b"\0", 1)
            compressed, rest = rest[0], rest[2:]
            _language, rest = rest.split(b"\0", 1)
            _translated, text = rest.split(b"\0", 1)
            out[keyword.decode()] = (zlib.decompress(text) if compressed else text).decode()
        pos += 12 + length
    return out


def test_png_carries_xmp_and_text(tmp_path: Path, natural_rgb):
    path = encode.encode_image(tmp_path / "a.png", natural_rgb, **image_fields(INFO))
    chunks = _png_text_chunks(path.read_bytes())
    assert f'DigitalSourceType="{TRAINED_ALGORITHMIC_MEDIA}"' in chunks["XML:com.adobe.xmp"]
    assert "payload=0123456789abcdef" in chunks["Comment"]
    report = read_metadata(path)
    assert report.synthetic and report.payload == INFO.payload
    assert report.fields["xmp:dfc:ConsentRecords"] == "cr-1,syn-2"


def test_jpeg_carries_exif_and_xmp(tmp_path: Path, natural_rgb):
    path = encode.encode_image(tmp_path / "a.jpg", natural_rgb, **image_fields(INFO))
    data = path.read_bytes()
    # The XMP APP1 segment starts with this namespace (Adobe XMP specification part 3, 1.1.3).
    assert b"http://ns.adobe.com/xap/1.0/\0" in data and TRAINED_ALGORITHMIC_MEDIA.encode() in data
    with Image.open(path) as img:
        assert "Synthetic media" in img.getexif()[0x010E]
    report = read_metadata(path)
    assert report.synthetic and report.payload == INFO.payload


def test_mp4_global_tags(tmp_path: Path):
    frames = np.zeros((4, 64, 64, 3), np.uint8)
    path = encode.encode_mp4(tmp_path / "a.mp4", frames, 25, tags=mp4_tags(INFO))
    with av.open(str(path)) as container:
        assert TRAINED_ALGORITHMIC_MEDIA in container.metadata["comment"]
    report = read_metadata(path)
    assert report.synthetic and report.payload == INFO.payload


def test_wav_info_chunk(tmp_path: Path):
    path = encode.encode_wav(tmp_path / "a.wav", np.zeros(1600, np.float32), 16000, info=wav_info(INFO))
    with soundfile.SoundFile(path) as sound:  # libsndfile reads RIFF INFO on its own
        assert TRAINED_ALGORITHMIC_MEDIA in sound.comment
        assert sound.software == "deepfake-creation"
    report = read_metadata(path)
    assert report.synthetic and report.payload == INFO.payload


def test_no_payload_claim_when_unwatermarked(tmp_path: Path, natural_rgb):
    info = SyntheticInfo(payload=None)
    path = encode.encode_image(tmp_path / "a.png", natural_rgb, **image_fields(info))
    report = read_metadata(path)
    assert report.synthetic and report.payload is None


def test_plain_files_and_pillow_resaves_have_no_statement(tmp_path: Path, natural_rgb):
    marked = encode.encode_image(tmp_path / "a.png", natural_rgb, **image_fields(INFO))
    resaved = tmp_path / "resaved.png"
    with Image.open(marked) as img:
        img.save(resaved)  # a re-save drops the metadata: the limit the watermark exists for
    for path in (resaved, encode.encode_image(tmp_path / "plain.jpg", natural_rgb)):
        report = read_metadata(path)
        assert not report.synthetic and report.payload is None


def test_unsupported_suffix_is_rejected(tmp_path: Path):
    (tmp_path / "a.gif").write_bytes(b"GIF89a")
    with pytest.raises(ValueError, match="unsupported"):
        read_metadata(tmp_path / "a.gif")


def test_the_xmp_uses_the_iptc_extension_namespace():
    """Other readers (exiftool, Adobe, the IPTC's own checks) match the namespace URI exactly."""
    assert 'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"' in INFO.xmp()


def test_another_digital_source_type_is_not_synthetic(tmp_path: Path):
    """Only trainedAlgorithmicMedia makes a file synthetic: a camera's digitalCapture statement does not."""
    camera = INFO.xmp().replace("trainedAlgorithmicMedia", "digitalCapture")
    report = read_metadata(encode.encode_image(tmp_path / "photo.png", RGB, xmp=camera))
    assert report.digital_source_type.endswith("/digitalCapture") and not report.synthetic


def test_the_payload_is_read_from_the_xmp_alone(tmp_path: Path):
    """A file that kept only its XMP packet (EXIF and text chunks stripped) still states its payload."""
    report = read_metadata(encode.encode_image(tmp_path / "a.jpg", RGB, xmp=image_fields(INFO)["xmp"]))
    assert report.synthetic and report.payload == INFO.payload


def test_wav_info_entries_of_odd_size_are_followed_past_their_pad_byte():
    """RIFF pads an odd-sized chunk with one byte outside its size (as ffmpeg and others write INFO)."""
    body = (b"INFO" + b"INAM" + struct.pack("<I", 3) + b"ab\0" + b"\0"  # the pad byte
            + b"ICMT" + struct.pack("<I", 4) + b"xyz\0")
    info = b"LIST" + struct.pack("<I", len(body)) + body
    riff = b"RIFF" + struct.pack("<I", 4 + len(info)) + b"WAVE" + info
    assert read_wav_info(riff) == {"INAM": "ab", "ICMT": "xyz"}


def _riff(*chunks: bytes, form: bytes = b"WAVE") -> bytes:
    body = form + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _chunk(cid: bytes, body: bytes) -> bytes:
    """A RIFF chunk: id, little-endian size, body, and the pad byte after an odd-sized body."""
    return cid + struct.pack("<I", len(body)) + body + b"\0" * (len(body) % 2)


def test_the_claim_line_names_the_consent_records_and_the_visible_label():
    claim = parse_claim(INFO.claim())
    assert claim["consent"] == "cr-1,syn-2" and claim["visible_label"] == "yes"
    assert parse_claim(SyntheticInfo(payload=None).claim())["visible_label"] == "no"


def test_the_xmp_states_whether_the_visible_label_was_shown():
    assert parse_xmp(INFO.xmp())["dfc:VisibleLabel"] == "yes"
    assert parse_xmp(SyntheticInfo(payload=None).xmp())["dfc:VisibleLabel"] == "no"


def test_the_description_names_the_technique():
    assert "swap" in INFO.description()
    assert "swap" not in SyntheticInfo(payload=None).description()


def test_jpeg_exif_names_the_generator_as_its_software(tmp_path: Path):
    path = encode.encode_image(tmp_path / "a.jpg", RGB, **image_fields(INFO))
    with Image.open(path) as img:
        assert img.getexif()[0x0131] == "deepfake-creation"  # EXIF tag 0x0131: Software
    assert read_metadata(path).fields["exif:Software"] == "deepfake-creation"


def test_wav_info_gives_the_file_a_title(tmp_path: Path):
    path = encode.encode_wav(tmp_path / "a.wav", np.zeros(1600, np.float32), 16000, info=wav_info(INFO))
    with soundfile.SoundFile(path) as sound:  # libsndfile's title is the RIFF INFO "INAM" entry
        assert "synthetic" in sound.title


def test_a_png_with_damaged_pixels_still_shows_the_text_chunks_before_them(tmp_path: Path):
    data = bytearray(encode.encode_image(tmp_path / "a.png", RGB, **image_fields(INFO)).read_bytes())
    data[data.index(b"IDAT") + 200] ^= 0xFF  # one flipped byte in the compressed pixels
    damaged = tmp_path / "damaged.png"
    damaged.write_bytes(bytes(data))
    report = read_metadata(damaged)
    assert "payload=0123456789abcdef" in report.fields["text:Comment"]
    assert report.fields["text:Software"] == "deepfake-creation"


def test_an_empty_last_wav_info_entry_is_read():
    info = _chunk(b"LIST", b"INFO" + _chunk(b"INAM", b"a\0") + _chunk(b"ICMT", b""))
    assert read_wav_info(_riff(info)) == {"INAM": "a", "ICMT": ""}


def test_wav_chunks_of_odd_size_before_the_info_list_are_followed_past_their_pad_byte():
    info = _chunk(b"LIST", b"INFO" + _chunk(b"ICMT", b"xyz\0"))
    assert read_wav_info(_riff(_chunk(b"junk", b"abc"), info)) == {"ICMT": "xyz"}


def test_a_riff_file_that_is_not_wave_has_no_wav_info():
    info = _chunk(b"LIST", b"INFO" + _chunk(b"ICMT", b"xyz\0"))
    assert read_wav_info(_riff(info, form=b"AVI ")) == {}


def test_upper_case_suffixes_are_read(tmp_path: Path):
    path = encode.encode_image(tmp_path / "a.png", RGB, **image_fields(INFO))
    upper = path.rename(tmp_path / "A.PNG")
    report = read_metadata(upper)
    assert report.synthetic and report.payload == INFO.payload


def test_a_payload_claim_of_other_than_16_hex_digits_is_no_payload(tmp_path: Path):
    claim = f"digitalsourcetype={TRAINED_ALGORITHMIC_MEDIA}; payload=7"
    path = encode.encode_wav(tmp_path / "a.wav", np.zeros(1600, np.float32), 16000, info={"ICMT": claim})
    report = read_metadata(path)
    assert report.synthetic and report.payload is None


def test_an_xmp_packet_that_is_not_xml_has_no_fields():
    assert parse_xmp('<x:xmpmeta xmlns:x="adobe:ns:meta/"><unclosed') == {}
