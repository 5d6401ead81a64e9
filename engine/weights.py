"""Pretrained weights the user has on disk: where they are, whether they load, and where to get them.

Earmark never downloads a model on its own. The user points it at weights once (`earmark weights add`, or
the settings dialog) and the choice is kept in `weights.json` in the user's config directory
($EARMARK_CONFIG_DIR overrides it). Every problem (no entry, a missing file, a file of the wrong kind)
is an `EarmarkError` that says where to get the real weights and how to add them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from engine.errors import EarmarkError
from engine.files import write_text_atomic

CONFIG_FILE = "weights.json"


@dataclass(frozen=True)
class WeightsKind:
    name: str
    what: str
    where: str


KINDS = {
    "ast": WeightsKind(
        "ast",
        "an Audio Spectrogram Transformer in the transformers format (a folder with config.json and "
        "model.safetensors or pytorch_model.bin), or a model id already in the Hugging Face cache",
        "get the folder of MIT/ast-finetuned-audioset-10-10-0.4593 from https://huggingface.co/MIT/"
        "ast-finetuned-audioset-10-10-0.4593 (for example `huggingface-cli download MIT/ast-finetuned-audioset-"
        "10-10-0.4593 --local-dir ast`), then run `earmark weights add ast PATH`",
    ),
    "beats": WeightsKind(
        "beats",
        "an official BEATs checkpoint file (.pt, a dict with 'cfg' and 'model')",
        "download BEATs_iter3_plus_AS2M.pt from https://github.com/microsoft/unilm/tree/master/beats, then run "
        "`earmark weights add beats PATH`",
    ),
}


def config_dir() -> Path:
    override = os.environ.get("EARMARK_CONFIG_DIR")
    if override:
        return Path(override)
    from platformdirs import user_config_path

    return user_config_path("earmark", appauthor=False)


def _read() -> dict:
    path = config_dir() / CONFIG_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise EarmarkError(f"cannot read {path} ({exc}); fix or delete it and add the weights again") from None
    return data if isinstance(data, dict) else {}


def _write(data: dict) -> None:
    write_text_atomic(config_dir() / CONFIG_FILE, json.dumps(data, indent=2, sort_keys=True))


def kind(name: str) -> WeightsKind:
    if name not in KINDS:
        raise EarmarkError(f"unknown weights {name!r}; Earmark uses: {', '.join(KINDS)}")
    return KINDS[name]


def configured() -> dict[str, str]:
    """name -> the path or model id the user added."""
    return {name: str(value) for name, value in _read().get("weights", {}).items() if name in KINDS}


def allow_download() -> bool:
    """Whether the user allows fetching a model id that is not in the local Hugging Face cache yet."""
    return bool(_read().get("allow_download", False))


def set_allow_download(allowed: bool) -> None:
    data = _read()
    data["allow_download"] = bool(allowed)
    _write(data)


def location(name: str) -> str:
    """The configured path or model id of `name`; a clear error when there is none."""
    entry = kind(name)
    value = configured().get(name)
    if not value:
        raise EarmarkError(f"no {name} weights are set up; {entry.where}")
    return value


def add(name: str, value: str) -> str:
    """Check that `value` loads as `name` weights, then remember it. Returns what was stored."""
    kind(name)
    path = Path(value).expanduser()
    stored = str(path.resolve()) if path.exists() else value
    check(name, stored)
    data = _read()
    data.setdefault("weights", {})[name] = stored
    _write(data)
    return stored


def remove(name: str) -> None:
    data = _read()
    data.get("weights", {}).pop(name, None)
    _write(data)


def check(name: str, value: str | None = None) -> str:
    """Load the weights (the configured ones, or `value`) and describe them; errors say how to fix."""
    value = value or location(name)
    if name == "ast":
        from engine.encoders.ast import load_ast_model

        model = load_ast_model(value)
        config = model.config
        return (
            f"AST, {config.num_hidden_layers} layers of width {config.hidden_size}, "
            f"{config.num_mel_bins} mel bins x {config.max_length} frames"
        )
    if name == "beats":
        from engine.encoders.beats_model import load_beats_checkpoint

        _, cfg = load_beats_checkpoint(value)
        return f"BEATs, {cfg.encoder_layers} layers of width {cfg.encoder_embed_dim}"
    raise EarmarkError(f"unknown weights {name!r}; Earmark uses: {', '.join(KINDS)}")
