"""Local key material: a private certificate authority, a C2PA signing certificate and a watermark key.

Created on first use in ``keys/`` under the user's config dir (``$DEEPFAKE_CONFIG_DIR`` overrides it);
every file is 0600 and the folder 0700. Nothing here ever leaves the machine.

- ``root.pem``/``root.key``: a self-signed root CA (ES256, P-256). ``verify`` passes it to c2pa as a
  *user trust anchor*, so manifests signed on this machine validate as "Trusted"; anywhere else they
  validate as "Valid" (signature fine, signer unknown).
- ``signer.pem``/``signer.key``: the end-entity certificate that signs manifests. c2pa-rs rejects a
  self-signed signer, so it is issued by the root, and its extensions follow the C2PA certificate
  profile (checked on this machine): KeyUsage digitalSignature, BasicConstraints CA:FALSE,
  AuthorityKeyIdentifier present, ExtendedKeyUsage emailProtection (the one EKU accepted without a
  custom trust configuration; serverAuth, anyExtendedKeyUsage or no EKU are rejected).
- ``watermark.key``: 32 random bytes that key the invisible watermark's pseudo-random sequences (and,
  through ``purpose_key``, the consent ledger's seals). Whoever holds it can detect *and forge* the
  watermark and reseal an edited consent record, so it is as secret as the signing key.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import platformdirs
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from common.errors import UserError

APP_NAME = "deepfake-creation"
ROOT_DAYS = 3650  # the root outlives many signing certificates
SIGNER_DAYS = 730

_FILES = ("root.pem", "root.key", "signer.pem", "signer.key", "watermark.key")


@dataclass(frozen=True)
class KeyMaterial:
    """Everything the marking pipeline needs, as loaded from the config dir."""

    folder: Path
    root_pem: bytes  # the trust anchor for verify
    signer_chain_pem: bytes  # signer certificate followed by the root (what c2pa embeds)
    signer_key_pem: bytes  # PKCS#8 private key of the signer
    watermark_key: bytes  # 32 bytes


def config_dir() -> Path:
    """The project's config folder: ``$DEEPFAKE_CONFIG_DIR`` or the platform's user config dir."""
    override = os.environ.get("DEEPFAKE_CONFIG_DIR")
    return Path(override) if override else Path(platformdirs.user_config_dir(APP_NAME))


def key_dir() -> Path:
    """Where the key files live: ``keys/`` in the config folder."""
    return config_dir() / "keys"


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, APP_NAME),
        ]
    )


def _key_usage(*, sign: bool, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _make_root(now: datetime.datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(f"{APP_NAME} local root CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=ROOT_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(sign=False, ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _make_signer(
    now: datetime.datetime, root_key: ec.EllipticCurvePrivateKey, root: x509.Certificate
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{APP_NAME} C2PA signer"))
        .issuer_name(root.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SIGNER_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(sign=True, ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False
        )
        .sign(root_key, hashes.SHA256())
    )
    return key, cert


def _write_private(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 from the start (never world-readable, even briefly)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def create_keys(folder: Path) -> None:
    """Create a fresh root, signer and watermark key as the folder ``folder`` (which must not hold keys).

    The set is written into a private temporary folder and renamed into place in one step, so two
    processes starting at once (e.g. ``torchrun`` ranks) never mix one's signer with the other's root:
    the first rename wins and the loser uses the winner's keys.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".keys-", dir=folder.parent))  # mode 0700
    now = datetime.datetime.now(datetime.UTC)
    root_key, root = _make_root(now)
    signer_key, signer = _make_signer(now, root_key, root)
    _write_private(staging / "root.key", _pem_key(root_key))
    _write_private(staging / "signer.key", _pem_key(signer_key))
    _write_private(staging / "signer.pem", _pem_cert(signer))
    _write_private(staging / "watermark.key", secrets.token_bytes(32))
    _write_private(staging / "root.pem", _pem_cert(root))
    try:
        os.rename(staging, folder)  # replaces an empty folder, fails on one that holds files
    except OSError:
        shutil.rmtree(staging)
        if not (folder / "root.pem").exists():
            raise


_cache: dict[Path, KeyMaterial] = {}
_signers_checked: set[Path] = set()


def _damaged(path: Path, what: str) -> UserError:
    """The one line for a key file that does not parse: what to do about it."""
    return UserError(
        f"{path} is damaged ({what}): restore the keys folder from a backup, or move {path.parent} aside "
        "to create new keys (files marked before then verify only with the old folder)"
    )


def _certificate(path: Path, data: bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as err:
        raise _damaged(path, "not a PEM certificate") from err


def _check_signer(keys: KeyMaterial) -> None:
    """Parse ``signer.pem``/``signer.key`` as c2pa will at the first write: a P-256 key that matches an
    unexpired certificate. Raises ``UserError`` naming the damaged file."""
    cert_path, key_path = keys.folder / "signer.pem", keys.folder / "signer.key"
    cert = _certificate(cert_path, keys.signer_chain_pem[: -len(keys.root_pem)])  # signer.pem alone
    try:
        key = serialization.load_pem_private_key(keys.signer_key_pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as err:
        raise _damaged(key_path, "not an unencrypted PEM private key") from err
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise _damaged(key_path, "not a P-256 (ES256) key")
    public = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*public) != cert.public_key().public_bytes(*public):
        raise _damaged(key_path, "it does not match the certificate in signer.pem")
    expiry = cert.not_valid_after_utc
    if expiry <= datetime.datetime.now(datetime.UTC):
        raise UserError(
            f"the signing certificate {cert_path} expired on {expiry:%Y-%m-%d}: move {keys.folder} aside "
            "to create new keys (files marked before then verify only with the old folder)"
        )


def load_keys(folder: Path | None = None, *, signing: bool = False) -> KeyMaterial:
    """Load the key material, creating it on first use. Cached per folder for the process.

    The root certificate and the watermark key are always checked; ``signing=True`` (what the writer
    asks for, before any compute) also checks the signer's certificate and key. A damaged file is a
    ``UserError`` that names it.
    """
    folder = (folder or key_dir()).expanduser().resolve()
    if folder not in _cache:
        _cache[folder] = _read_keys(folder)
    keys = _cache[folder]
    if signing and folder not in _signers_checked:
        _check_signer(keys)
        _signers_checked.add(folder)
    return keys


def _read_keys(folder: Path) -> KeyMaterial:
    """Read (creating them first if absent) and check the files every use needs."""
    if not (folder / "root.pem").exists():
        if folder.parent.exists() and not folder.parent.is_dir():
            raise UserError(f"config folder {folder.parent} is a file: set DEEPFAKE_CONFIG_DIR to a folder")
        if folder.is_dir() and any(folder.iterdir()):  # keys were there once: never overwrite what is left
            raise UserError(f"key material in {folder} is incomplete (no root.pem); "
                            "move the folder aside to create new keys")
        try:
            create_keys(folder)
        except OSError as err:
            raise UserError(
                f"cannot create keys in {folder} ({err.strerror}: {err.filename}); "
                "set DEEPFAKE_CONFIG_DIR to a writable folder"
            ) from err
    try:
        files = {name: (folder / name).read_bytes() for name in _FILES}
    except OSError as err:
        raise UserError(
            f"key material in {folder} is incomplete ({err.strerror}: {err.filename}); "
            "move the folder aside to create new keys"
        ) from err
    if len(files["watermark.key"]) != 32:
        raise _damaged(folder / "watermark.key", "expected 32 bytes")
    _certificate(folder / "root.pem", files["root.pem"])
    return KeyMaterial(
        folder=folder,
        root_pem=files["root.pem"],
        signer_chain_pem=files["signer.pem"] + files["root.pem"],
        signer_key_pem=files["signer.key"],
        watermark_key=files["watermark.key"],
    )


def purpose_key(keys: KeyMaterial, purpose: str) -> bytes:
    """A separate 32-byte key per use of the install secret: HMAC-SHA256(watermark key, purpose), so no
    two uses (image marks, audio marks, the consent ledger's seals) share a key."""
    return hmac.new(keys.watermark_key, purpose.encode(), hashlib.sha256).digest()


def medium_key(keys: KeyMaterial, medium: str) -> bytes:
    """The watermark key of one medium (image, audio): the two never share a pseudo-random sequence."""
    return purpose_key(keys, f"watermark/{medium}/v1")
