"""Configurations, the published state_dict layout, shapes of tiny and vox-256, and checkpoints."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from common.errors import UserError
from common.impl import load

PHASE = "phase3_first_order_motion"
ALL_FORWARD_IDS = ("p3.kp", "p3.motion", "p3.gen")


@pytest.fixture(scope="module")
def model():
    return load(PHASE, "model")


@pytest.fixture(scope="module")
def layout(shared_dir):
    return json.loads((shared_dir / "reference" / "fomm_vox256_state_dict.json").read_text())


@pytest.fixture(scope="module")
def vox(model):
    return model.build_fomm()


def test_vox256_config_equals_the_published_model_params(model, layout):
    assert model.get_config("vox-256").model_params() == layout["model_params"]
    cfg = model.FOMMConfig.from_model_params(layout["model_params"])
    assert cfg.model_params() == layout["model_params"]


def test_generator_options_of_ours_are_off_in_vox256_and_stored_when_on(model):
    """exact_warp / blend_warped_source / denoise_source: absent from vox-256's (published) model_params,
    kept by tiny's."""
    options = ("exact_warp", "blend_warped_source", "denoise_source")
    vox = model.get_config("vox-256")
    assert not any(getattr(vox.generator, o) for o in options)
    assert not set(options) & set(vox.model_params()["generator_params"])
    tiny = model.get_config("tiny")
    params = tiny.model_params()
    assert all(params["generator_params"][o] for o in options)
    back = model.FOMMConfig.from_model_params(params, frame_size=tiny.frame_size)
    assert all(getattr(back.generator, o) for o in options)
    built = model.build_fomm(tiny)["generator"]
    assert built.exact_warp and built.blend_warped_source and built.denoise is not None
    assert model.build_fomm()["generator"].denoise is None  # no weights of ours in vox-256


@pytest.mark.parametrize("name", ["kp_detector", "generator", "discriminator"])
def test_vox256_state_dict_layout_is_the_published_one(vox, layout, name):
    spec = {e["key"]: (tuple(e["shape"]), e["dtype"]) for e in layout["modules"][name]["state_dict"]}
    state = vox[name].state_dict()
    ours = {k: (tuple(v.shape), str(v.dtype).replace("torch.", "")) for k, v in state.items()}
    assert ours == spec
    n_params = sum(p.numel() for p in vox[name].parameters())
    assert n_params == layout["modules"][name]["num_parameters"]


@pytest.mark.todo(*ALL_FORWARD_IDS)
def test_tiny_shapes(model):
    cfg = model.get_config("tiny")
    m = model.build_fomm(cfg)
    s = cfg.frame_size
    x = torch.rand(2, 3, s, s)
    with torch.no_grad():
        kp = m["kp_detector"].eval()(x)
        out = m["generator"].eval()(x, kp_driving=kp, kp_source=kp)
        disc = m["discriminator"].eval()({"prediction_1": out["prediction"]})
    k = cfg.num_kp
    assert kp["value"].shape == (2, k, 2) and kp["jacobian"].shape == (2, k, 2, 2)
    assert out["prediction"].shape == (2, 3, s, s)
    assert out["mask"].shape == (2, k + 1, s // 2, s // 2)
    assert out["sparse_deformed"].shape == (2, k + 1, 3, s // 2, s // 2)
    assert out["occlusion_map"].shape == (2, 1, s // 2, s // 2)
    assert out["deformation"].shape == (2, s // 2, s // 2, 2)
    assert disc["prediction_map_1"].shape[:2] == (2, 1) and len(disc["feature_maps_1"]) == 4


@pytest.mark.todo(*ALL_FORWARD_IDS)
def test_vox256_shapes_at_128px(vox):
    """The vox-256 modules at 128x128 (a quarter of the compute of 256x256): every output's shape."""
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        kp = vox["kp_detector"].eval()(x)
        out = vox["generator"].eval()(x, kp_driving=kp, kp_source=kp)
    assert kp["value"].shape == (1, 10, 2) and kp["jacobian"].shape == (1, 10, 2, 2)
    assert out["prediction"].shape == (1, 3, 128, 128)
    assert out["mask"].shape == (1, 11, 32, 32) and out["occlusion_map"].shape == (1, 1, 32, 32)
    assert out["sparse_deformed"].shape == (1, 11, 3, 32, 32) and out["deformation"].shape == (1, 32, 32, 2)


def test_checkpoint_round_trip_in_the_published_layout(model, tmp_path):
    cfg = model.get_config("tiny")
    m = model.build_fomm(cfg)
    opt = torch.optim.Adam(m["generator"].parameters(), lr=1e-4, betas=(0.5, 0.999))
    path = model.save_checkpoint(tmp_path / "ck.pt", {n: m[n] for n in model.MODULES}, cfg, epoch=3,
                                 optimizers={"optimizer_generator": opt})
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]  # written through a temporary file, renamed
    raw = torch.load(path, weights_only=True)
    assert {"kp_detector", "generator", "discriminator", "optimizer_generator", "epoch"} <= raw.keys()
    assert raw["epoch"] == 3 and not any(k.startswith("module.") for k in raw["generator"])
    loaded, cfg2, _ = model.load_fomm(path)
    assert cfg2.model_params() == cfg.model_params() and cfg2.frame_size == cfg.frame_size
    for name in model.MODULES:
        for key, value in m[name].state_dict().items():
            assert torch.equal(loaded[name].state_dict()[key], value)


def test_a_checkpoint_of_another_config_or_a_bad_file_is_one_clear_error(model, tmp_path):
    cfg = model.get_config("tiny")
    m = model.build_fomm(cfg)
    path = model.save_checkpoint(tmp_path / "tiny.pt", {n: m[n] for n in model.MODULES}, cfg)
    with pytest.raises(UserError, match="another FOMM configuration"):
        model.load_fomm(path, expect=model.get_config("vox-256"))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match=r"^checkpoint .*junk\.pt [^\n]*$"):  # one line naming the file
        model.load_fomm(tmp_path / "junk.pt")
    with pytest.raises(UserError, match="checkpoint not found"):
        model.load_fomm(tmp_path / "missing.pt")
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(UserError, match="is not a FOMM checkpoint"):
        model.load_fomm(tmp_path / "other.pt")


def test_published_checkpoint_without_model_params_is_recognised(model, tmp_path):
    """Published files hold only the module/optimizer entries and 'epoch': the shapes tell the config."""
    cfg = model.get_config("tiny")
    m = model.build_fomm(cfg)
    torch.save({"kp_detector": m["kp_detector"].state_dict(), "generator": m["generator"].state_dict(),
                "epoch": 0}, tmp_path / "published_style.pt")
    _, found, _ = model.load_fomm(tmp_path / "published_style.pt")
    assert found.model_params() == cfg.model_params()


def test_a_run_checkpoint_keeps_its_config_under_extra(model, tmp_path):
    cfg = dataclasses.replace(model.get_config("tiny"), frame_size=96)
    m = model.build_fomm(cfg)
    state = {name: m[name].state_dict() for name in model.MODULES}
    extra = {"model_params": cfg.model_params(), "frame_size": 96}  # where train.py's run checkpoints keep it
    torch.save({**state, "extra": extra}, tmp_path / "run.pt")
    _, found, _ = model.load_fomm(tmp_path / "run.pt")
    assert found.frame_size == 96 and found.model_params() == cfg.model_params()


def test_loaded_modules_are_in_eval_mode_and_another_discriminator_is_skipped(model, tmp_path):
    cfg = model.get_config("tiny")
    m = model.build_fomm(cfg)
    state = {"kp_detector": m["kp_detector"].state_dict(), "generator": m["generator"].state_dict(),
             "discriminator": {"other.weight": torch.zeros(3)}, "model_params": cfg.model_params()}
    torch.save(state, tmp_path / "adv.pt")
    loaded, _, _ = model.load_fomm(tmp_path / "adv.pt")
    assert not any(mod.training for name in model.MODULES for mod in loaded[name].modules())


def test_an_unknown_config_name_is_one_line_naming_the_choices(model):
    with pytest.raises(UserError, match=r"unknown FOMM config 'vox-512'; choose one of vox-256"):
        model.get_config("vox-512")


def test_a_checkpoint_with_model_params_but_no_frame_size_is_taken_at_256_px(model, tmp_path):
    """model_params without frame_size: the published frame size, 256 (not the tiny config's 64)."""
    cfg = model.get_config("tiny")
    m = model.build_fomm(cfg)
    torch.save({"kp_detector": m["kp_detector"].state_dict(), "generator": m["generator"].state_dict(),
                "model_params": cfg.model_params()}, tmp_path / "no_size.pt")
    _, found, _ = model.load_fomm(tmp_path / "no_size.pt")
    assert found.frame_size == 256 and found.model_params() == cfg.model_params()


def test_a_file_with_a_keypoint_detector_but_no_generator_is_not_a_fomm_checkpoint(model, tmp_path):
    m = model.build_fomm(model.get_config("tiny"))
    torch.save({"kp_detector": m["kp_detector"].state_dict()}, tmp_path / "half.pt")
    with pytest.raises(UserError, match="is not a FOMM checkpoint"):
        model.load_fomm(tmp_path / "half.pt")


def test_a_published_style_checkpoint_with_extra_weights_matches_no_layout(model, tmp_path):
    """Shapes decide the config of a file without model_params: every key must match, extra ones too."""
    m = model.build_fomm(model.get_config("tiny"))
    generator = {**m["generator"].state_dict(), "extra_head.weight": torch.zeros(3)}
    torch.save({"kp_detector": m["kp_detector"].state_dict(), "generator": generator},
               tmp_path / "extra.pt")
    with pytest.raises(UserError, match="matches neither the vox-256 nor the tiny FOMM layout"):
        model.load_fomm(tmp_path / "extra.pt")
