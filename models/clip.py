"""Audio in memory, as it crosses between the core and the models: samples with their sample rate.

A `Clip` is float32 ``[channels, frames]`` plus its rate; a generator conforms what it is given to its own
rate and channels (`Clip.conformed`, resampling through pedalboard), so no caller needs to know them first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pedalboard.io import StreamResampler

from models.errors import UserError


@dataclass(frozen=True)
class Region:
    """A time range on a clip or track, in seconds."""

    start_seconds: float
    end_seconds: float

    @property
    def duration_seconds(self) -> float:
        return self.end_seconds - self.start_seconds


@dataclass(frozen=True, eq=False)
class Clip:
    """Audio in memory: ``samples`` is float32 ``[channels, frames]``."""

    samples: np.ndarray
    sample_rate: int

    def __post_init__(self):
        if self.samples.ndim != 2:
            raise ValueError(f"Clip samples must be [channels, frames], got shape {self.samples.shape}")

    @property
    def channels(self) -> int:
        return self.samples.shape[0]

    @property
    def frames(self) -> int:
        return self.samples.shape[1]

    @property
    def duration_seconds(self) -> float:
        return self.frames / self.sample_rate

    def region(self, region: Region, field: str = "region") -> Clip:
        """The part of this clip inside ``region``; raises `UserError` if it lies outside.

        ``field``: the request's field the region came from, named in the error ("melody_region" for a melody's).
        """
        start, end = region.start_seconds, region.end_seconds
        # Half a sample of slack: an end typed as the clip's printed duration should still fit.
        slack = 0.5 / self.sample_rate
        if not (0 <= start < end <= self.duration_seconds + slack):
            raise UserError(
                f"The region {start:g}-{end:g} s is outside the clip (0-{self.duration_seconds:.3f} s); "
                "choose a start before the end, both inside the clip.", field=field,
            )
        first, last = round(start * self.sample_rate), min(round(end * self.sample_rate), self.frames)
        return Clip(self.samples[:, first:last], self.sample_rate)

    def conformed(self, sample_rate: int, channels: int) -> Clip:
        """This clip resampled and down- or up-mixed for a consumer (a model, a host)."""
        samples = self.samples
        if channels == 1 and self.channels > 1:
            samples = samples.mean(axis=0, keepdims=True)
        elif channels > 1 and self.channels == 1:
            samples = np.repeat(samples, channels, axis=0)
        elif channels != self.channels:
            raise ValueError(f"Cannot map {self.channels} channels to {channels}")
        return Clip(np.ascontiguousarray(samples, dtype=np.float32), self.sample_rate).resampled(sample_rate)

    def resampled(self, sample_rate: int) -> Clip:
        if sample_rate == self.sample_rate:
            return self
        resampler = StreamResampler(self.sample_rate, sample_rate, self.channels)
        out = np.concatenate([resampler.process(self.samples), resampler.process()], axis=1)
        # The resampler's latency can leave the total a sample off; the length must follow the rate.
        frames = round(self.frames * sample_rate / self.sample_rate)
        out = out[:, :frames] if out.shape[1] >= frames else np.pad(out, ((0, 0), (0, frames - out.shape[1])))
        return Clip(np.ascontiguousarray(out, dtype=np.float32), sample_rate)
