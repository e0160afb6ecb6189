"""Choosing the next token from logits: temperature, top-k, top-p (nucleus), all seeded."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Sampling:
    """How tokens are drawn. As in audiocraft, ``top_p > 0`` takes precedence over ``top_k``.

    ``guidance``: classifier-free guidance; 1.0 turns it off, higher follows the text more closely
    at some cost in variety. ``temperature <= 0`` or ``top_k == 1`` is greedy decoding.
    """

    guidance: float = 3.0
    top_k: int = 250
    top_p: float = 0.0
    temperature: float = 1.0


def sample(logits: torch.Tensor, params: Sampling, generators: list[torch.Generator]) -> torch.Tensor:
    """``logits`` ``[B, K, V]`` -> tokens ``[B, K]``, row ``b`` drawn with ``generators[b]`` (a take's own seed)."""
    if params.temperature <= 0 or (params.top_k == 1 and params.top_p <= 0):
        return logits.argmax(dim=-1)
    logits = logits.float()
    if params.temperature != 1.0:
        logits = logits / params.temperature
    if params.top_p > 0:
        return _nucleus(logits, params.top_p, generators)
    if 0 < params.top_k < logits.shape[-1]:
        values, indices = logits.topk(params.top_k, dim=-1)
        choice = _draw(values.softmax(dim=-1), generators)
        return indices.gather(-1, choice.unsqueeze(-1)).squeeze(-1)
    return _draw(logits.softmax(dim=-1), generators)


def _nucleus(logits: torch.Tensor, top_p: float, generators: list[torch.Generator]) -> torch.Tensor:
    probs, indices = logits.softmax(dim=-1).sort(dim=-1, descending=True)
    # Keep the smallest set whose mass reaches top_p (the first token always stays).
    outside = probs.cumsum(dim=-1) - probs > top_p
    probs = probs.masked_fill(outside, 0.0)
    choice = _draw(probs, generators)
    return indices.gather(-1, choice.unsqueeze(-1)).squeeze(-1)


def _draw(probs: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
    """One index per row of ``probs`` ``[B, ...]``, with probability ``probs`` (unnormalised is fine), row ``b``
    drawn from ``generators[b]``: each take draws the same numbers, in the same order, alone or in a batch.

    The exponential race: argmax of ``p_i / E_i`` with ``E_i ~ Exp(1)`` is distributed as ``p``.
    It costs a few elementwise ops, where ``torch.multinomial`` is slow on small CPU tensors.
    """
    race = torch.stack([torch.empty_like(row, dtype=torch.float32).exponential_(generator=generator)
                        for row, generator in zip(probs, generators, strict=True)])
    return (probs / race).argmax(dim=-1)
