"""AudioGen's audiocraft checkpoint, converted once into a transformers MusicGen folder (`models.audiogen` runs it).

The converted folder is standard: ``MusicgenForConditionalGeneration.from_pretrained(folder)`` and
``AutoProcessor.from_pretrained(folder)`` load it as is. audiocraft's checkpoint does not hold the
T5 text encoder; it names one (``t5-large``), which is taken from the Hugging Face cache, the hub
when online, or a local folder given by the user.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from pathlib import Path

from transformers import (
    AutoTokenizer,
    EncodecFeatureExtractor,
    EncodecModel,
    GenerationConfig,
    MusicgenForCausalLM,
    MusicgenForConditionalGeneration,
    MusicgenProcessor,
    T5EncoderModel,
)

from models import audiocraft_checkpoint as ac
from models.atomic_files import staging_dir
from models.errors import UserError, brief
from models.formats import MARKER
from models.quiet import local_work

TOP_K = 250
HUB_PROBE_SECONDS = 5.0  # one quick question before a download; transformers' own retries take over a minute
TEXT_ENCODER_FIX = ("pass --text-encoder with a local T5 folder (model and tokenizer), or keep one with the "
                    "checkpoint: `daw-plugin models add PATH --text-encoder T5PATH`")


def load_text_encoder(name_or_path: str) -> tuple[T5EncoderModel, object]:
    """A T5 encoder and its tokenizer from a folder, the Hugging Face cache, or the hub when it can be reached."""
    candidates = [name_or_path]
    if not Path(name_or_path).exists() and "/" not in name_or_path:
        candidates.append(f"google-t5/{name_or_path}")  # where the original t5-* repos live now
    # A local folder or the cache first, quietly; a download (with its progress bars) only if neither has it.
    for local_only in (True, False):
        if not local_only and not hub_reachable():
            raise UserError(f"The text encoder {name_or_path!r} is not on this machine and the Hugging Face Hub "
                            f"cannot be reached (offline); {TEXT_ENCODER_FIX}.")
        for candidate in candidates:
            try:
                with local_work() if local_only else nullcontext():
                    return (T5EncoderModel.from_pretrained(candidate, local_files_only=local_only),
                            AutoTokenizer.from_pretrained(candidate, local_files_only=local_only))
            except (OSError, ValueError):
                continue
    raise UserError(f"The text encoder {name_or_path!r} is not on this machine and could not be downloaded; "
                    f"{TEXT_ENCODER_FIX}.")


def hub_reachable() -> bool:
    """False in offline mode (HF_HUB_OFFLINE) or when the hub does not answer within a few seconds."""
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    if constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "0").lower() not in ("", "0", "false", "no"):
        return False
    try:
        get_session().head(constants.ENDPOINT, timeout=HUB_PROBE_SECONDS)
    except Exception:  # DNS, refused, timed out, proxy: each means no download now
        return False
    return True


def convert(src: Path, dst: Path, text_encoder: str | None = None) -> Path:
    """Write the audiocraft checkpoint in ``src`` as a transformers folder at ``dst`` (which must not exist)."""
    if dst.exists() and not dst.is_dir():
        raise UserError(f"{dst} is a file; choose a new folder to convert into.")
    if dst.exists() and any(dst.iterdir()):
        raise UserError(f"{dst} already exists and is not empty; choose a new folder to convert into.")
    # Staged beside dst, owned by this process: a conversion killed midway is cleaned up by the next one.
    with _staging(dst) as tmp:
        # transformers' notes on our configs (pad_token_id outside the vocabulary: audiocraft's own layout) and
        # its per-file bars are not for the user; a T5 download stays outside, with its progress bars.
        with local_work():
            checkpoint = ac.read_checkpoint(src)
        t5, tokenizer = load_text_encoder(text_encoder or checkpoint.text_encoder_name)
        with local_work():
            model = build_model(checkpoint, t5)
            codec = checkpoint.codec_config  # the EncodecConfig build_model made the codec from
            feature_extractor = EncodecFeatureExtractor(
                feature_size=codec.audio_channels, sampling_rate=codec.sampling_rate, padding_value=0.0
            )
            model.save_pretrained(tmp)
            MusicgenProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer).save_pretrained(tmp)
        # MusicGen-shaped, but AudioGen: it extends past its window with AudioGen's stride, not MusicGen's.
        (tmp / MARKER).write_text(json.dumps({"family": "audiogen"}))
        if dst.exists():
            dst.rmdir()  # empty, checked above
        os.rename(tmp, dst)  # the folder appears whole or not at all
    return dst


@contextmanager
def _staging(dst: Path) -> Iterator[Path]:
    """`models.atomic_files.staging_dir` beside ``dst``; a folder that cannot be written fails at once, in one line."""
    with ExitStack() as stack:
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = stack.enter_context(staging_dir(dst.parent))
        except OSError as error:
            raise UserError(f"Cannot write {dst} ({brief(error)}); choose a folder you can write to.") from error
        yield tmp


def build_model(checkpoint: ac.AudiocraftCheckpoint, t5: T5EncoderModel) -> MusicgenForConditionalGeneration:
    """transformers modules holding the checkpoint's weights (float32, CPU)."""
    decoder_config = checkpoint.decoder_config
    decoder_state, projection = ac.decoder_state(checkpoint.lm_state)
    expected = projection["weight"].shape[1]
    if t5.config.d_model != expected:
        raise UserError(
            f"The text encoder is {t5.config.d_model} wide but the checkpoint expects {expected}; "
            f"pass the T5 it was trained with ({checkpoint.text_encoder_name})."
        )
    if t5.config.d_model == decoder_config.hidden_size:
        # transformers then drops the text projection, which audiocraft always has.
        raise UserError("This checkpoint's text and LM widths are equal, which transformers cannot express.")
    decoder = MusicgenForCausalLM(decoder_config)
    codec = EncodecModel(checkpoint.codec_config)
    model = MusicgenForConditionalGeneration(text_encoder=t5, audio_encoder=codec, decoder=decoder)
    try:
        model.decoder.load_state_dict(decoder_state, strict=True)
        model.enc_to_dec_proj.load_state_dict(projection, strict=True)
        model.audio_encoder.load_state_dict(ac.codec_state(checkpoint.codec_state), strict=True)
    except RuntimeError as error:
        raise UserError(
            f"The checkpoint's weights do not fit its own config ({brief(error)}); download it again."
        ) from error
    window = round(checkpoint.window_seconds * codec.config.frame_rate)
    special = decoder_config.vocab_size
    # audiocraft's sampling defaults; max_length is also how we read the window back.
    model.generation_config = GenerationConfig(
        do_sample=True, top_k=TOP_K, guidance_scale=checkpoint.cfg_coef, max_length=window,
        decoder_start_token_id=special, pad_token_id=special, bos_token_id=special,
    )
    return model.eval()
