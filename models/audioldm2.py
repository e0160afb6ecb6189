"""AudioLDM 2: latent diffusion over log-mel spectrograms, through diffusers' ``AudioLDM2Pipeline``.

One take, top to bottom (`AudioLDM2Generator.generate`):

1. check the request before any heavy work;
2. continuing: encode the region's last latent frames (our log-mel front end -> the pipeline's VAE);
3. the pipeline's ``encode_prompt``: CLAP and T5 text features, and eight GPT-2 "language of audio" vectors;
4. denoise ``context + new`` latent frames with DPM-Solver++ (25 steps by default, where the pipeline's DDIM
   wants 200), re-imposing the known frames at every step (`models.inpainting`);
5. the pipeline's VAE and vocoder turn latents into a waveform, cut exactly from the region's end.

Step 5 runs in chunks of the trained length, so its memory does not grow with the take (`decode`).

The latent's time axis grows linearly with the length asked for; past the 10.24 s the model was trained on
it simply gets longer (the UNet is convolutional, and its attention takes any number of frames).
"""

from __future__ import annotations

import inspect
import json
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from diffusers import DPMSolverMultistepScheduler

# From its own module: diffusers' package namespace shows type checkers a placeholder class without its methods.
from diffusers.pipelines.audioldm2.pipeline_audioldm2 import AudioLDM2Pipeline
from diffusers.utils.torch_utils import randn_tensor

from models.audioldm2_frontend import MelFrontEnd
from models.clap_features import clap_features
from models.device import out_of_memory
from models.errors import Cancelled, UserError, brief
from models.generator import MODEL_DEFAULTS, Generator, OnPreview, OnStep, Settings, ShouldStop
from models.inpainting import KnownFrames, context_frames
from models.quiet import library_warnings, local_work

if TYPE_CHECKING:
    from diffusers.pipelines.audioldm2.modeling_audioldm2 import AudioLDM2ProjectionModel
    from transformers import (
        ClapFeatureExtractor,
        ClapModel,
        GPT2LMHeadModel,
        RobertaTokenizer,
        RobertaTokenizerFast,
        SpeechT5HifiGan,
        T5EncoderModel,
        T5Tokenizer,
        VitsModel,
        VitsTokenizer,
    )

    from models.clip import Clip

LANGUAGE_OF_AUDIO_TOKENS = 8  # AudioLDM 2's sequence_gen_length, when the GPT-2 config does not say
TRAINING_PEAK = 0.5  # AudioLDM's normalize_wav scales every training clip to this peak
SILENCE_PEAK = 1e-4  # below this a region is left as it is: scaling it up would only raise its noise
# Mel frames of context each side of a vocoder chunk. HiFi-GAN is convolutional, without memory: beyond its
# reach (measured: 16 frames on the real shape, 12 on the tiny one) a chunk equals the whole decode to float noise.
VOCODER_CONTEXT_FRAMES = 32
# Mel frames per vocoder chunk (2.56 s at hop 160): its dilated convolutions unfold their input (kernel x channels
# x samples), some 250 MiB at 10.24 s on the real shape, so shorter chunks keep the peak down; 1.25x the work.
VOCODER_CHUNK_FRAMES = 256


def pipeline_dtype(device: torch.device) -> torch.dtype:
    """float16 on CUDA, as the AudioLDM 2 authors run it; float32 elsewhere (CPU half is slow, MPS untested).

    Nothing on this path needs float32 on CUDA: transformers keeps T5's ``wo`` projections in float32 by
    itself (``_keep_in_fp32_modules``), the log-mel front end runs in float32 before the VAE, and the
    pipeline casts the vocoder's waveform to float32.
    """
    return torch.float16 if device.type == "cuda" else torch.float32


def language_of_audio(language_model, inputs_embeds: torch.Tensor, new_tokens: int,
                      attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Extend ``inputs_embeds`` ``[B, L, D]`` by ``new_tokens`` GPT-2 hidden states; return them ``[B, new, D]``.

    The maths of ``AudioLDM2Pipeline.generate_language_model``: feed embeddings, take the last layer's last
    hidden state as the next input, repeat. Its loop calls generation helpers that transformers 5 dropped
    from ``GPT2Model`` (the class ``cvssp/audioldm2`` ships); this one keeps the KV cache itself.
    """
    gpt2 = language_model.base_model  # a GPT2Model, whether given bare or inside a GPT2LMHeadModel
    # transformers 5 renamed past_key_values to cache (the old name warns, and goes in 5.40); older 5.x lack it.
    cache_name = "cache" if "cache" in inspect.signature(gpt2.forward).parameters else "past_key_values"
    cache, step_input = None, inputs_embeds
    for _ in range(new_tokens):
        output = gpt2(inputs_embeds=step_input, attention_mask=attention_mask, use_cache=True, **{cache_name: cache})
        cache, step_input = output[cache_name], output.last_hidden_state[:, -1:]
        inputs_embeds = torch.cat([inputs_embeds, step_input], dim=1)
        if attention_mask is not None:
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones(attention_mask.shape[0], 1)], dim=1)
    return inputs_embeds[:, -new_tokens:]


class Transformers5Pipeline(AudioLDM2Pipeline):
    """``AudioLDM2Pipeline`` whose language-model loop runs on transformers 5 (see `language_of_audio`)."""

    # The modules diffusers' register_modules sets, declared so that type checkers see them: as
    # AudioLDM2Pipeline.__init__ types them, or Any where diffusers' types do not fit their use (noted).
    vae: Any  # AutoencoderKL: its config is read by attribute (typed a plain dict), decode() typed Tensor | output
    text_encoder: ClapModel
    text_encoder_2: T5EncoderModel | VitsModel
    projection_model: AudioLDM2ProjectionModel
    language_model: GPT2LMHeadModel
    tokenizer: RobertaTokenizer | RobertaTokenizerFast
    tokenizer_2: T5Tokenizer | VitsTokenizer
    feature_extractor: ClapFeatureExtractor
    unet: Any  # AudioLDM2UNet2DConditionModel: its config is read by attribute (typed a plain dict)
    scheduler: Any  # DPM-Solver++ from `load` (diffusers types it as an enum of names; no base has config and step)
    vocoder: SpeechT5HifiGan

    def generate_language_model(self, inputs_embeds: torch.Tensor | None = None, max_new_tokens: int | None = None,
                                **model_kwargs) -> torch.Tensor:
        if inputs_embeds is None:
            raise ValueError("generate_language_model needs inputs_embeds")
        config = self.language_model.config
        new_tokens = max_new_tokens or getattr(config, "max_new_tokens", None) or LANGUAGE_OF_AUDIO_TOKENS
        return language_of_audio(self.language_model, inputs_embeds, new_tokens, model_kwargs.get("attention_mask"))


@dataclass(frozen=True)
class Condition:
    """What the UNet cross-attends to; two rows (unconditional, conditional) when guidance is on."""

    generated: torch.Tensor  # GPT-2's vectors [rows, 8, D_lm]
    text: torch.Tensor  # T5 hidden states [rows, L, D_t5]
    mask: torch.Tensor  # [rows, L]
    guidance: float = 1.0

    def batched(self, takes: int) -> Condition:
        """The same condition for a batch of ``takes``: every take's first row, then (with guidance) its second."""
        if takes == 1:
            return self
        generated, text, mask = (rows.repeat_interleave(takes, dim=0)
                                 for rows in (self.generated, self.text, self.mask))
        return Condition(generated, text, mask, self.guidance)


def denoise(unet, scheduler, noise: torch.Tensor, condition: Condition, *, steps: int,
            known: KnownFrames | None = None, on_step: OnStep | None = None,
            should_stop: ShouldStop | None = None) -> torch.Tensor:
    """Run ``scheduler`` for ``steps`` from ``noise`` ``[B, C, T, F]`` (a take per row); return clean latents of the
    same shape.

    ``should_stop`` is polled before every step (`Cancelled` when it says yes); ``on_step(done, total)``
    is called after every step. ``known`` frames are re-imposed before every step and after the last.
    """
    scheduler.set_timesteps(steps, device=noise.device)
    latents = noise * scheduler.init_noise_sigma
    total = len(scheduler.timesteps)
    for done, t in enumerate(scheduler.timesteps, start=1):
        if should_stop is not None and should_stop():
            raise Cancelled("Generation was cancelled.")
        if known is not None:
            known.impose(latents, scheduler, t)
        prediction = _predict_noise(unet, scheduler, latents, t, condition)
        latents = scheduler.step(prediction, t, latents, return_dict=False)[0]
        if on_step is not None:
            on_step(done, total)
    if known is not None:
        known.finish(latents)
    return latents


def _predict_noise(unet, scheduler, latents, t, condition: Condition) -> torch.Tensor:
    condition = condition.batched(latents.shape[0])
    guided = condition.generated.shape[0] == 2 * latents.shape[0]  # every take's unconditional row, then conditional
    model_input = scheduler.scale_model_input(torch.cat([latents, latents]) if guided else latents, t)
    prediction = unet(model_input, t, encoder_hidden_states=condition.generated,
                      encoder_hidden_states_1=condition.text, encoder_attention_mask_1=condition.mask,
                      return_dict=False)[0]
    if guided:  # classifier-free guidance, eq. (2) of the Imagen paper as the pipeline does it
        unconditional, conditional = prediction.chunk(2)
        prediction = unconditional + condition.guidance * (conditional - unconditional)
    return prediction


@dataclass(frozen=True)
class EncodedRegion:
    latents: torch.Tensor  # clean, scaled latents of the region's tail [1, C, frames, F]
    gain: float  # what brought it to the training level; the take is divided by it

    @property
    def frames(self) -> int:
        return self.latents.shape[2]


def training_gain(audio: np.ndarray) -> float:
    """The gain that brings ``audio`` to the peak AudioLDM's data loader gives every clip (1 for silence).

    The VAE and UNet only ever saw clips at that level; encoding a quiet region as it is would ask them to
    continue something they have not heard. The take is scaled back, so it meets the region at its level.
    """
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    return TRAINING_PEAK / peak if peak > SILENCE_PEAK else 1.0


class AudioLDM2Generator:
    """A loaded AudioLDM 2 pipeline behind the `models.generator.Generator` protocol. Mono."""

    family = "audioldm2"
    name = "This model"  # how messages name it; the loader sets the name it was asked for
    threads: int | None = None
    default_guidance = 3.5
    default_steps = 25  # DPM-Solver++; the pipeline's own default is DDIM with 200
    channels = 1
    supports_preview = False  # on_preview gets the finished take only, as one chunk

    def __init__(self, pipe: Transformers5Pipeline, device: torch.device):
        self.pipe = pipe
        self.device = device
        self.frontend = MelFrontEnd.from_vocoder(pipe.vocoder.config)
        self.sample_rate = self.frontend.sample_rate
        self.frame_samples = pipe.vae_scale_factor * self.frontend.hop  # samples per latent frame
        self.window_frames = pipe.unet.config.sample_size  # latent frames in the length it was trained on
        # Past the trained length the VAE decodes in tiles of it (diffusers' tiled_decode, a quarter cross-faded).
        pipe.vae.tile_latent_min_size = self.window_frames
        pipe.vae.tile_sample_min_size = self.window_frames * pipe.vae_scale_factor

    @property
    def precision(self) -> str:
        """The pipeline's dtype: AudioLDM 2 takes no other (`models.loading` refuses one)."""
        return str(self.dtype).removeprefix("torch.")

    @property
    def dtype(self) -> torch.dtype:
        """The UNet's dtype (float16 on CUDA): part of what makes a take reproducible."""
        return self.pipe.unet.dtype

    def settings(self, given: Settings) -> Settings:
        """``given``'s guidance, steps and negative prompt, this model's defaults filled in."""
        guidance, steps = self._guidance_and_steps(given)
        return Settings(guidance=guidance, steps=steps, negative_prompt=given.negative_prompt)

    def _guidance_and_steps(self, given: Settings) -> tuple[float, int]:
        return (self.default_guidance if given.guidance is None else given.guidance,
                self.default_steps if given.steps is None else given.steps)

    @torch.inference_mode()
    @library_warnings()
    def generate(
        self,
        text: str | None,
        seconds: float,
        *,
        seeds: Sequence[int],
        settings: Settings = MODEL_DEFAULTS,
        prompt: Clip | None = None,
        melody: Clip | None = None,
        preroll_seconds: float = 0.0,
        on_step: OnStep | None = None,
        should_stop: ShouldStop | None = None,
        on_preview: OnPreview | None = None,
    ) -> list[np.ndarray]:
        """One take per seed, each ``round(seconds * sample_rate)`` new samples, float32 ``[1, samples]``.

        The takes are denoised as one batch (each from its own seed's noise), then decoded one by one.
        ``prompt`` (downmixed, at any rate) is continued: each take starts exactly where it ends. Its whole
        latent frames are used, counted back from its end, as many as `models.inpainting.context_frames` allows.
        ``preroll_seconds`` (with a prompt) prepends the model's own rendering of the region's last moments,
        for the caller's seam cross-fade.
        ``settings.guidance`` above 1 mixes in the conditional prediction (``settings.negative_prompt`` replaces the
        empty unconditional text); more ``settings.steps`` cost time linearly and help less past ~25 with
        DPM-Solver++. ``should_stop`` is polled before every step; when it says yes, `Cancelled` is raised.
        ``on_preview(take, audio)`` gets each finished take, as one chunk: diffusion settles every frame at once,
        so there is nothing to hear before the last step (``supports_preview`` is False).
        """
        if melody is not None:
            raise UserError(f"{self.name} has no melody conditioning; use a melody model such as musicgen-melody, "
                            "or leave out --melody.")
        # 1. Check inputs before any heavy work.
        guidance, steps = self._guidance_and_steps(settings)
        new_samples = self._check(seconds, steps, preroll_seconds, seeds)
        new_frames = math.ceil(new_samples / self.frame_samples)
        # 2. The region's tail as clean latents, at the level the model was trained on.
        region = None if prompt is None else self._encode_region(prompt.conformed(self.sample_rate, 1).samples,
                                                                  new_frames)
        context = 0 if region is None else region.frames
        # 3. Text conditioning.
        condition = self._condition(text, settings.negative_prompt, guidance)
        # 4. Denoise context + new frames; one draw of noise per take, whose known span also noises the known frames.
        noise = torch.cat([randn_tensor(self._latent_shape(context + new_frames), device=self.device, dtype=self.dtype,
                                        generator=torch.Generator(device=self.device).manual_seed(seed))
                           for seed in seeds])
        known = None if region is None else KnownFrames(region.latents.to(self.dtype), noise[:, :, :context])
        audio = self._render(noise, condition, steps, known, on_step, should_stop, seconds)
        # 5. Cut from the region's end (with up to preroll_seconds of its rendering before it), at its level.
        start = context * self.frame_samples
        preroll = min(round(preroll_seconds * self.sample_rate), start)
        gain = 1.0 if region is None else region.gain
        takes = [take[:, start - preroll: start + new_samples] / np.float32(gain) for take in audio]
        if on_preview is not None:
            for index, take in enumerate(takes):
                on_preview(index, take.copy())
        return takes

    @torch.inference_mode()
    @library_warnings()
    def score(self, text: str, audio: np.ndarray) -> float:
        """The pipeline's own CLAP score of ``audio`` (``[channels, samples]``) against ``text``: higher fits better.

        The computation of ``AudioLDM2Pipeline.score_waveforms`` (which only sorts): resample to the feature
        extractor's rate with librosa, CLAP's ``logits_per_text``. Audio longer than CLAP's window is cropped
        at random by its feature extractor; the crops here come from a fixed generator of our own
        (`models.clap_features`), so a ranking never changes and numpy's global generator is left alone.
        """
        import librosa  # as diffusers does: only scoring needs it

        pipe, extractor = self.pipe, self.pipe.feature_extractor
        inputs = pipe.tokenizer(text, return_tensors="pt", padding=True)
        resampled = librosa.resample(_mono(audio), orig_sr=self.sample_rate, target_sr=extractor.sampling_rate)
        inputs["input_features"] = clap_features(extractor, resampled).to(pipe.text_encoder.dtype)
        return float(pipe.text_encoder(**inputs.to(self.device)).logits_per_text[0, 0])

    @torch.inference_mode()
    def encode(self, audio: np.ndarray) -> torch.Tensor:
        """Mono audio whose length is whole latent frames -> clean latents ``[1, C, frames, F]`` (scaled)."""
        mel = self.frontend.log_mel(audio).to(self.device, self.pipe.vae.dtype)
        latents = self.pipe.vae.encode(mel).latent_dist.mode()
        return latents * self.pipe.vae.config.scaling_factor

    @torch.inference_mode()
    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """Latents ``[1, C, T, F]`` -> float32 waveform ``[1, T * frame_samples (+ the vocoder's edge)]``.

        Both stages work in pieces, so memory does not grow with T. Past the trained length (``window_frames``):

        - the VAE decodes overlapping tiles, cross-faded over a quarter tile (diffusers' ``tiled_decode``). Its
          GroupNorms normalise over what they are given, so a tile is not the matching part of a whole decode:
          measured on random weights, the waveform differs by 4% rms (19% of peak at worst) on the real shape,
          18% on the tiny one. Each tile is normalised over the length the VAE was trained on, which a
          whole decode of a long take is not; this is the cost of a bounded memory.
        - the vocoder (no memory, a finite reach) decodes chunks of `VOCODER_CHUNK_FRAMES` with
          `VOCODER_CONTEXT_FRAMES` each side and keeps their middle, at any length: within 1e-5 of the whole
          decode's peak (float noise; tests/test_audioldm2.py).
        """
        z = latents / self.pipe.vae.config.scaling_factor
        vae = self.pipe.vae
        mel = vae.tiled_decode(z).sample if z.shape[2] > self.window_frames else vae.decode(z).sample
        return self.vocode(mel)

    @torch.inference_mode()
    def vocode(self, mel: torch.Tensor) -> np.ndarray:
        """Mel ``[1, 1, frames, bins]`` -> float32 waveform ``[1, frames * hop (+ the vocoder's edge)]``, in chunks."""
        frames, chunk = mel.shape[2], VOCODER_CHUNK_FRAMES
        pieces = []
        for a in range(0, frames, chunk):
            b = min(a + chunk, frames)
            start, end = max(0, a - VOCODER_CONTEXT_FRAMES), min(frames, b + VOCODER_CONTEXT_FRAMES)
            wave = self.pipe.mel_spectrogram_to_waveform(mel[:, :, start:end])
            keep_to = (b - start) * self.frontend.hop if b < frames else wave.shape[-1]  # the last keeps the edge
            pieces.append(wave[:, (a - start) * self.frontend.hop: keep_to])
        return torch.cat(pieces, dim=-1).numpy()

    def _render(self, noise, condition, steps, known, on_step, should_stop, seconds) -> list[np.ndarray]:
        """Denoise the batch, then decode each take with the VAE and vocoder."""
        try:
            latents = denoise(self.pipe.unet, self.pipe.scheduler, noise, condition, steps=steps, known=known,
                              on_step=on_step, should_stop=should_stop)
            return [self.decode(latents[take:take + 1]) for take in range(latents.shape[0])]
        except RuntimeError as error:  # memory grows with the length: see docs/AUDIOLDM2.md
            if not out_of_memory(error):  # CUDA's OutOfMemoryError is a RuntimeError; MPS runs out as a plain one
                raise
            raise UserError(f"There is not enough {self.device.type.upper()} memory for {seconds:g} s at once; "
                            "ask for a shorter length or a shorter region.") from error

    def _check(self, seconds: float, steps: int, preroll_seconds: float, seeds: Sequence[int]) -> int:
        """The number of new samples, or a `UserError` naming the bad argument and its limit."""
        if not seeds:
            raise ValueError("generate needs at least one seed")
        if not isinstance(steps, numbers.Integral) or steps < 1:
            raise UserError(f"steps must be a whole number of at least 1 (got {steps!r}); "
                            f"{self.default_steps} is this model's usual setting.")
        if not preroll_seconds >= 0:
            raise UserError(f"The preroll must be zero or more seconds (got {preroll_seconds!r}).")
        new_samples = round(seconds * self.sample_rate) if math.isfinite(seconds) else 0
        if new_samples < 1:
            raise UserError(f"The length must be a positive number of seconds (got {seconds!r}); ask for more.")
        return new_samples

    def _encode_region(self, audio: np.ndarray, new_frames: int) -> EncodedRegion:
        mono = _mono(audio)
        available = len(mono) // self.frame_samples
        if available < 1:
            raise UserError(
                f"The region is shorter than one frame of this model ({1000 * self.frame_samples / self.sample_rate:g}"
                " ms); select a longer region."
            )
        tail = mono[len(mono) - context_frames(available, new_frames, self.window_frames) * self.frame_samples:]
        gain = training_gain(tail)
        return EncodedRegion(latents=self.encode(tail * gain), gain=gain)

    def _condition(self, text: str | None, negative_prompt: str | None, guidance: float) -> Condition:
        prompt = text or ""
        # Guidance between two empty prompts changes nothing: skip the unconditional half then.
        guided = guidance > 1.0 and bool(prompt or negative_prompt)
        embeds, mask, generated = self.pipe.encode_prompt(prompt, self.device, 1, guided,
                                                          negative_prompt=negative_prompt if guided else None)
        return Condition(generated=generated, text=embeds, mask=mask, guidance=guidance if guided else 1.0)

    def _latent_shape(self, frames: int) -> tuple[int, int, int, int]:
        bins = self.frontend.mel_bins // self.pipe.vae_scale_factor
        return (1, self.pipe.unet.config.in_channels, frames, bins)


def load(folder: Path, device: torch.device, *, dtype: torch.dtype | None = None) -> Generator:
    """Load a diffusers ``AudioLDM2Pipeline`` folder (``model_index.json``) onto ``device``, DPM-Solver++ swapped in.

    ``dtype`` defaults to `pipeline_dtype` (float16 on CUDA, float32 elsewhere).
    """
    folder = Path(folder)
    _check_folder(folder)
    with local_work(diffusers=True):
        pipe = _from_pretrained(folder, dtype or pipeline_dtype(device))
        if pipe.text_encoder_2.config.model_type != "t5":
            raise UserError(f"{folder} is an AudioLDM 2 speech model, which needs a transcript; use cvssp/audioldm2.")
        try:
            pipe.to(device)
        except RuntimeError as error:
            if not out_of_memory(error):
                raise
            raise UserError(f"There is not enough {device.type.upper()} memory to load AudioLDM 2; "
                            "close other programs using it, or use --device cpu.") from error
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config, algorithm_type="dpmsolver++")
    pipe.set_progress_bar_config(disable=True)
    return AudioLDM2Generator(pipe, device)


def _from_pretrained(folder: Path, dtype: torch.dtype) -> Transformers5Pipeline:
    try:
        return Transformers5Pipeline.from_pretrained(folder, dtype=dtype)
    except Exception as error:  # missing, truncated or mismatched files all end the same way for the user
        raise UserError(f"Could not load the AudioLDM 2 model in {folder} ({brief(error)}); download it again.") \
            from error


def _check_folder(folder: Path) -> None:
    try:
        index = json.loads((folder / "model_index.json").read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"{folder} is not a diffusers model folder (no readable model_index.json); "
                        "download the AudioLDM 2 model again.") from error
    if index.get("_class_name") != "AudioLDM2Pipeline":
        raise UserError(f"{folder} holds a {index.get('_class_name')}, not an AudioLDM2Pipeline; "
                        "choose an AudioLDM 2 model folder.")


def _mono(audio: np.ndarray) -> np.ndarray:
    """``[channels, samples]`` or ``[samples]`` -> float32 ``[samples]``, channels averaged."""
    audio = np.asarray(audio, dtype=np.float32)
    return audio.mean(axis=0) if audio.ndim == 2 else audio
