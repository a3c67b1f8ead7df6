"""Local keys and C2PA manifests: certificate profile, signing, trust, tampering, re-encoding."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import io
import json
import os
import stat
from pathlib import Path

import c2pa
import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from PIL import Image

from common.errors import UserError
from consent_and_watermark import c2pa_sign, encode
from consent_and_watermark.keys import (
    SIGNER_DAYS,
    _make_signer,
    _pem_cert,
    _pem_key,
    create_keys,
    load_keys,
    medium_key,
    purpose_key,
)
from consent_and_watermark.metadata import TRAINED_ALGORITHMIC_MEDIA

FACTS = c2pa_sign.ManifestFacts(
    title="out.png",
    payload=0x00000007_65432100,
    technique="reenact",
    consent=({"id": "cr-1", "sha256": "ab" * 32, "techniques": ["reenact"], "outputs": ["image"]},),
    visible_label=True,
)


def _read_independently(signed: bytes) -> tuple[str, dict]:
    """c2pa's own reader with default settings (no user trust anchors, nothing fetched) on a signed PNG:
    (validation state, the active manifest)."""
    settings = {"version": 1, "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
    with (
        c2pa.Context.from_dict(settings) as context,
        c2pa.Reader("image/png", io.BytesIO(signed), None, context) as reader,
    ):
        store = json.loads(reader.json())
        return reader.get_validation_state(), store["manifests"][store["active_manifest"]]


def _png_bytes(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def test_key_files_are_private_and_follow_the_certificate_rules(tmp_path: Path):
    folder = tmp_path / "config" / "keys"
    create_keys(folder)
    create_keys(folder)  # a second creator (another process starting at once) keeps the first set
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert [p.name for p in folder.parent.iterdir()] == ["keys"]  # no staging folder left behind
    for name in os.listdir(folder):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name
    keys = load_keys(folder)
    assert keys.root_pem == (folder / "root.pem").read_bytes()
    signer, root = x509.load_pem_x509_certificates(keys.signer_chain_pem)
    # Issued by the root (c2pa rejects self-signed signers): the root's key verifies the signature.
    root.public_key().verify(
        signer.signature, signer.tbs_certificate_bytes, ec.ECDSA(signer.signature_hash_algorithm)
    )
    assert signer.issuer == root.subject and signer.subject != root.subject
    ext = signer.extensions
    assert ext.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert ext.get_extension_for_class(x509.KeyUsage).value.digital_signature
    assert ext.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.EMAIL_PROTECTION]
    )
    ext.get_extension_for_class(x509.AuthorityKeyIdentifier)  # raises when missing
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert len(keys.watermark_key) == 32
    assert load_keys(folder) is keys  # cached for the process


@pytest.mark.parametrize("name", ["root.pem", "signer.pem", "signer.key", "watermark.key"])
def test_a_damaged_key_file_is_named_in_one_line(tmp_path: Path, name: str):
    folder = tmp_path / "keys"
    create_keys(folder)
    (folder / name).write_bytes(b"not a key at all\n")
    with pytest.raises(UserError, match=f"{name} is damaged.*move .* aside to create new keys") as err:
        load_keys(folder, signing=True)
    assert "\n" not in str(err.value)


def test_a_signer_key_from_another_set_is_refused(tmp_path: Path):
    create_keys(tmp_path / "keys")
    create_keys(tmp_path / "other")
    (tmp_path / "keys" / "signer.key").write_bytes((tmp_path / "other" / "signer.key").read_bytes())
    with pytest.raises(UserError, match="signer.key is damaged .*does not match"):
        load_keys(tmp_path / "keys", signing=True)


def test_a_damaged_signer_does_not_stop_verification(tmp_path: Path):
    """verify needs only the root and the watermark key: a broken signer must not lock the user out."""
    folder = tmp_path / "keys"
    create_keys(folder)
    (folder / "signer.key").write_bytes(b"garbage")
    assert len(load_keys(folder).watermark_key) == 32
    with pytest.raises(UserError, match="signer.key is damaged"):
        load_keys(folder, signing=True)


def test_a_config_dir_that_is_a_file_is_one_clear_error(tmp_path: Path):
    (tmp_path / "config").write_text("oops")
    with pytest.raises(UserError, match="is a file: set DEEPFAKE_CONFIG_DIR to a folder"):
        load_keys(tmp_path / "config" / "keys")


def test_signed_png_is_trusted_and_carries_our_assertions(natural_rgb):
    signed = c2pa_sign.sign_bytes(_png_bytes(natural_rgb), "image/png", FACTS)
    report = c2pa_sign.read_manifest(signed, "image/png")
    assert report.state == "Trusted", report.failures
    assert report.digital_source_type == TRAINED_ALGORITHMIC_MEDIA
    assert report.payload == FACTS.payload
    assert report.consent["technique"] == "reenact" and report.consent["records"][0]["id"] == "cr-1"
    # The pixels are untouched by signing.
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(signed)).convert("RGB")), natural_rgb)


def test_without_our_trust_anchor_the_manifest_is_only_valid(natural_rgb):
    """c2pa's own reader with default settings (no user anchors) reads the same manifest independently."""
    state, manifest = _read_independently(c2pa_sign.sign_bytes(_png_bytes(natural_rgb), "image/png", FACTS))
    assert state == "Valid"
    labels = [a["label"] for a in manifest["assertions"]]
    assert "c2pa.soft-binding" in labels and c2pa_sign.CONSENT_LABEL in labels


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".mp4", ".wav"])
def test_tampering_makes_validation_fail(tmp_path: Path, natural_rgb, suffix):
    target = tmp_path / f"a{suffix}"
    if suffix in (".png", ".jpg"):
        encode.encode_image(target, natural_rgb)
    elif suffix == ".mp4":
        encode.encode_mp4(target, np.stack([natural_rgb] * 3), 25)
    else:
        encode.encode_wav(target, np.sin(np.arange(8000) / 5.0).astype(np.float32) * 0.3, 16000)
    mime = c2pa_sign.mime_type(target)
    signed = c2pa_sign.sign_bytes(target.read_bytes(), mime, FACTS)
    assert c2pa_sign.read_manifest(signed, mime).state == "Trusted"
    tampered = bytearray(signed)
    # Flip one bit of content: samples after the WAV "data" header; otherwise near the end of the file
    # (PNG IDAT, JPEG scan, mp4 mdat), where the manifest never sits in these formats.
    position = signed.index(b"data") + 1000 if suffix == ".wav" else len(signed) - 200
    tampered[position] ^= 0x01
    report = c2pa_sign.read_manifest(bytes(tampered), mime)
    assert report.state == "Invalid" and report.failures


def test_reencoding_drops_the_manifest(natural_rgb):
    signed = c2pa_sign.sign_bytes(_png_bytes(natural_rgb), "image/png", FACTS)
    buffer = io.BytesIO()
    Image.open(io.BytesIO(signed)).save(buffer, format="JPEG", quality=90)
    assert c2pa_sign.read_manifest(buffer.getvalue(), "image/jpeg").state == "absent"


def test_a_foreign_signer_is_not_trusted(tmp_path: Path, natural_rgb):
    """A manifest signed with another installation's keys validates, but is not Trusted here."""
    other = tmp_path / "other-keys"
    create_keys(other)
    signed = c2pa_sign.sign_bytes(_png_bytes(natural_rgb), "image/png", FACTS, load_keys(other))
    assert c2pa_sign.read_manifest(signed, "image/png").state == "Valid"
    assert c2pa_sign.read_manifest(signed, "image/png", load_keys(other)).state == "Trusted"


def test_image_and_audio_marks_are_keyed_apart(tmp_path: Path):
    create_keys(tmp_path / "keys")
    keys = load_keys(tmp_path / "keys")
    image, audio = medium_key(keys, "image"), medium_key(keys, "audio")
    assert len(image) == len(audio) == 32 and image != audio and keys.watermark_key not in (image, audio)


def test_a_watermark_key_longer_than_32_bytes_is_damaged(tmp_path: Path):
    folder = tmp_path / "keys"
    create_keys(folder)
    (folder / "watermark.key").write_bytes(bytes(33))
    with pytest.raises(UserError, match="watermark.key is damaged .expected 32 bytes"):
        load_keys(folder)


def test_an_expired_signing_certificate_is_refused_before_signing(tmp_path: Path):
    folder = tmp_path / "keys"
    create_keys(folder)
    root = x509.load_pem_x509_certificate((folder / "root.pem").read_bytes())
    root_key = serialization.load_pem_private_key((folder / "root.key").read_bytes(), password=None)
    then = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=SIGNER_DAYS + 1)
    signer_key, signer = _make_signer(then, root_key, root)
    (folder / "signer.key").write_bytes(_pem_key(signer_key))
    (folder / "signer.pem").write_bytes(_pem_cert(signer))
    with pytest.raises(UserError, match="signing certificate .* expired on"):
        load_keys(folder, signing=True)


def test_the_manifest_says_whether_the_visible_label_was_off(natural_rgb):
    facts = c2pa_sign.ManifestFacts(title="out.png", payload=None, technique="swap", visible_label=False)
    signed = c2pa_sign.sign_bytes(_png_bytes(natural_rgb), "image/png", facts)
    assert c2pa_sign.read_manifest(signed, "image/png").consent["visible_label"] is False


def test_the_root_issues_only_end_entity_signers_that_expire_first(tmp_path: Path):
    create_keys(tmp_path / "keys")
    signer, root = x509.load_pem_x509_certificates(load_keys(tmp_path / "keys").signer_chain_pem)
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
    lifetime = signer.not_valid_after_utc - signer.not_valid_before_utc
    assert lifetime == datetime.timedelta(days=SIGNER_DAYS, minutes=5)


def test_a_key_folder_without_its_root_is_called_incomplete_not_overwritten(tmp_path: Path):
    folder = tmp_path / "keys"
    create_keys(folder)
    (folder / "root.pem").unlink()
    with pytest.raises(UserError, match=r"incomplete \(no root.pem\); move the folder aside"):
        load_keys(folder)
    assert (folder / "watermark.key").exists()


def test_the_manifest_names_the_output_and_its_watermarked_action_beside_created(natural_rgb):
    _, manifest = _read_independently(c2pa_sign.sign_bytes(_png_bytes(natural_rgb), "image/png", FACTS))
    assert manifest["title"] == FACTS.title
    assertions = manifest["assertions"]
    (actions,) = [a["data"]["actions"] for a in assertions if a["label"].startswith("c2pa.actions")]
    assert [a["action"] for a in actions] == ["c2pa.created", "c2pa.watermarked"]


def test_the_soft_binding_holds_the_payload_as_8_big_endian_bytes(natural_rgb):
    _, manifest = _read_independently(c2pa_sign.sign_bytes(_png_bytes(natural_rgb), "image/png", FACTS))
    (binding,) = [a["data"] for a in manifest["assertions"] if a["label"] == "c2pa.soft-binding"]
    assert base64.b64decode(binding["blocks"][0]["value"]) == bytes.fromhex("0000000765432100")


def test_the_manifest_names_its_claim_generator(natural_rgb):
    _, manifest = _read_independently(c2pa_sign.sign_bytes(_png_bytes(natural_rgb), "image/png", FACTS))
    assert manifest["claim_generator_info"][0]["name"] == "deepfake-creation"


def test_mime_types_are_found_for_upper_case_suffixes():
    assert c2pa_sign.mime_type("OUT.JPG") == "image/jpeg" and c2pa_sign.mime_type("a.Png") == "image/png"


def test_a_soft_binding_of_another_algorithm_is_not_read_as_our_payload(natural_rgb, monkeypatch):
    build = c2pa_sign.build_manifest

    def foreign(facts):
        manifest = build(facts)
        for assertion in manifest["assertions"]:
            if assertion["label"] == "c2pa.soft-binding":
                assertion["data"]["alg"] = "com.example.another-watermark"
        return manifest

    monkeypatch.setattr(c2pa_sign, "build_manifest", foreign)
    signed = c2pa_sign.sign_bytes(_png_bytes(natural_rgb), "image/png", FACTS)
    report = c2pa_sign.read_manifest(signed, "image/png")
    assert report.state == "Trusted" and report.payload is None


def test_a_signer_key_on_another_curve_is_named_as_not_p256(tmp_path: Path):
    folder = tmp_path / "keys"
    create_keys(folder)
    (folder / "signer.key").write_bytes(_pem_key(ec.generate_private_key(ec.SECP384R1())))
    with pytest.raises(UserError, match=r"signer.key is damaged \(not a P-256"):
        load_keys(folder, signing=True)


def test_purpose_keys_are_the_hmac_of_the_purpose_under_the_watermark_key(tmp_path: Path):
    create_keys(tmp_path / "keys")
    keys = load_keys(tmp_path / "keys")
    expected = hmac.new(keys.watermark_key, b"some/purpose/v1", hashlib.sha256).digest()
    assert purpose_key(keys, "some/purpose/v1") == expected


def test_the_report_names_the_signer_by_its_certificates_common_name(natural_rgb):
    signer = x509.load_pem_x509_certificates(load_keys().signer_chain_pem)[0]
    (name,) = signer.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    signed = c2pa_sign.sign_bytes(_png_bytes(natural_rgb), "image/png", FACTS)
    assert c2pa_sign.read_manifest(signed, "image/png").signer == name.value
