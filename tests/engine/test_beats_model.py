"""The BEATs re-implementation: official checkpoints (state-dict names and shapes of microsoft/unilm's beats code)
load strictly and give the same outputs as the model they were saved from, tokens come out in the official order,
the fbank front end is the official one, and every bad file fails with a clear `EarmarkError`."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torchaudio.compliance import kaldi

from engine.encoders.beats_model import (
    BEATs,
    BEATsConfig,
    fbank,
    load_beats_checkpoint,
    tokens_to_grid,
)
from engine.errors import EarmarkError
from tests.helpers import TINY_BEATS as TINY

#: The cfg of the published BEATs_iter3 / BEATs_iter3_plus_AS2M checkpoints (the fields that differ from the defaults).
ITER3 = {
    "input_patch_size": 16,
    "relative_position_embedding": True,
    "gru_rel_pos": True,
    "deep_norm": True,
    "max_distance": 800,
}

#: State-dict keys of the official model (microsoft/unilm beats/BEATs.py and backbone.py), with their shapes for
#: the BEATs_iter3 settings: top level, then layers 0 and 1 (layer 0's relative_attention_bias is shared by every
#: layer, and the official state dict repeats it under each layer's name).
OFFICIAL_SHAPES = {
    "post_extract_proj.weight": (768, 512),
    "post_extract_proj.bias": (768,),
    "patch_embedding.weight": (512, 1, 16, 16),
    "layer_norm.weight": (512,),
    "layer_norm.bias": (512,),
    "encoder.pos_conv.0.weight_g": (1, 1, 128),
    "encoder.pos_conv.0.weight_v": (768, 48, 128),
    "encoder.pos_conv.0.bias": (768,),
    "encoder.layer_norm.weight": (768,),
    "encoder.layer_norm.bias": (768,),
    **{
        f"encoder.layers.{i}.{name}": shape
        for i in (0, 1)
        for name, shape in {
            "self_attn.relative_attention_bias.weight": (320, 12),
            "self_attn.grep_a": (1, 12, 1, 1),
            "self_attn.grep_linear.weight": (8, 64),
            "self_attn.grep_linear.bias": (8,),
            "self_attn.q_proj.weight": (768, 768),
            "self_attn.q_proj.bias": (768,),
            "self_attn.k_proj.weight": (768, 768),
            "self_attn.k_proj.bias": (768,),
            "self_attn.v_proj.weight": (768, 768),
            "self_attn.v_proj.bias": (768,),
            "self_attn.out_proj.weight": (768, 768),
            "self_attn.out_proj.bias": (768,),
            "self_attn_layer_norm.weight": (768,),
            "self_attn_layer_norm.bias": (768,),
            "fc1.weight": (3072, 768),
            "fc1.bias": (3072,),
            "fc2.weight": (768, 3072),
            "fc2.bias": (768,),
            "final_layer_norm.weight": (768,),
            "final_layer_norm.bias": (768,),
        }.items()
    },
}


def _tiny(**changes) -> tuple[BEATs, BEATsConfig]:
    torch.manual_seed(0)
    cfg = BEATsConfig.from_dict({**TINY, **changes})
    model = BEATs(cfg).eval()
    with torch.no_grad():  # move every weight off its neutral init so that a wrongly loaded one shows
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model, cfg


def _save(tmp_path, model, cfg, name="beats.pt", **extra):
    path = tmp_path / name
    torch.save({"cfg": dataclasses.asdict(cfg), "model": model.state_dict(), **extra}, path)
    return path


def _fbank(batch=2, frames=100):
    torch.manual_seed(1)
    return torch.randn(batch, frames, 128)


def test_config_has_the_official_defaults_and_ignores_unknown_keys():
    cfg = BEATsConfig.from_dict({"encoder_layers": 3, "not_a_field": 1})
    assert cfg.encoder_layers == 3 and not hasattr(cfg, "not_a_field")
    assert (cfg.input_patch_size, cfg.embed_dim, cfg.encoder_embed_dim) == (-1, 512, 768)
    assert (cfg.encoder_ffn_embed_dim, cfg.encoder_layers, cfg.encoder_attention_heads) == (3072, 3, 12)
    assert (cfg.conv_pos, cfg.conv_pos_groups, cfg.num_buckets, cfg.max_distance) == (128, 16, 320, 1280)
    assert (cfg.dropout, cfg.attention_dropout, cfg.activation_dropout, cfg.predictor_class) == (0.1, 0.1, 0.0, 527)


def test_saved_checkpoint_loads_with_identical_outputs(tmp_path):
    model, cfg = _tiny()
    loaded, loaded_cfg = load_beats_checkpoint(_save(tmp_path, model, cfg))
    assert loaded_cfg == cfg and not loaded.training
    x = _fbank(frames=100)
    with torch.no_grad():
        expected, got = model.layer_outputs(x), loaded.layer_outputs(x)
    assert len(got) == cfg.encoder_layers
    for e, g in zip(expected, got, strict=True):
        assert g.shape == (2, (100 // 16) * 8, cfg.encoder_embed_dim)
        assert torch.equal(e, g)
    assert not torch.equal(got[0], got[1])
    with torch.no_grad():
        assert torch.equal(loaded(x), got[-1])


def test_official_key_names_and_shapes_for_the_published_settings():
    with torch.device("meta"):  # the full-size model, without allocating its 90 M weights
        model = BEATs(BEATsConfig.from_dict(ITER3))
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert {k: shapes.get(k) for k in OFFICIAL_SHAPES} == OFFICIAL_SHAPES
    assert len(shapes) == 10 + 12 * 20  # 10 top-level entries and 20 per layer, as in the official model
    assert all(f"encoder.layers.{i}.self_attn.relative_attention_bias.weight" in shapes for i in range(12))
    assert not any(k.startswith("predictor.") for k in shapes)


def test_relative_position_bias_is_shared_by_every_layer():
    model, _ = _tiny(encoder_layers=3)
    first = model.encoder.layers[0].self_attn.relative_attention_bias
    assert all(layer.self_attn.relative_attention_bias is first for layer in model.encoder.layers)


def test_finetuned_checkpoint_with_predictor_loads_strictly(tmp_path):
    model, cfg = _tiny(finetuned_model=True, predictor_class=5)
    assert {"predictor.weight", "predictor.bias"} <= set(model.state_dict())
    path = _save(tmp_path, model, cfg, label_dict={0: "/m/09x0r"})
    loaded, _ = load_beats_checkpoint(path)
    x = _fbank()
    with torch.no_grad():
        probs = loaded.predict(x)
        assert torch.equal(probs, model.predict(x))
    assert probs.shape == (2, 5) and ((probs > 0) & (probs < 1)).all()


def test_tokens_come_out_time_major_with_eight_frequency_rows():
    model, _ = _tiny()
    x = _fbank(batch=1, frames=64)
    assert model.grid_shape(64) == (8, 4)
    captured = []
    hook = model.layer_norm.register_forward_hook(lambda _m, _i, out: captured.append(out))
    with torch.no_grad():
        model.layer_outputs(x)
        hook.remove()
        t, f = 2, 5  # the patch of frames 32..47 and mel bands 80..95
        patch = model.patch_embedding(x[:, None, t * 16 : (t + 1) * 16, f * 16 : (f + 1) * 16]).flatten(1)
        tokens = captured[0]
        assert tokens.shape == (1, 4 * 8, 16)
        torch.testing.assert_close(tokens[:, t * 8 + f], model.layer_norm(patch))
        assert torch.equal(tokens_to_grid(tokens)[:, f, t], tokens[:, t * 8 + f])


def test_padding_mask_of_nothing_changes_nothing_and_predict_respects_padding():
    model, _ = _tiny(finetuned_model=True, predictor_class=3)
    x = _fbank(frames=96)
    none = torch.zeros(2, 96, dtype=torch.bool)
    half = none.clone()
    half[1, 48:] = True
    with torch.no_grad():
        assert torch.equal(model(x, none), model(x))
        padded = model.predict(x, half)
    assert padded.shape == (2, 3) and torch.isfinite(padded).all()


@pytest.mark.parametrize("n_samples", [400, 16000, 16123])
def test_fbank_frames_and_values_are_the_official_preprocessing(n_samples):
    torch.manual_seed(2)
    waves = torch.rand(2, n_samples) * 0.2 - 0.1
    out = fbank(waves)
    assert out.shape == (2, 1 + (n_samples - 400) // 160, 128)
    by_hand = kaldi.fbank(waves[1:2] * 32768, num_mel_bins=128, sample_frequency=16000, frame_length=25, frame_shift=10)
    assert torch.equal(out[1], (by_hand - 15.41663) / (2 * 6.55582))


# --- files that are not usable BEATs checkpoints --------------------------------------------------------------


def _assert_clear(excinfo, *phrases):
    message = str(excinfo.value)
    for phrase in phrases:
        assert phrase in message, message
    assert "earmark weights add beats" in message and "BEATs_iter3_plus_AS2M.pt" in message


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(EarmarkError) as excinfo:
        load_beats_checkpoint(tmp_path / "nowhere.pt")
    _assert_clear(excinfo, "nowhere.pt", "no such file")


def test_text_file_is_a_clear_error(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("these are not weights\n")
    with pytest.raises(EarmarkError) as excinfo:
        load_beats_checkpoint(path)
    _assert_clear(excinfo, "not a readable PyTorch checkpoint")


def test_pickle_that_weights_only_refuses_is_a_clear_error(tmp_path):
    path = tmp_path / "object.pt"
    torch.save(BEATsConfig(), path)  # an arbitrary Python object, which weights_only=True will not unpickle
    with pytest.raises(EarmarkError) as excinfo:
        load_beats_checkpoint(path)
    _assert_clear(excinfo, "not a readable PyTorch checkpoint", "Python objects")


def test_dict_without_cfg_is_a_clear_error(tmp_path):
    model, _ = _tiny()
    path = tmp_path / "bare.pt"
    torch.save({"model": model.state_dict()}, path)
    with pytest.raises(EarmarkError) as excinfo:
        load_beats_checkpoint(path)
    _assert_clear(excinfo, "not a BEATs checkpoint", "'cfg'", "found keys model")


def test_renamed_key_is_a_clear_error(tmp_path):
    model, cfg = _tiny()
    state = model.state_dict()
    state["encoder.layers.0.fc1.weight_renamed"] = state.pop("encoder.layers.0.fc1.weight")
    path = tmp_path / "renamed.pt"
    torch.save({"cfg": dataclasses.asdict(cfg), "model": state}, path)
    with pytest.raises(EarmarkError) as excinfo:
        load_beats_checkpoint(path)
    _assert_clear(
        excinfo,
        "do not match",
        "1 missing (encoder.layers.0.fc1.weight)",
        "1 unexpected (encoder.layers.0.fc1.weight_renamed)",
    )


def test_weights_of_the_wrong_shape_for_the_cfg_are_a_clear_error(tmp_path):
    model, cfg = _tiny()
    path = tmp_path / "mismatch.pt"
    torch.save({"cfg": {**dataclasses.asdict(cfg), "encoder_ffn_embed_dim": 48}, "model": model.state_dict()}, path)
    with pytest.raises(EarmarkError) as excinfo:
        load_beats_checkpoint(path)
    _assert_clear(excinfo, "wrong shape", "encoder.layers.0.fc1.weight is (64, 32), expected (48, 32)")


def test_cfg_that_describes_no_model_is_a_clear_error(tmp_path):
    model, cfg = _tiny()
    path = _save(tmp_path, model, dataclasses.replace(cfg, input_patch_size=-1))
    with pytest.raises(EarmarkError) as excinfo:
        load_beats_checkpoint(path)
    _assert_clear(excinfo, "does not describe a BEATs model")
