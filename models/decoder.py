"""A KV-cached forward pass over transformers' MusicGen decoder weights.

transformers' own forward rebuilds masks, cache objects and output records on every call, which
costs more than the maths for one token on small models. This module reuses the very same
parameters (no copies: the fused projections are views the original modules keep using) and does
only the arithmetic: pre-norm self-attention into a preallocated cache, cross-attention on key and
value projections computed once per generation, a GELU feed-forward, and one head per codebook.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def _fuse(linears: list[nn.Linear]) -> torch.Tensor:
    """Concatenate weights along the output dim and make each module's weight a view of the result."""
    fused = torch.cat([linear.weight.detach() for linear in linears], dim=0)
    start = 0
    for linear in linears:
        rows = linear.weight.shape[0]
        linear.weight = nn.Parameter(fused[start:start + rows], requires_grad=False)
        start += rows
    return fused


@dataclass
class DecoderState:
    """Per-generation tensors: the self-attention cache and the cross-attention keys and values."""

    keys: list[torch.Tensor]  # per layer [B, H, max_len, Dh]
    values: list[torch.Tensor]
    cross: list[tuple[torch.Tensor, torch.Tensor]] | None  # per layer ([B, H, Tm, Dh], same)
    length: int = 0  # positions already in the cache


class CachedDecoder:
    """Step a `MusicgenForCausalLM` token by token (or a prompt at once) with a KV cache."""

    def __init__(self, decoder: nn.Module):
        core = decoder.model.decoder
        self.layers = list(core.layers)
        self.final_norm = core.layer_norm
        self.num_heads = decoder.config.num_attention_heads
        self.hidden_size = decoder.config.hidden_size
        self.head_dim = self.hidden_size // self.num_heads
        self.embed = torch.stack([e.weight.detach() for e in core.embed_tokens])  # [K, V+1, D]
        self.heads = _fuse(list(decoder.lm_heads)).view(len(decoder.lm_heads), -1, self.hidden_size)
        self.qkv = [_fuse([layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj])
                    for layer in self.layers]
        self.cross_kv = [_fuse([layer.encoder_attn.k_proj, layer.encoder_attn.v_proj]) for layer in self.layers]
        self.positions = core.embed_positions
        self.codebook_index = torch.arange(len(core.embed_tokens), device=self.embed.device).view(1, -1, 1)

    def start(self, memory: torch.Tensor | None, batch: int, max_len: int) -> DecoderState:
        """Allocate a cache for ``max_len`` positions; ``memory`` is the projected text ``[B, Tm, D]``.

        ``memory=None`` means no text at all: with bias-free projections, cross-attention over an
        all-zero memory adds exactly zero, so it is skipped.
        """
        ref = self.embed
        shape = (batch, self.num_heads, max_len, self.head_dim)
        keys = [ref.new_empty(shape) for _ in self.layers]
        values = [ref.new_empty(shape) for _ in self.layers]
        cross = None
        if memory is not None:
            memory = memory.to(ref.dtype)
            cross = [self._split_heads(F.linear(memory, w)).chunk(2, dim=1) for w in self.cross_kv]
        return DecoderState(keys, values, cross)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, n*D] -> [B, n*H, T, Dh]"""
        b, t, _ = x.shape
        return x.view(b, t, -1, self.head_dim).transpose(1, 2)

    def table(self, length: int) -> torch.Tensor:
        if length > self.positions.weights.shape[0]:
            self.positions.make_weights(length, self.hidden_size)
        return self.positions.weights

    @torch.inference_mode()
    def step(self, state: DecoderState, tokens: torch.Tensor) -> torch.Tensor:
        """Feed ``tokens`` ``[B, K, T]`` at the next positions; return the last position's logits ``[B, K, V]``."""
        start, steps = state.length, tokens.shape[-1]
        end = start + steps
        x = self.embed[self.codebook_index, tokens].sum(1)  # [B, T, D]
        x = x + self.table(end)[start:end].to(x.dtype)
        causal = None
        if steps > 1:  # a prompt: each position sees the cache and the prompt up to itself
            causal = torch.ones(steps, end, dtype=torch.bool, device=x.device).tril(start)
        for i, layer in enumerate(self.layers):
            x = x + self._self_attention(layer, i, state, x, start, end, causal)
            if state.cross is not None:
                x = x + self._cross_attention(layer, state.cross[i], x)
            h = layer.final_layer_norm(x)
            x = x + layer.fc2(layer.activation_fn(layer.fc1(h)))
        state.length = end
        last = self.final_norm(x[:, -1])  # [B, D]
        return torch.einsum("bd,kvd->bkv", last, self.heads)

    def _self_attention(self, layer, i, state, x, start, end, causal):
        h = layer.self_attn_layer_norm(x)
        q, k, v = self._split_heads(F.linear(h, self.qkv[i])).chunk(3, dim=1)
        state.keys[i][:, :, start:end] = k
        state.values[i][:, :, start:end] = v
        out = F.scaled_dot_product_attention(q, state.keys[i][:, :, :end], state.values[i][:, :, :end], causal)
        return layer.self_attn.out_proj(out.transpose(1, 2).flatten(2))

    def _cross_attention(self, layer, kv, x):
        h = layer.encoder_attn_layer_norm(x)
        q = self._split_heads(layer.encoder_attn.q_proj(h))
        out = F.scaled_dot_product_attention(q, kv[0], kv[1])
        return layer.encoder_attn.out_proj(out.transpose(1, 2).flatten(2))
