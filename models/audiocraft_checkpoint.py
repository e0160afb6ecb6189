"""Meta's audiocraft checkpoints (AudioGen, MusicGen) -> transformers' MusicGen modules.

A published folder holds ``state_dict.bin`` (the LM) and ``compression_state_dict.bin`` (EnCodec),
each ``{'best_state': state_dict, 'xp.cfg': YAML, ...}``. Every size and option is read from the
YAML (its ``${...}`` interpolations resolved); anything transformers' modules cannot express is
refused with a clear message rather than converted wrongly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import OmegaConf
from transformers import EncodecConfig, MusicgenDecoderConfig

from models.errors import UserError

LM_FILE = "state_dict.bin"
CODEC_FILE = "compression_state_dict.bin"
# What conversion reads from each xp.cfg. Only these are resolved: a training config also holds
# cluster paths and hydra references (${oc.env:USER}, ${hydra:...}) that only resolve where it ran.
LM_KEYS = ("lm_model", "channels", "transformer_lm", "codebooks_pattern", "fuser", "conditioners",
           "classifier_free_guidance", "dataset.segment_duration")
CODEC_KEYS = ("compression_model", "encodec", "seanet", "rvq")


@dataclass(frozen=True)
class AudiocraftCheckpoint:
    lm_state: dict[str, torch.Tensor]
    lm_cfg: dict
    codec_state: dict[str, torch.Tensor]
    codec_cfg: dict
    decoder_config: MusicgenDecoderConfig  # derived on reading, so an unsupported option fails first
    codec_config: EncodecConfig

    @property
    def text_encoder_name(self) -> str:
        return self.lm_cfg["conditioners"]["description"]["t5"]["name"]

    @property
    def window_seconds(self) -> float:
        """The length the LM was trained on: generation past it goes window by window."""
        return float(self.lm_cfg["dataset"]["segment_duration"])

    @property
    def cfg_coef(self) -> float:
        return float(self.lm_cfg["classifier_free_guidance"]["inference_coef"])


def is_audiocraft_folder(path: Path) -> bool:
    return (path / LM_FILE).is_file() and (path / CODEC_FILE).is_file()


def read_checkpoint(folder: Path) -> AudiocraftCheckpoint:
    """Load both files safely (``weights_only=True``), resolve their configs and check they convert."""
    if not is_audiocraft_folder(folder):
        raise UserError(
            f"{folder} is not an audiocraft checkpoint folder: it needs {LM_FILE} and {CODEC_FILE}; "
            "point --model at the folder that holds both."
        )
    lm_state, lm_cfg = _read_package(folder / LM_FILE, LM_KEYS)
    codec_state, codec_cfg = _read_package(folder / CODEC_FILE, CODEC_KEYS)
    decoder = decoder_config(lm_cfg)
    return AudiocraftCheckpoint(lm_state, lm_cfg, codec_state, codec_cfg, decoder,
                                codec_config(codec_cfg, decoder.num_codebooks))


def _read_package(path: Path, keys: tuple[str, ...]) -> tuple[dict, dict]:
    try:
        package = torch.load(path, map_location="cpu", weights_only=True)
        state, cfg = package["best_state"], _resolved(OmegaConf.create(package["xp.cfg"]), keys)
    except Exception as error:
        raise UserError(
            f"{path} is damaged or not an audiocraft checkpoint ({type(error).__name__}); download it again."
        ) from error
    return state, cfg


_ABSENT = object()


def _resolved(cfg, keys: tuple[str, ...]) -> dict:
    """Plain nested dicts holding just ``keys`` (dotted paths), their interpolations resolved."""
    out: dict = {}
    for key in keys:
        value = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=True)
        if value is _ABSENT:
            raise KeyError(f"xp.cfg has no {key}")
        if OmegaConf.is_config(value):
            value = OmegaConf.to_container(value, resolve=True)
        *parents, leaf = key.split(".")
        node = out
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return out


# --- configs --------------------------------------------------------------------------------


def _require(condition: bool, what: str) -> None:
    if not condition:
        raise UserError(f"This checkpoint uses {what}, which the converter does not support; use another checkpoint.")


def decoder_config(cfg: dict) -> MusicgenDecoderConfig:
    """The LM's shape, from ``transformer_lm`` and friends in ``xp.cfg``."""
    lm = cfg["transformer_lm"]
    n_q = lm["n_q"]
    _require(cfg.get("lm_model") == "transformer_lm", f"lm_model={cfg.get('lm_model')!r}")
    _require(lm.get("norm_first", False) and lm.get("norm", "layer_norm") == "layer_norm", "post-norm layers")
    _require(lm.get("positional_embedding", "sin") == "sin", f"{lm.get('positional_embedding')} positions")
    for option in ("bias_ff", "bias_attn", "bias_proj", "qk_layer_norm", "qk_layer_norm_cross", "xpos"):
        _require(not lm.get(option, False), option)
    _require(lm.get("layer_scale") is None, "layer_scale")
    _require(lm.get("kv_repeat", 1) == 1, "kv_repeat")
    _require(lm.get("past_context") is None, "a limited past_context")
    _require(lm.get("activation", "gelu") in ("gelu", "relu"), f"activation={lm.get('activation')!r}")
    pattern = cfg["codebooks_pattern"]
    _require(pattern["modeling"] == "delay", f"the {pattern['modeling']!r} codebook pattern")
    _require(list(pattern["delay"]["delays"]) == list(range(n_q)), f"delays {pattern['delay']['delays']}")
    fuser = cfg["fuser"]
    _require(list(fuser["cross"]) == ["description"], f"cross-attention on {fuser['cross']}")
    _require(not any(fuser.get(m) for m in ("sum", "prepend", "input_interpolate")), "sum/prepend conditions")
    _require(not fuser.get("cross_attention_pos_emb", False), "cross_attention_pos_emb")
    _require(list(cfg["conditioners"]) == ["description"], f"conditioners {list(cfg['conditioners'])}")
    _require(cfg["conditioners"]["description"]["model"] == "t5", "a non-T5 text conditioner")
    return MusicgenDecoderConfig(
        vocab_size=lm["card"],
        max_position_embeddings=2048,  # sinusoidal: a table size, not a limit
        num_hidden_layers=lm["num_layers"],
        ffn_dim=int(lm["hidden_scale"] * lm["dim"]),
        num_attention_heads=lm["num_heads"],
        activation_function=lm.get("activation", "gelu"),
        hidden_size=lm["dim"],
        dropout=0.0,
        num_codebooks=n_q,
        audio_channels=cfg["channels"],
        pad_token_id=lm["card"],
        bos_token_id=lm["card"],
    )


def codec_config(cfg: dict, lm_codebooks: int) -> EncodecConfig:
    """EnCodec's shape, from ``encodec``, ``seanet`` and ``rvq`` in ``xp.cfg``.

    A codec may have more quantizers than the LM models: its first bandwidth is the LM's (what
    prompts are encoded with), its last holds every quantizer (so all weights load).
    """
    encodec, seanet, rvq = cfg["encodec"], dict(cfg["seanet"]), cfg["rvq"]
    _require(cfg.get("compression_model") == "encodec", f"compression_model={cfg.get('compression_model')!r}")
    _require(encodec["autoencoder"] == "seanet" and encodec["quantizer"] == "rvq", "a non-SEANet/RVQ codec")
    _require(not encodec.get("renormalize", False), "codec renormalisation")
    decoder_overrides = {**seanet.pop("decoder", {}), **seanet.pop("encoder", {})}
    _require(decoder_overrides.get("final_activation") is None, "a final activation in the codec")
    _require(seanet.get("activation", "ELU") == "ELU", f"the {seanet.get('activation')} activation")
    _require(seanet.get("activation_params", {}).get("alpha", 1.0) == 1.0, "ELU alpha != 1")
    _require(seanet.get("disable_norm_outer_blocks", 0) == 0, "disable_norm_outer_blocks")
    _require(seanet.get("lstm", 0) > 0, "a codec without LSTM")
    _require(seanet.get("norm", "weight_norm") in ("weight_norm", "time_group_norm"), f"norm={seanet.get('norm')}")
    _require(lm_codebooks <= rvq["n_q"], f"an LM with {lm_codebooks} codebooks on a {rvq['n_q']}-quantizer codec")
    sample_rate, ratios, bins = int(encodec["sample_rate"]), list(seanet["ratios"]), int(rvq["bins"])
    hop = 1
    for ratio in ratios:
        hop *= ratio
    frame_rate = -(-sample_rate // hop)
    bits = (bins - 1).bit_length()
    # transformers picks the number of quantizers from a bandwidth in kbps; half a bit per second
    # over the exact figure keeps float noise in `1000 * bandwidth` from rounding one quantizer away.
    bandwidths = sorted({(n * frame_rate * bits + 0.5) / 1000 for n in (lm_codebooks, rvq["n_q"])})
    return EncodecConfig(
        target_bandwidths=bandwidths,
        sampling_rate=sample_rate,
        audio_channels=int(encodec["channels"]),
        normalize=False,
        chunk_length_s=None,
        overlap=None,
        hidden_size=seanet["dimension"],
        num_filters=seanet["n_filters"],
        num_residual_layers=seanet["n_residual_layers"],
        upsampling_ratios=ratios,
        norm_type=seanet.get("norm", "weight_norm"),
        kernel_size=seanet["kernel_size"],
        last_kernel_size=seanet["last_kernel_size"],
        residual_kernel_size=seanet["residual_kernel_size"],
        dilation_growth_rate=seanet["dilation_base"],
        use_causal_conv=bool(encodec["causal"]),
        pad_mode=seanet.get("pad_mode", "reflect"),
        compress=seanet["compress"],
        num_lstm_layers=seanet["lstm"],
        trim_right_ratio=decoder_overrides.get("trim_right_ratio", 1.0),
        codebook_size=bins,
        use_conv_shortcut=not seanet.get("true_skip", True),
    )


# --- weights --------------------------------------------------------------------------------

_LM_RENAMES = [
    (r"^emb\.(\d+)\.", r"model.decoder.embed_tokens.\1."),
    (r"^linears\.(\d+)\.", r"lm_heads.\1."),
    (r"^out_norm\.", "model.decoder.layer_norm."),
    (r"^transformer\.layers\.(\d+)\.norm1\.", r"model.decoder.layers.\1.self_attn_layer_norm."),
    (r"^transformer\.layers\.(\d+)\.norm_cross\.", r"model.decoder.layers.\1.encoder_attn_layer_norm."),
    (r"^transformer\.layers\.(\d+)\.norm2\.", r"model.decoder.layers.\1.final_layer_norm."),
    (r"^transformer\.layers\.(\d+)\.linear1\.", r"model.decoder.layers.\1.fc1."),
    (r"^transformer\.layers\.(\d+)\.linear2\.", r"model.decoder.layers.\1.fc2."),
    (r"^transformer\.layers\.(\d+)\.self_attn\.out_proj\.", r"model.decoder.layers.\1.self_attn.out_proj."),
    (r"^transformer\.layers\.(\d+)\.cross_attention\.out_proj\.", r"model.decoder.layers.\1.encoder_attn.out_proj."),
]
_FUSED_QKV = re.compile(r"^transformer\.layers\.(\d+)\.(self_attn|cross_attention)\.in_proj_weight$")
_TEXT_PROJ = "condition_provider.conditioners.description.output_proj."


def decoder_state(lm_state: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    """Split the LM's state into the decoder's and the text projection's, renamed for transformers."""
    decoder, projection = {}, {}
    for key, value in lm_state.items():
        key = key.replace(".mha.", ".")  # the non-memory-efficient attention nests its weights one deeper
        if key.startswith(_TEXT_PROJ):
            projection[key[len(_TEXT_PROJ):]] = value
        elif match := _FUSED_QKV.match(key):
            layer, kind = match.groups()
            target = "self_attn" if kind == "self_attn" else "encoder_attn"
            for name, part in zip("qkv", value.chunk(3, dim=0), strict=True):
                decoder[f"model.decoder.layers.{layer}.{target}.{name}_proj.weight"] = part.clone()
        else:
            for pattern, replacement in _LM_RENAMES:
                new_key, hits = re.subn(pattern, replacement, key)
                if hits:
                    decoder[new_key] = value
                    break
            else:
                raise UserError(f"The checkpoint has a weight the converter does not know ({key}); "
                                "use an AudioGen or MusicGen checkpoint.")
    return decoder, projection


_CODEC_RENAMES = [
    (r"^(encoder|decoder)\.model\.", r"\1.layers."),
    (r"\.conv\.conv\.", ".conv."),
    (r"\.convtr\.convtr\.", ".conv."),
    (r"^quantizer\.vq\.layers\.(\d+)\._codebook\.", r"quantizer.layers.\1.codebook."),
    (r"\.weight_g$", ".parametrizations.weight.original0"),
    (r"\.weight_v$", ".parametrizations.weight.original1"),
]


def codec_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    renamed = {}
    for key, value in state.items():
        for pattern, replacement in _CODEC_RENAMES:
            key = re.sub(pattern, replacement, key)
        renamed[key] = value
    return renamed
