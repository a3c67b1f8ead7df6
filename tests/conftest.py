"""Suite-wide fixtures: keep every test away from the real user's ledger, keys and caches, and check
every file any test makes the project write."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session", autouse=True)
def _isolated_user_dirs(tmp_path_factory: pytest.TempPathFactory):
    """Point the consent ledger, provenance log and signing keys at a per-session temp folder."""
    base = tmp_path_factory.mktemp("user")
    old = {k: os.environ.get(k) for k in ("DEEPFAKE_DATA_DIR", "DEEPFAKE_CONFIG_DIR")}
    os.environ["DEEPFAKE_DATA_DIR"] = str(base / "data")
    os.environ["DEEPFAKE_CONFIG_DIR"] = str(base / "config")
    yield
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """`../shared` beside the repository (reference files; read-only, never copied in)."""
    return SHARED


@pytest.fixture(autouse=True)
def default_output_context():
    """Every test starts and ends with the writer's default run context.

    CLIs run in-process (``main(argv)``) set the process-wide context (technique, consent ids); a narrow
    consent record left behind would refuse later tests' writes.
    """
    from consent_and_watermark import writer

    writer.set_context(writer.OutputContext())
    yield
    writer.set_context(writer.OutputContext())


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """The tests' tensors are tiny: extra threads only contend on a 2-core machine."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def check_fully_marked(path: Path, kind: str) -> None:
    """`verify` finds every mark on a file the writer just wrote, and they agree: its log row (by the
    file's hash), a Trusted C2PA manifest, the synthetic-media metadata and, when the row says it was
    watermarked, the watermark, all with one payload."""
    from consent_and_watermark.verify import verify

    report = verify(path)
    row, c2pa = report.provenance, report.c2pa
    problems = []
    if row is None or report.matched_by != "sha256":
        problems.append("no provenance row for its bytes")
    if c2pa.state != "Trusted":
        problems.append(f"C2PA manifest {c2pa.state} {c2pa.failures}")
    if not report.metadata.synthetic:
        problems.append("no synthetic-media metadata")
    if row is not None and row.watermarked:
        found = report.audio_watermark if kind == "audio" else report.watermark
        if not (found and found["detected"]):
            problems.append("watermark not detected")
        elif not found["payload"] == row.payload == c2pa.payload == report.metadata.payload:
            problems.append("the marks disagree on the payload")
    assert not problems, f"{path} ({kind}): " + "; ".join(problems)


@pytest.fixture(autouse=True)
def _every_output_passes_verify(monkeypatch: pytest.MonkeyPatch):
    """Issue 3: every output written in the suite passes `verify`. Each file is checked right after the
    writer puts it in place, with the keys and log the test uses at that moment."""
    from consent_and_watermark import writer

    publish = writer._publish

    def publish_and_check(path: Path, kind: str, *args, **kwargs) -> Path:
        written = publish(path, kind, *args, **kwargs)
        check_fully_marked(written, "image" if kind == "figure" else kind)
        return written

    monkeypatch.setattr(writer, "_publish", publish_and_check)
