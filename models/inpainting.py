"""Continuation as latent inpainting, RePaint-style, for latent diffusion models.

The region's tail is encoded to clean latent frames and placed at the start of a longer latent; the rest is
noise to be denoised. Before every step the known frames are overwritten with the clean ones noised to that
step's level (the scheduler's own ``add_noise``, with one fixed noise draw), and after the last step with the
clean ones themselves. The model thus only ever sees a latent whose known part is exactly what a real clip
at that noise level looks like, and shapes the new part to fit it.

This is RePaint's replacement step without its resampling ("jump back") loops: those cost several times the
steps and mainly help short, fully unconditioned holes; a continuation has the whole context on one side.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class KnownFrames:
    """Clean latent frames pinned at the start of the latent being denoised (time is dim 2)."""

    clean: torch.Tensor  # [1, C, K, F]
    noise: torch.Tensor  # [1, C, K, F], the same draw at every step

    @property
    def frames(self) -> int:
        return self.clean.shape[2]

    def impose(self, latents: torch.Tensor, scheduler, timestep: torch.Tensor) -> None:
        """Overwrite the known span of ``latents`` (in place) with the clean frames noised to ``timestep``."""
        noisy = scheduler.add_noise(self.clean, self.noise, timestep.reshape(1))
        latents[:, :, : self.frames] = noisy.to(latents.dtype)

    def finish(self, latents: torch.Tensor) -> None:
        """After the last step the known span is the clean frames themselves."""
        latents[:, :, : self.frames] = self.clean.to(latents.dtype)


def context_frames(available: int, new: int, window: int) -> int:
    """How many of the region's last latent frames to condition ``new`` frames on.

    As many as keep the whole latent within the model's training ``window`` (10.24 s for ``cvssp/audioldm2``),
    but never fewer than half a window when there is that much: a long continuation still hears 5 s of the
    region, and the latent only grows past the window as far as the user asked for more audio than it holds.
    """
    return min(available, max(window - new, window // 2))
