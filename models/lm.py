"""The one decode loop for EnCodec-token language models (AudioGen, MusicGen).

Tokens follow audiocraft's *delay* pattern: codebook ``k`` runs ``k`` steps behind codebook 0,
so one step of the LM emits one token per codebook and a frame is complete ``K - 1`` steps after
its first token. Stereo MusicGen interleaves its two channels' codebooks (L0, R0, L1, R1, ...) and
delays each pair together, by ``k // 2``. Classifier-free guidance batches a conditional row with an
unconditional one whose text memory is all zeros (audiocraft's null condition), and mixes their logits.
The conditioning is a `Conditioning` per window: text memory for cross-attention (AudioGen, MusicGen),
or a prefix of embeddings before the tokens (MusicGen melody, whose chroma follows each window's span).

Past the model's training window, generation goes on window by window: each new window is
re-prompted with the tail of what came before (``window - extend_stride`` frames) and adds up to
``extend_stride`` new frames, as audiocraft does, but progress counts the real overall total.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import torch

from models.chunked_decode import ChunkedDecode, lookahead_frames
from models.decoder import CachedDecoder
from models.errors import Cancelled, UserError
from models.generator import MODEL_DEFAULTS, OnPreview, OnStep, Settings, ShouldStop
from models.sampling import Sampling, sample

if TYPE_CHECKING:
    from models.clip import Clip

UNKNOWN = -1  # a pattern slot still to be generated

DEFAULT_SAMPLING = Sampling()


@dataclass(frozen=True)
class Conditioning:
    """What one window is conditioned on, for one take. Row 0 is the request; with guidance, row 1 is the null
    condition."""

    rows: int
    memory: torch.Tensor | None = None  # projected text for cross-attention [rows, Tm, D] (AudioGen, MusicGen)
    prefix: torch.Tensor | None = None  # embeddings before the first token [rows, P, D] (MusicGen melody)

    def batched(self, takes: int) -> Conditioning:
        """The same conditioning for a batch of ``takes``: every take's conditional row, then their null rows."""
        if takes == 1:
            return self

        def repeat(rows: torch.Tensor | None) -> torch.Tensor | None:
            return None if rows is None else rows.repeat_interleave(takes, dim=0)

        return Conditioning(self.rows * takes, repeat(self.memory), repeat(self.prefix))


Conditions = Callable[[int], Conditioning]  # a window's first frame, counted from the take's start -> its conditioning


@dataclass(frozen=True)
class Window:
    context: int  # frames of earlier audio the window is prompted with
    new: int  # frames it adds


def plan_windows(prompt_frames: int, new_frames: int, window: int, stride: int) -> list[Window]:
    """Split a generation of ``new_frames`` after ``prompt_frames`` into windows of at most ``window``."""
    plan, done = [], 0
    while done < new_frames:
        context = min(prompt_frames + done, window - stride)
        new = min(window - context, new_frames - done)
        plan.append(Window(context, new))
        done += new
    return plan


class CodecLM:
    """A text encoder, an EnCodec codec and a delayed-pattern LM (transformers' MusicGen modules).

    Build it with the model already on its device and in its dtype: the cached decoder shares
    (and fuses) the decoder's weights in place. `models.musicgen.load` builds one from a folder.
    """

    family = "musicgen"  # the registry names AudioGen's converted folders "audiogen"
    supports_melody = False
    supports_preview = True  # generate() calls on_preview with the take's audio as it is made
    threads: int | None = None  # torch's CPU threads, as `models.loading` chose them
    preview_seconds = 1.0  # audio per preview chunk, and per chunk of the final decode

    def __init__(self, model, tokenizer, *, window_seconds: float, extend_stride_seconds: float,
                 name: str = "This model", precision: str | None = None):
        """``precision`` (`models.precision`): the decoder's weights on the CPU (None: the modules' own dtype)."""
        self.model = model
        self.tokenizer = tokenizer
        self.name = name  # how messages name the model
        self.codec = model.audio_encoder
        own = str(model.decoder.dtype).removeprefix("torch.")
        self.precision = precision if precision is not None and model.decoder.device.type == "cpu" else own
        self.decoder = CachedDecoder(model.decoder, self.precision)
        self.device = model.decoder.device
        config = model.decoder.config
        self.num_codebooks = config.num_codebooks
        self.special_token = config.vocab_size  # the extra embedding row audiocraft uses for "no token"
        self.sample_rate = self.codec.config.sampling_rate
        self.frame_rate = self.codec.config.frame_rate
        self.hop_length = self.codec.config.hop_length
        # Stereo MusicGen: a mono codec, and the LM's codebooks interleaved L0, R0, L1, R1, ...
        self.channels = getattr(config, "audio_channels", 1)
        self.delays = [k // self.channels for k in range(self.num_codebooks)]
        self.default_guidance = float(getattr(model.generation_config, "guidance_scale", None) or 3.0)
        self.window_frames = round(window_seconds * self.frame_rate)
        self.stride_frames = round(extend_stride_seconds * self.frame_rate)
        if not 0 < self.stride_frames < self.window_frames:
            raise ValueError(f"extend stride {extend_stride_seconds} s must be inside the {window_seconds} s window")

    @property
    def dtype(self) -> torch.dtype:
        """The LM's dtype (float16 on CUDA): part of what makes a take reproducible."""
        return self.decoder.embed.dtype

    @property
    def window_seconds(self) -> float:
        return self.window_frames / self.frame_rate

    def settings(self, given: Settings) -> Settings:
        """``given`` with audiocraft's sampling defaults filled in (guidance from the model's own config)."""
        sampling = self._sampling(given)
        return Settings(guidance=sampling.guidance, top_k=sampling.top_k, top_p=sampling.top_p,
                        temperature=sampling.temperature)

    def _sampling(self, given: Settings) -> Sampling:
        """``given`` as the sampler takes it, audiocraft's defaults where it leaves a setting to the model."""
        return Sampling(
            guidance=self.default_guidance if given.guidance is None else given.guidance,
            top_k=DEFAULT_SAMPLING.top_k if given.top_k is None else given.top_k,
            top_p=DEFAULT_SAMPLING.top_p if given.top_p is None else given.top_p,
            temperature=DEFAULT_SAMPLING.temperature if given.temperature is None else given.temperature,
        )

    @torch.inference_mode()
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
        """One take per seed, each ``round(seconds * sample_rate)`` new samples, float32 ``[channels, samples]``.

        The takes run as one batch: every step samples a token for each of them (each from its own seed's
        generator), so N takes cost about one take's steps, each step wider.
        ``prompt`` is continued: each take starts where it ends. Its whole frames, up to ``window - extend stride``
        of them, counted back from its end, are used.
        ``preroll_seconds`` (with a prompt) prepends the model's own rendering of the prompt's last moments,
        decoded with the rest, so the seam against the original can be cross-faded.
        ``melody`` (melody models only) is followed from the take's start, looped when shorter than the take.
        ``should_stop`` is polled before every step and every chunk decoded; when it says yes, `Cancelled` is raised.
        ``on_preview(take, chunk)`` gets a take's next ``preview_seconds`` of audio (float32 ``[channels, n]``, the
        preroll first) as soon as its frames are generated; a take's chunks, concatenated, are exactly its audio.
        The final decode runs in the same chunks (`models.chunked_decode`: within 1e-5 of peak of a
        whole-sequence decode), so its memory does not grow with the take, previews or not.
        """
        if melody is not None and not self.supports_melody:
            raise UserError(f"{self.name} has no melody conditioning; use a melody model such as "
                            "musicgen-melody, or leave out --melody.")
        if not seeds:
            raise ValueError("generate needs at least one seed")
        sampling = self._sampling(settings)
        prompt_audio = None if prompt is None else prompt.conformed(self.sample_rate, self.channels).samples
        melody_audio = None if melody is None else melody.conformed(self.sample_rate, self.channels).samples
        new_frames = math.ceil(seconds * self.frame_rate - 1e-6)
        prompt_codes = self._encode_prompt(prompt_audio) if prompt_audio is not None else None
        prompt_frames = 0 if prompt_codes is None else prompt_codes.shape[-1]
        conditions = self._conditions(text, sampling.guidance, melody=melody_audio, audio_prompt=prompt_audio)
        generators = [torch.Generator(device=self.device).manual_seed(seed) for seed in seeds]
        takes = len(seeds)

        plan = plan_windows(prompt_frames, new_frames, self.window_frames, self.stride_frames)
        delay = max(self.delays)
        total, done = sum(w.new + delay for w in plan), 0
        streams = [self._stream(prompt_frames, new_frames, seconds, preroll_seconds,
                                on_preview and partial(on_preview, take), should_stop) for take in range(takes)]
        codes = (prompt_codes if prompt_codes is not None else self._empty_codes()).expand(takes, -1, -1)

        def tick(sequence: torch.Tensor, offset: int, window: Window) -> None:
            nonlocal done
            done += 1
            if on_step is not None:
                on_step(done, total)
            ready = min(window.new, max(0, offset - delay - window.context))  # this window's complete frames
            if on_preview is not None and not streams[0].done and codes.shape[-1] + ready >= streams[0].needs():
                known = torch.cat([codes, self._unpattern(sequence, window.context, ready)], dim=-1)
                for take, stream in enumerate(streams):
                    stream.feed(known[take:take + 1])

        for window in plan:
            context = codes[..., codes.shape[-1] - window.context:]
            conditioning = conditions(codes.shape[-1] - window.context - prompt_frames)
            new = self._window(context, window.new, conditioning, sampling, generators,
                               partial(tick, window=window), should_stop)
            codes = torch.cat([codes, new], dim=-1)
        for take, stream in enumerate(streams):
            stream.feed(codes[take:take + 1])
        return [stream.audio(self.channels) for stream in streams]

    def _stream(self, prompt_frames: int, new_frames: int, seconds: float, preroll_seconds: float,
                on_chunk: Callable[[np.ndarray], None] | None, should_stop: ShouldStop | None) -> ChunkedDecode:
        """The chunked decode of samples ``[start - preroll, start + seconds)``, ``start`` the prompt's end."""
        start = prompt_frames * self.hop_length
        preroll = min(round(preroll_seconds * self.sample_rate), start)
        return ChunkedDecode(self._decode, hop=self.hop_length, first_sample=start - preroll,
                             last_sample=start + round(seconds * self.sample_rate),
                             total_frames=prompt_frames + new_frames, chunk_frames=self.chunk_frames,
                             lookahead=lookahead_frames(self.codec.config), on_chunk=on_chunk,
                             should_stop=should_stop)

    @property
    def chunk_frames(self) -> int:
        return max(1, round(self.preview_seconds * self.frame_rate))

    def _empty_codes(self) -> torch.Tensor:
        return torch.zeros(1, self.num_codebooks, 0, dtype=torch.long, device=self.device)

    def _conditions(self, text: str | None, guidance: float, *, melody: np.ndarray | None,
                    audio_prompt: np.ndarray | None) -> Conditions:
        """Cross-attention on the text, the same for every window."""
        memory = self._text_memory(text, guidance)
        conditioning = Conditioning(rows=1 if memory is None else memory.shape[0], memory=memory)
        return lambda first_frame: conditioning

    def _window(self, context, new, conditioning: Conditioning, sampling, generators, tick,
                should_stop) -> torch.Tensor:
        """Generate ``new`` frames after ``context`` ``[B, K, P]``, a take per row; return them ``[B, K, new]``."""
        sequence = self._pattern(context, new)
        to_fill = sequence == UNKNOWN  # the prompt's own tokens stay as they are
        takes = sequence.shape[0]
        conditioning = conditioning.batched(takes)
        guided = conditioning.rows == 2 * takes  # conditional rows, then their null rows
        state = self.decoder.start(conditioning.memory, batch=conditioning.rows, max_len=sequence.shape[-1],
                                   prefix=conditioning.prefix)
        previous = 0
        for offset in range(context.shape[-1] + 1, sequence.shape[-1]):
            if should_stop is not None and should_stop():
                raise Cancelled("Generation was cancelled.")
            tokens_in = sequence[..., previous:offset]
            logits = self.decoder.step(state, torch.cat([tokens_in, tokens_in]) if guided else tokens_in)
            if guided:  # classifier-free guidance: unconditional + coef * (conditional - unconditional)
                logits = torch.lerp(logits[takes:], logits[:takes], sampling.guidance)
            tokens = sample(logits, sampling, generators)
            sequence[..., offset] = torch.where(to_fill[..., offset], tokens, sequence[..., offset])
            previous = offset
            tick(sequence, offset)
        return self._unpattern(sequence, context.shape[-1], new)

    def _pattern(self, context: torch.Tensor, new: int) -> torch.Tensor:
        """Lay frames out in the delay pattern: slot ``1 + d_k + t`` of codebook ``k`` holds frame ``t``.

        Slot 0 and slots outside ``[0, P + new)`` hold the special token; frames to generate are UNKNOWN.
        """
        prompt_frames = context.shape[-1]
        length = prompt_frames + new + max(self.delays) + 1
        sequence = torch.full((context.shape[0], self.num_codebooks, length), self.special_token, dtype=torch.long,
                              device=self.device)
        for k, d in enumerate(self.delays):
            sequence[:, k, 1 + d: 1 + d + prompt_frames] = context[:, k]
            sequence[:, k, 1 + d + prompt_frames: 1 + d + prompt_frames + new] = UNKNOWN
        return sequence

    def _unpattern(self, sequence: torch.Tensor, prompt_frames: int, new: int) -> torch.Tensor:
        start = 1 + prompt_frames
        return torch.stack([sequence[:, k, start + d: start + d + new] for k, d in enumerate(self.delays)], dim=1)

    @torch.inference_mode()
    def _text_memory(self, text: str | None, guidance: float) -> torch.Tensor | None:
        """Projected text ``[rows, Tm, D]``: the prompt, and a zeroed null row when guidance is on."""
        if not text:
            return None  # no text: the null condition alone, and no guidance to mix
        inputs = self.tokenizer([text], return_tensors="pt").to(self.device)
        hidden = self.model.text_encoder(**inputs).last_hidden_state
        project = getattr(self.model, "enc_to_dec_proj", None)  # transformers drops it when the widths match
        memory = (hidden if project is None else project(hidden)) * inputs["attention_mask"][..., None]
        if guidance != 1.0:
            memory = torch.cat([memory, torch.zeros_like(memory)])
        return memory

    @torch.inference_mode()
    def _encode_prompt(self, audio: np.ndarray) -> torch.Tensor:
        """Encode the whole frames at the end of ``audio`` ``[channels, samples]``, so the continuation starts
        exactly at its end. Stereo: each channel on its own through the mono codec, codebooks interleaved."""
        frames = min(audio.shape[-1] // self.hop_length, self.window_frames - self.stride_frames)
        if frames < 1:
            raise UserError(
                f"The region is shorter than one frame of this model ({1000 / self.frame_rate:g} ms); "
                "select a longer region."
            )
        tail = audio[:, audio.shape[-1] - frames * self.hop_length:]
        wav = torch.from_numpy(np.ascontiguousarray(tail, dtype=np.float32))[:, None].to(self.device)  # [C, 1, n]
        bandwidth = self.codec.config.target_bandwidths[0]
        codes = self.codec.encode(wav, bandwidth=bandwidth).audio_codes[0]  # [C, K / C, frames]
        return codes.transpose(0, 1).reshape(1, self.num_codebooks, frames)  # [1, K, frames]: L0, R0, L1, ...

    @torch.inference_mode()
    def _decode(self, codes: torch.Tensor) -> np.ndarray:
        """``codes`` ``[1, K, frames]`` -> float32 ``[channels, samples]`` in one call (`generate` decodes in chunks);
        stereo decodes each channel's codebooks."""
        per_channel = codes[0].reshape(-1, self.channels, codes.shape[-1]).transpose(0, 1)  # [C, K / C, frames]
        audio = self.codec.decode(per_channel[None], [None]).audio_values  # [C, 1, samples]
        return audio[:, 0].float().cpu().numpy()
