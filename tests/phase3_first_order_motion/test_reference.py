"""The published FOMM's numbers (../shared/reference, computed by the published code) reproduced here.

Fast parts in the default suite: the keypoint detector, normalize_kp and the dense motion network of
vox-256 with the reference's seeded weights. The whole generator and discriminator (fp32 and the strict
float64 mode) run `verify_reference.py` itself, behind `slow`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from common.impl import current_impl, load
from tests.conftest import load_script

PHASE = "phase3_first_order_motion"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def verify(shared_dir):
    path = shared_dir / "reference" / "verify_reference.py"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return load_script(path, "fomm_verify_reference")


@pytest.fixture(scope="module")
def reference(verify, shared_dir):
    ref, meta = verify.load_reference(str(shared_dir / "reference" / verify.FOMM_REFERENCE))
    return ref, meta


def filled(verify, shared_dir, module: torch.nn.Module, name: str, meta: dict, prefix: str = ""):
    """Load the reference's seeded weights into `module` (optionally a sub-module under `prefix`)."""
    stats = verify.load_bn_stats(str(shared_dir / "reference" / verify.FOMM_BN_STATS), name)
    own = {prefix + k: v for k, v in module.state_dict().items()}
    weights = verify.fill_state_dict(own, meta["seeds"][name], stats)
    module.load_state_dict({k[len(prefix):]: v for k, v in weights.items()}, strict=True)
    return module.eval()


def check(verify, produced: dict, ref: dict) -> None:
    rows = []
    verify.compare("fomm", produced, ref, False, rows)
    bad = [r for r in rows if not r[4].startswith("ok")]
    assert rows and not bad, bad


@pytest.mark.todo("p3.kp")
def test_kp_detector_matches_the_published_outputs(verify, reference, shared_dir):
    ref, meta = reference
    kp_detector = load(PHASE, "keypoint_detector").KPDetector()  # defaults = vox-256
    kp_detector = filled(verify, shared_dir, kp_detector, "kp_detector", meta)
    st = verify.Stages(ref, False, "cpu")
    produced = verify.run_fomm({"kp_detector": kp_detector}, st)
    assert not st.errors, st.errors
    check(verify, produced, ref)


@pytest.mark.todo("p3.motion.normalize_kp", "p3.motion.jacobian_inverse")
def test_normalize_kp_matches_the_published_outputs(verify, reference):
    ref, _ = reference
    st = verify.Stages(ref, False, "cpu")
    produced = verify.run_fomm({"normalize_kp": load(PHASE, "motion_transfer").normalize_kp}, st)
    assert not st.errors, st.errors
    check(verify, produced, ref)


@pytest.mark.todo("p3.kp.antialias", "p3.motion")
def test_dense_motion_network_matches_the_published_outputs(verify, reference, shared_dir):
    """The generator's dense motion network alone, on the reference keypoints (the absolute row)."""
    ref, meta = reference
    mt = load(PHASE, "motion_transfer")
    net = mt.DenseMotionNetwork(block_expansion=64, num_blocks=5, max_features=1024, num_kp=10,
                                num_channels=3, estimate_occlusion_map=True, scale_factor=0.25)
    net = filled(verify, shared_dir, net, "generator", meta, prefix="dense_motion_network.")
    st = verify.Stages(ref, False, "cpu")
    v, j = st.get("kp_value"), st.get("kp_jacobian")
    source = st.images("images_u8")[0:1]
    with torch.no_grad():
        out = net(source, kp_driving={"value": v[1:2], "jacobian": j[1:2]},
                  kp_source={"value": v[0:1], "jacobian": j[0:1]})
    pairs = {"gen_mask": out["mask"], "gen_occlusion_map": out["occlusion_map"],
             "gen_deformation": out["deformation"], "gen_sparse_deformed": out["sparse_deformed"]}
    for key, value in pairs.items():
        diff = np.abs(value.numpy() - ref[key][:1]).max()
        assert diff <= verify.tolerance("fomm", key, False), (key, diff)


def run_script(shared_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    package = f"{PHASE}.template_" if current_impl() == "templates" else f"solutions.{PHASE}."
    cmd = [sys.executable, str(shared_dir / "reference" / "verify_reference.py"),
           "--fomm", f"{package}model:build_fomm",
           "--fomm-normalize", f"{package}motion_transfer:normalize_kp", *extra]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
@pytest.mark.todo("p3")
@pytest.mark.parametrize("mode", [(), ("--fp64",)], ids=["fp32", "fp64"])
def test_verify_reference_script_passes(shared_dir, mode):
    result = run_script(shared_dir, *mode)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "RESULT: PASS" in result.stdout
