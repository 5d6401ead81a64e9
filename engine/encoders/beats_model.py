"""BEATs, the audio transformer of Chen et al., "BEATs: Audio Pre-Training with Acoustic Tokenizers" (ICML 2023),
re-implemented so that the official checkpoints (BEATs_iter3.pt, BEATs_iter3_plus_AS2M.pt and the fine-tuned
ones with a `predictor`) load strictly, with the state-dict key names and shapes of the official code in
https://github.com/microsoft/unilm/tree/master/beats (BEATs.py, backbone.py, modules.py).

Input: `fbank(waveforms)` turns 16 kHz audio into normalised 128-band Kaldi filterbanks [B, T, 128] (10 ms
frames). The model cuts them into 16 x 16 patches, so a clip of T frames gives 8 frequency rows by T // 16 time
columns of tokens, in the official order: token index = t * 8 + f (time-major; f = 0 is the lowest band).
`layer_outputs` returns the hidden states after every transformer layer.

The forward pass follows the official one operation by operation (the attention's scaling by 1/32 and max
subtraction, the gated relative position bias computed once in layer 0 and shared, DeepNorm residual scaling),
dropout and layer drop included. Not reproduced: the layer-wise gradient decay (`GradMultiply`, a training-only
gradient scaling) and the official random initialisation; weights are meant to come from a checkpoint.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.errors import EarmarkError
from engine.weights import KINDS

#: Mean and standard deviation of the official fbank normalisation: (fbank - mean) / (2 * std).
FBANK_MEAN = 15.41663
FBANK_STD = 6.55582
SAMPLE_RATE = 16000
N_MELS = 128
#: Where to get real weights; every loading error ends with it.
WHERE_TO_GET = KINDS["beats"].where  # one text for every place that tells users where to get BEATs


@dataclass
class BEATsConfig:
    """The official `BEATsConfig` fields and defaults; checkpoints keep theirs in `cfg`."""

    input_patch_size: int = -1  # patch size of the patch embedding (16 in every published checkpoint)
    embed_dim: int = 512  # patch embedding dimension
    conv_bias: bool = False  # bias in the patch embedding
    encoder_layers: int = 12
    encoder_embed_dim: int = 768
    encoder_ffn_embed_dim: int = 3072
    encoder_attention_heads: int = 12
    activation_fn: str = "gelu"
    layer_wise_gradient_decay_ratio: float = 1.0
    layer_norm_first: bool = False
    deep_norm: bool = False
    dropout: float = 0.1
    attention_dropout: float = 0.1
    activation_dropout: float = 0.0
    encoder_layerdrop: float = 0.0
    dropout_input: float = 0.0
    conv_pos: int = 128  # kernel size of the convolutional positional embedding
    conv_pos_groups: int = 16
    relative_position_embedding: bool = False
    num_buckets: int = 320
    max_distance: int = 1280
    gru_rel_pos: bool = False  # gate the relative position bias per query
    finetuned_model: bool = False  # has the AudioSet `predictor`
    predictor_dropout: float = 0.1
    predictor_class: int = 527

    @classmethod
    def from_dict(cls, d: dict) -> BEATsConfig:
        """The config of a checkpoint's `cfg` dict; keys that are not fields are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def fbank(waveforms: Tensor) -> Tensor:
    """Normalised Kaldi filterbanks [B, T, 128] of 16 kHz waveforms [B, N] in [-1, 1], as the official
    `preprocess`: T = 1 + (N - 400) // 160 frames of 25 ms every 10 ms."""
    from torchaudio.compliance import kaldi

    banks = [
        kaldi.fbank(
            w.unsqueeze(0) * 2**15, num_mel_bins=N_MELS, sample_frequency=SAMPLE_RATE, frame_length=25, frame_shift=10
        )
        for w in waveforms
    ]
    return (torch.stack(banks, dim=0) - FBANK_MEAN) / (2 * FBANK_STD)


def tokens_to_grid(tokens: Tensor, n_freq: int = 8) -> Tensor:
    """Tokens [B, N, D] in the official order (index = t * n_freq + f) as a grid [B, n_freq, N // n_freq, D]."""
    b, n, d = tokens.shape
    return tokens.reshape(b, n // n_freq, n_freq, d).permute(0, 2, 1, 3)


def _reduce_padding_mask(features: Tensor, padding_mask: Tensor) -> Tensor:
    """The official `forward_padding_mask`: a step is padding when all the mask entries it covers are."""
    extra = padding_mask.size(1) % features.size(1)
    if extra > 0:
        padding_mask = padding_mask[:, :-extra]
    return padding_mask.view(padding_mask.size(0), features.size(1), -1).all(-1)


def _gelu(x: Tensor) -> Tensor:
    return F.gelu(x.float()).type_as(x)


def _gelu_accurate(x: Tensor) -> Tensor:  # the tanh approximation
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * torch.pow(x, 3))))


_ACTIVATIONS = {
    "relu": F.relu,
    "gelu": _gelu,
    "gelu_fast": _gelu_accurate,
    "gelu_accurate": _gelu_accurate,
    "tanh": torch.tanh,
    "linear": lambda x: x,
    "glu": lambda x: x,
}


class _GLULinear(nn.Module):
    """The official `GLU_Linear` with swish gating (fc1 when activation_fn is "glu")."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.output_dim = dim_out
        self.linear = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: Tensor) -> Tensor:
        x = self.linear(x)
        return x[..., : self.output_dim] * F.silu(x[..., self.output_dim :])


class _WeightNormConv1d(nn.Module):
    """The official positional convolution: Conv1d with weight normalisation over dim 2, stored as `weight_g`,
    `weight_v` and `bias` like `torch.nn.utils.weight_norm(conv, dim=2)` (deprecated, it warns), then
    `SamePad` (an even kernel with padding kernel // 2 makes one step too many; the last is dropped)."""

    def __init__(self, channels: int, kernel_size: int, groups: int) -> None:
        super().__init__()
        self.kernel_size, self.groups = kernel_size, groups
        std = math.sqrt(4 / (kernel_size * channels))
        self.weight_v = nn.Parameter(torch.randn(channels, channels // groups, kernel_size) * std)
        self.weight_g = nn.Parameter(self.weight_v.detach().norm(dim=(0, 1), keepdim=True))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        weight = self.weight_v * (self.weight_g / self.weight_v.norm(dim=(0, 1), keepdim=True))
        x = F.conv1d(x, weight, self.bias, padding=self.kernel_size // 2, groups=self.groups)
        return x[:, :, :-1] if self.kernel_size % 2 == 0 else x


class MultiheadAttention(nn.Module):
    """Self-attention with the official bucketed relative position bias, optionally gated (gru_rel_pos)."""

    ALPHA = 32  # the official code divides q by 32 and multiplies the logits back, for fp16 range

    def __init__(self, cfg: BEATsConfig, shared_bias: nn.Embedding | None = None) -> None:
        super().__init__()
        dim, heads = cfg.encoder_embed_dim, cfg.encoder_attention_heads
        if dim % heads:
            raise ValueError(f"encoder_embed_dim {dim} is not divisible by encoder_attention_heads {heads}")
        self.num_heads, self.head_dim = heads, dim // heads
        self.scaling = self.head_dim**-0.5
        self.dropout = cfg.attention_dropout
        self.num_buckets, self.max_distance = cfg.num_buckets, cfg.max_distance
        self.has_relative_attention_bias = cfg.relative_position_embedding
        if self.has_relative_attention_bias:
            self.relative_attention_bias = (
                shared_bias if shared_bias is not None else nn.Embedding(cfg.num_buckets, heads)
            )
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.q_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self.gru_rel_pos = cfg.gru_rel_pos
        if self.gru_rel_pos:
            self.grep_linear = nn.Linear(self.head_dim, 8)
            self.grep_a = nn.Parameter(torch.ones(1, heads, 1, 1))

    def _buckets(self, relative: Tensor) -> Tensor:
        """The official bidirectional log-spaced buckets of relative positions (key - query)."""
        half = self.num_buckets // 2
        buckets = (relative > 0).to(torch.long) * half
        relative = relative.abs()
        max_exact = half // 2
        large = max_exact + (
            torch.log(relative.float() / max_exact) / math.log(self.max_distance / max_exact) * (half - max_exact)
        ).to(torch.long)
        large = torch.minimum(large, torch.full_like(large, half - 1))
        return buckets + torch.where(relative < max_exact, relative, large)

    def compute_bias(self, q_len: int, k_len: int) -> Tensor:
        """Relative position bias [heads, q_len, k_len]."""
        relative = torch.arange(k_len)[None, :] - torch.arange(q_len)[:, None]
        buckets = self._buckets(relative).to(self.relative_attention_bias.weight.device)
        return self.relative_attention_bias(buckets).permute(2, 0, 1)

    def forward(
        self,
        x: Tensor,
        key_padding_mask: Tensor | None = None,
        position_bias: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """x [B, N, D] -> (attended [B, N, D], the ungated position bias [1, H, N, N] for the next layer)."""
        b, n, d = x.shape
        h, hd = self.num_heads, self.head_dim
        if self.has_relative_attention_bias and position_bias is None:
            position_bias = self.compute_bias(n, n).unsqueeze(0)
        q = self.q_proj(x) * self.scaling
        q = q * (1 / self.ALPHA)
        q = q.view(b, n, h, hd).transpose(1, 2)
        k = self.k_proj(x).view(b, n, h, hd).transpose(1, 2)
        v = self.v_proj(x).view(b, n, h, hd).transpose(1, 2)
        logits = q @ k.transpose(-1, -2)
        logits = (logits - logits.max(dim=-1, keepdim=True)[0]) * self.ALPHA
        if key_padding_mask is not None:
            logits = logits.masked_fill(key_padding_mask[:, None, None, :].to(torch.bool), float("-inf"))
        if position_bias is not None:
            bias = position_bias
            if self.gru_rel_pos:
                query = q * self.ALPHA / self.scaling
                gates = torch.sigmoid(self.grep_linear(query).view(b, h, n, 2, 4).sum(-1))
                gate_a, gate_b = gates.chunk(2, dim=-1)
                bias = (gate_a * (gate_b * self.grep_a - 1.0) + 2.0) * position_bias
            logits = logits + bias
        weights = F.dropout(F.softmax(logits, dim=-1), p=self.dropout, training=self.training)
        out = (weights @ v).transpose(1, 2).reshape(b, n, d)
        return self.out_proj(out), position_bias


class TransformerLayer(nn.Module):
    """The official `TransformerSentenceEncoderLayer` (post-LN with DeepNorm scaling, or pre-LN)."""

    def __init__(self, cfg: BEATsConfig, shared_bias: nn.Embedding | None = None) -> None:
        super().__init__()
        if cfg.activation_fn not in _ACTIVATIONS:
            raise ValueError(f"activation_fn {cfg.activation_fn!r} is not one of {sorted(_ACTIVATIONS)}")
        dim, ffn = cfg.encoder_embed_dim, cfg.encoder_ffn_embed_dim
        self.cfg = cfg
        self.activation = _ACTIVATIONS[cfg.activation_fn]
        self.self_attn = MultiheadAttention(cfg, shared_bias)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1 = _GLULinear(dim, ffn) if cfg.activation_fn == "glu" else nn.Linear(dim, ffn)
        self.fc2 = nn.Linear(ffn, dim)
        self.final_layer_norm = nn.LayerNorm(dim)
        self.deep_norm_alpha = math.pow(2 * cfg.encoder_layers, 1 / 4) if cfg.deep_norm else 1.0

    def _ffn(self, x: Tensor) -> Tensor:
        x = F.dropout(self.activation(self.fc1(x)), p=self.cfg.activation_dropout, training=self.training)
        return F.dropout(self.fc2(x), p=self.cfg.dropout, training=self.training)

    def forward(
        self,
        x: Tensor,
        padding_mask: Tensor | None,
        position_bias: Tensor | None,
    ) -> tuple[Tensor, Tensor | None]:
        p = self.cfg.dropout
        if self.cfg.layer_norm_first:
            attended, position_bias = self.self_attn(self.self_attn_layer_norm(x), padding_mask, position_bias)
            x = x + F.dropout(attended, p=p, training=self.training)
            return x + self._ffn(self.final_layer_norm(x)), position_bias
        attended, position_bias = self.self_attn(x, padding_mask, position_bias)
        x = self.self_attn_layer_norm(x * self.deep_norm_alpha + F.dropout(attended, p=p, training=self.training))
        return self.final_layer_norm(x * self.deep_norm_alpha + self._ffn(x)), position_bias


class TransformerEncoder(nn.Module):
    """Convolutional positional embedding, then the layers; layer 0's relative position bias is shared by all
    (the official state dict repeats it under every layer's key)."""

    def __init__(self, cfg: BEATsConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.pos_conv = nn.Sequential(
            _WeightNormConv1d(cfg.encoder_embed_dim, cfg.conv_pos, cfg.conv_pos_groups), nn.GELU()
        )  # keys encoder.pos_conv.0.{weight_g,weight_v,bias}
        first = TransformerLayer(cfg)
        shared = first.self_attn.relative_attention_bias if cfg.relative_position_embedding else None
        self.layers = nn.ModuleList([first] + [TransformerLayer(cfg, shared) for _ in range(cfg.encoder_layers - 1)])
        self.layer_norm = nn.LayerNorm(cfg.encoder_embed_dim)

    def forward(self, x: Tensor, padding_mask: Tensor | None = None) -> list[Tensor]:
        """x [B, N, D] -> the hidden states after each layer; the last as the official encoder returns it."""
        if padding_mask is not None:
            x = x.masked_fill(padding_mask.unsqueeze(-1), 0)
        x = x + self.pos_conv(x.transpose(1, 2)).transpose(1, 2)
        if not self.cfg.layer_norm_first:
            x = self.layer_norm(x)
        x = F.dropout(x, p=self.cfg.dropout, training=self.training)
        outputs, position_bias = [], None
        for layer in self.layers:
            if not self.training or torch.rand(()).item() > self.cfg.encoder_layerdrop:
                x, position_bias = layer(x, padding_mask, position_bias)
            outputs.append(x)
        if self.cfg.layer_norm_first:
            outputs[-1] = self.layer_norm(outputs[-1])
        return outputs


class BEATs(nn.Module):
    """The BEATs model: patch embedding of the fbank, transformer encoder and, when fine-tuned, the predictor."""

    def __init__(self, cfg: BEATsConfig) -> None:
        super().__init__()
        if cfg.deep_norm and cfg.layer_norm_first:
            raise ValueError("deep_norm and layer_norm_first cannot both be set")
        self.cfg = cfg
        self.post_extract_proj = (
            nn.Linear(cfg.embed_dim, cfg.encoder_embed_dim) if cfg.embed_dim != cfg.encoder_embed_dim else None
        )
        self.patch_embedding = nn.Conv2d(
            1, cfg.embed_dim, kernel_size=cfg.input_patch_size, stride=cfg.input_patch_size, bias=cfg.conv_bias
        )
        self.encoder = TransformerEncoder(cfg)
        self.layer_norm = nn.LayerNorm(cfg.embed_dim)
        self.predictor = nn.Linear(cfg.encoder_embed_dim, cfg.predictor_class) if cfg.finetuned_model else None

    def grid_shape(self, n_frames: int) -> tuple[int, int]:
        """(frequency rows, time columns) of the token grid for an fbank of `n_frames` frames:
        (8, n_frames // 16) with the published patch size; token index = t * rows + f."""
        return N_MELS // self.cfg.input_patch_size, n_frames // self.cfg.input_patch_size

    def _embed(self, fbank: Tensor, padding_mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
        if padding_mask is not None:
            padding_mask = _reduce_padding_mask(fbank, padding_mask)
        features = self.patch_embedding(fbank.unsqueeze(1))  # [B, C, T // 16, 8]
        features = self.layer_norm(features.reshape(features.shape[0], features.shape[1], -1).transpose(1, 2))
        if padding_mask is not None:
            padding_mask = _reduce_padding_mask(features, padding_mask)
        if self.post_extract_proj is not None:
            features = self.post_extract_proj(features)
        return F.dropout(features, p=self.cfg.dropout_input, training=self.training), padding_mask

    def layer_outputs(self, fbank: Tensor, padding_mask: Tensor | None = None) -> list[Tensor]:
        """Hidden states [B, N, D] after each transformer layer (index 0 after layer 1; the last is the
        official `extract_features` output), N = (T // 16) * 8 tokens in the official order.

        `fbank` [B, T, 128] comes from `fbank()`. `padding_mask` (True = padding) is per frame [B, T] or,
        as in the official code, per sample [B, n_samples]; it is reduced to tokens the official way."""
        x, padding_mask = self._embed(fbank, padding_mask)
        return self.encoder(x, padding_mask)

    def forward(self, fbank: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        """The final hidden states [B, N, D]."""
        return self.layer_outputs(fbank, padding_mask)[-1]

    def predict(self, fbank: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        """Class probabilities [B, predictor_class] of a fine-tuned model (sigmoid of the mean token logits)."""
        if self.predictor is None:
            raise ValueError("this BEATs model has no predictor (finetuned_model is False)")
        x, mask = self._embed(fbank, padding_mask)
        x = self.encoder(x, mask)[-1]
        logits = self.predictor(F.dropout(x, p=self.cfg.predictor_dropout, training=self.training))
        if mask is not None and mask.any():
            logits = logits.masked_fill(mask.unsqueeze(-1), 0).sum(dim=1) / (~mask).sum(dim=1, keepdim=True)
        else:
            logits = logits.mean(dim=1)
        return torch.sigmoid(logits)


def _first(names: list[str], n: int = 3) -> str:
    return ", ".join(names[:n]) + (", ..." if len(names) > n else "")


def load_beats_checkpoint(path: str | Path, device: str | torch.device | None = None) -> tuple[BEATs, BEATsConfig]:
    """The model (in eval mode, on `device`) and config of an official BEATs checkpoint, a dict with "cfg" and
    "model". Every problem with the file raises an `EarmarkError` that says what is wrong and where to get
    real weights."""
    path = Path(path)

    def fail(problem: str) -> EarmarkError:
        return EarmarkError(f"{path}: {problem}; {WHERE_TO_GET}")

    if not path.is_file():
        raise fail("no such file" if not path.exists() else "not a file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        raise fail(f"cannot be read ({exc.strerror or exc})") from None
    except Exception as exc:  # noqa: BLE001 - torch.load raises many kinds for a file that is not a checkpoint
        if "weights only load failed" in str(exc).lower():
            raise fail(
                "not a readable PyTorch checkpoint: it holds Python objects besides tensors and plain "
                "values, which Earmark does not unpickle"
            ) from None
        raise fail("not a readable PyTorch checkpoint (the file is of another kind, or damaged)") from None
    if (
        not isinstance(checkpoint, dict)
        or not isinstance(checkpoint.get("cfg"), dict)
        or not isinstance(checkpoint.get("model"), dict)
    ):
        found = (
            f"keys {_first(sorted(map(str, checkpoint)), 5) or '(none)'}"
            if isinstance(checkpoint, dict)
            else f"a {type(checkpoint).__name__}"
        )
        raise fail(f"not a BEATs checkpoint: expected a dict with a 'cfg' dict and a 'model' state dict, found {found}")
    state = checkpoint["model"]
    if not all(isinstance(v, Tensor) for v in state.values()):
        raise fail("not a BEATs checkpoint: its 'model' entry holds values that are not tensors")
    cfg = BEATsConfig.from_dict(checkpoint["cfg"])
    try:
        model = BEATs(cfg)
    except Exception as exc:  # noqa: BLE001 - a bad cfg value fails in many places of the constructor
        raise fail(f"its 'cfg' does not describe a BEATs model ({exc})") from None
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise fail(
            f"its weights do not match the BEATs model its 'cfg' describes: {len(missing)} missing "
            f"({_first(missing) or 'none'}), {len(unexpected)} unexpected ({_first(unexpected) or 'none'})"
        )
    wrong = [
        f"{k} is {tuple(state[k].shape)}, expected {tuple(v.shape)}"
        for k, v in expected.items()
        if state[k].shape != v.shape
    ]
    if wrong:
        raise fail(f"{len(wrong)} weights have the wrong shape for its 'cfg' ({_first(wrong, 2)})")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise fail(f"its weights do not load ({str(exc).splitlines()[0]})") from None
    return model.to(device).eval() if device is not None else model.eval(), cfg
