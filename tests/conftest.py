"""Suite-wide fixtures: keep every test away from the real user's ledger, keys and caches, and check
every file any test makes the project write."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"


def load_script(path: Path, name: str) -> ModuleType:
    """A script (a benchmark, the shared reference check) as module `name`, without running its main().
    Registered in sys.modules while it runs, as an import would: its dataclasses look their module up
    there."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


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


@pytest.fixture
def fresh_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty consent ledger and provenance log for this test alone (``DEEPFAKE_DATA_DIR``; the keys
    stay the session's). Every provenance test gets one (``consent_and_watermark/conftest.py``); a test
    elsewhere that revokes or expires records asks for it, so the session ledger other tests share
    never holds a record it narrowed."""
    folder = tmp_path / "user-data"
    monkeypatch.setenv("DEEPFAKE_DATA_DIR", str(folder))
    return folder


@pytest.fixture
def unusable_consent(fresh_data_dir: Path):
    """``make(problem, technique, subject_id)``: a record in this test's own ledger that a ``technique``
    run must refuse, and the words the refusal must use. ``problem`` is "expired" (granted a month
    ago for a day), "revoked" or "technique" (it covers every technique but this one)."""
    import datetime

    from consent_and_watermark.consent import TECHNIQUES, Ledger, utc_now

    def make(problem: str, technique: str, subject_id: str = "unusable-consent") -> tuple[str, str]:
        ledger, person = Ledger(), (subject_id, f"Person {subject_id}", "the person themself")
        if problem == "expired":
            then = utc_now() - datetime.timedelta(days=30)
            record = ledger.add(*person, expires=then + datetime.timedelta(days=1), now=then)
            return record.id, f"expired on {record.expires:%Y-%m-%d}"
        if problem == "revoked":
            record = ledger.revoke(ledger.add(*person).id, "withdrawn")
            return record.id, f"was revoked on {record.revoked:%Y-%m-%d}"
        if problem == "technique":
            record = ledger.add(*person, techniques=[t for t in TECHNIQUES if t != technique])
            return record.id, f"does not cover '{technique}'"
        raise ValueError(f"unknown problem {problem!r}")

    return make


@pytest.fixture
def one_error_line(capsys: pytest.CaptureFixture):
    """``read()``: what a CLI run through `common.cli.run` printed on stderr since the last read, which
    must be one line starting ``error: ``; returns that line."""

    def read() -> str:
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: "), err
        return err[0]

    return read


@pytest.fixture(scope="session")
def psnr():
    """``psnr(a, b)``: peak signal-to-noise ratio in dB of two uint8-range arrays (peak 255)."""

    def compute(a, b) -> float:
        mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
        return float(10 * np.log10(255.0**2 / mse))

    return compute


@pytest.fixture
def frame_folders(tmp_path: Path):
    """``write({"one": 1, "three": 3})``: under ``tmp_path``, a folder of that many 16-px PNG frames per
    name (a clip each, each frame a different grey), written through the writer; returns ``tmp_path``."""
    from consent_and_watermark import writer

    def write(lengths: dict[str, int]) -> Path:
        for name, frames in lengths.items():
            (tmp_path / name).mkdir()
            for i in range(frames):
                writer.save_image(tmp_path / name / f"{i}.png", np.full((16, 16, 3), 40 * i, np.uint8),
                                  label=False)
        return tmp_path

    return write


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


@pytest.fixture
def forced_fp16_scaler(monkeypatch: pytest.MonkeyPatch):
    """`force(module)` makes that trainer module's `grad_scaler` hand out an *enabled* loss scaler on
    the CPU (fp16 needs a GPU; the scaler's bookkeeping does not) that counts its calls, and returns it.

    A power-of-two scale is undone exactly, so a correctly wired trainer computes the same weights as
    without one; the counts say every loss was scaled, every optimizer step went through the scaler
    (which unscales, and skips a step with inf/NaN gradients) and the scale was updated once per step.
    """
    from collections import Counter

    import torch

    class CountingScaler(torch.amp.GradScaler):
        def __init__(self) -> None:
            super().__init__("cpu", init_scale=2.0**10)
            self.calls: Counter[str] = Counter()

        def scale(self, outputs):
            self.calls["scale"] += 1
            return super().scale(outputs)

        def step(self, optimizer, *args, **kwargs):
            self.calls["step"] += 1
            return super().step(optimizer, *args, **kwargs)

        def update(self, new_scale=None):
            self.calls["update"] += 1
            return super().update(new_scale)

    def force(module) -> CountingScaler:
        scaler = CountingScaler()
        monkeypatch.setattr(module, "grad_scaler", lambda device, precision: scaler)
        return scaler

    return force


def check_fully_marked(path: Path, kind: str) -> None:
    """`verify` finds every mark on a file the writer just wrote, and they agree: its log row (by the
    file's hash), a Trusted C2PA manifest, the synthetic-media metadata and, when the row says it was
    watermarked, the watermark (of a video's frames, or of its soundtrack when the frames are too small
    to carry one), all with one payload."""
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
        if kind == "video" and found and "skipped" in found["details"]:  # frames too small for the mark:
            found = report.audio_watermark  # the row says watermarked because its soundtrack is
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
