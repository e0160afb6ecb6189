"""A KV-cached forward pass over transformers' MusicGen decoder weights.

transformers' own forward rebuilds masks, cache objects and output records on every call, which
costs more than the maths for one token on small models. This module reuses the very same
parameters (no copies: the fused projections are views the original modules keep using) and does
only the arithmetic: pre-norm self-attention into a preallocated cache, cross-attention on key and
value projections computed once per generation, a GELU feed-forward, and one head per codebook.

MusicGen melody has no cross-attention: its conditioning (projected chroma, then projected text) is
a prefix of embeddings before the first token. `CachedDecoder.start` prefills such a prefix into the
cache, so every step after it costs the same as without one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from models import linear as kernels
from models.linear import Linear
from models.precision import bfloat16_cache


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

    cache: list[torch.Tensor]  # per layer [2 (keys, values), B, H, max_len, Dh]
    cross: list[tuple[torch.Tensor, torch.Tensor]] | None  # per layer ([B, H, Tm, Dh], same)
    length: int = 0  # positions already in the cache (a prefix included)


@dataclass(frozen=True)
class _Layer:
    """One decoder layer's tensors, taken from the modules once: calling modules per step costs more
    than a tiny model's arithmetic."""

    norm: tuple  # (weight, bias, eps) before self-attention
    qkv: Linear  # the per-step products, in the decoder's precision (`models.linear`)
    out: Linear
    ffn_norm: tuple
    fc1: Linear
    fc2: Linear
    cross: _Cross | None = None  # None in MusicGen melody, which has no cross-attention

    @staticmethod
    def products(layer: Any) -> list[torch.Tensor]:
        """``layer``'s per-step products' weights, in the order `of` takes their kernels: q, k and v fused, out, fc1,
        fc2, then the cross-attention's q and out. Call once per layer: fusing makes the modules' weights views.
        ``layer``: a transformers decoder layer (Any: nn.Module types its submodules as ``Tensor | Module``)."""
        q, k, v, *others = _product_modules(layer)  # then out, fc1, fc2 and the cross-attention's q and out
        return [_fuse([q, k, v]).detach(), *(module.weight.detach() for module in others)]

    @classmethod
    def of(cls, layer: Any, products: list[Linear]) -> _Layer:
        """``products``: kernels (`models.linear`) for the weights `products` listed, in the decoder's precision."""
        def norm(module):
            return module.weight.detach(), module.bias.detach(), module.eps

        qkv, out, fc1, fc2, *cross_products = products
        tensors = dict(norm=norm(layer.self_attn_layer_norm), qkv=qkv, out=out,
                       ffn_norm=norm(layer.final_layer_norm), fc1=fc1, fc2=fc2)
        cross = getattr(layer, "encoder_attn", None)
        if cross is not None:  # keys and values are made once per generation: they stay in the modules' dtype
            q, cross_out = cross_products
            tensors.update(cross=_Cross(norm(layer.encoder_attn_layer_norm), q, _fuse([cross.k_proj, cross.v_proj]),
                                        cross_out))
        return cls(**tensors)


@dataclass(frozen=True)
class _Cross:
    """One layer's cross-attention tensors."""

    norm: tuple
    q: Linear
    kv: torch.Tensor
    out: Linear


def _product_modules(layer: Any) -> list[nn.Linear]:
    """The linear modules whose weights `_Layer.products` takes (the cross-attention's keys and values are not
    among them: they stay float32 and are used once per generation)."""
    attn, cross = layer.self_attn, getattr(layer, "encoder_attn", None)
    modules = [attn.q_proj, attn.k_proj, attn.v_proj, attn.out_proj, layer.fc1, layer.fc2]
    return modules + ([cross.q_proj, cross.out_proj] if cross is not None else [])


def _norm(x: torch.Tensor, params: tuple) -> torch.Tensor:
    weight, bias, eps = params
    return F.layer_norm(x, weight.shape, weight, bias, eps)


class CachedDecoder:
    """Step a `MusicgenForCausalLM` token by token (or a prompt at once) with a KV cache."""

    def __init__(self, decoder: Any, precision: str = "float32"):
        """``decoder``: transformers' `MusicgenForCausalLM` or its melody twin (Any, as in `_Layer.of`).

        ``precision`` (`models.precision`): how the per-step products hold their weights on the CPU; the modules
        keep their float32 weights (the cross-attention's keys and values, computed once, use them).
        """
        core, config = decoder.model.decoder, decoder.config
        self.precision = precision
        weights = [_Layer.products(layer) for layer in core.layers]
        self.final_norm = (core.layer_norm.weight.detach(), core.layer_norm.bias.detach(), core.layer_norm.eps)
        self.activation = {"gelu": F.gelu, "relu": F.relu}.get(config.activation_function,
                                                              core.layers[0].activation_fn)
        self.num_heads = config.num_attention_heads
        self.hidden_size = config.hidden_size
        self.head_dim = self.hidden_size // self.num_heads
        self.embed = torch.stack([e.weight.detach() for e in core.embed_tokens])  # [K, V+1, D]
        # Half the bytes a long take's attention reads, in the reduced modes on a CPU with native bfloat16
        # (`bfloat16_cache`); keys and values are rounded as they are written, queries as they attend.
        self.cache_dtype = torch.bfloat16 if bfloat16_cache(precision, self.embed.device.type) else self.embed.dtype
        self.heads = _fuse(list(decoder.lm_heads)).view(len(decoder.lm_heads), -1, self.hidden_size)
        self.head_shape = self.heads.shape[:2]  # [K, V]
        # One product over every codebook's head: on the CPU 2x faster than the batched matmul(W, x.T) at both
        # benched shapes (bench/decode.py); on a GPU the batched layout stays (not measured there).
        on_cpu = self.heads.device.type == "cpu"
        products = iter(kernels.linears([w for layer in weights for w in layer]
                                        + ([self.heads.flatten(0, 1)] if on_cpu else []), precision))
        self.layers = [_Layer.of(layer, [next(products) for _ in layer_weights])
                       for layer, layer_weights in zip(core.layers, weights, strict=True)]
        self.flat_heads = next(products) if on_cpu else None
        self.positions = core.embed_positions
        self.codebook_index = torch.arange(len(core.embed_tokens), device=self.embed.device).view(1, -1, 1)
        self._products = [module for layer in core.layers for module in _product_modules(layer)] + list(
            decoder.lm_heads)

    def drop_module_weights(self) -> None:
        """Free the modules' float32 weights of the products this decoder holds in int8 or bfloat16: a generator
        loaded in one precision never reads them again (musicgen-small's shape in int8: 0.33 GB of memory only
        swapping could take back, docs/PERFORMANCE.md). The modules can make no other decoder after this, so only
        the generator that owns them calls it. float32 and the GPU keep theirs: their products are those weights."""
        if self.precision not in ("int8", "bfloat16") or self.flat_heads is None:
            return
        for module in self._products:
            module.weight = nn.Parameter(module.weight.new_empty(0), requires_grad=False)
        del self.heads  # views of the fused heads, which only the GPU's layout reads

    def start(self, memory: torch.Tensor | None, batch: int, max_len: int,
              prefix: torch.Tensor | None = None) -> DecoderState:
        """Allocate a cache for ``max_len`` token positions after ``prefix``.

        ``memory`` is the projected text ``[B, Tm, D]`` for cross-attention. ``memory=None`` means no
        text at all: with bias-free projections, cross-attention over an all-zero memory adds exactly
        zero, so it is skipped. ``prefix`` ``[B, P, D]`` (MusicGen melody's conditioning) is run
        through the layers into the cache at positions ``0 .. P - 1``; tokens then start at ``P``.
        """
        ref = self.embed
        extra = 0 if prefix is None else prefix.shape[1]
        cache = [ref.new_empty(2, batch, self.num_heads, extra + max_len, self.head_dim, dtype=self.cache_dtype)
                 for _ in self.layers]
        cross = None
        if memory is not None:
            crosses = [layer.cross for layer in self.layers if layer.cross is not None]
            if len(crosses) < len(self.layers):
                raise ValueError("this decoder has no cross-attention; pass its conditioning as a prefix")
            memory = memory.to(ref.dtype)
            cross = [self._keys_values(memory, layer_cross.kv) for layer_cross in crosses]
        state = DecoderState(cache, cross)
        if prefix is not None and extra:
            self._forward(state, prefix.to(ref.dtype))
        return state

    def _keys_values(self, memory: torch.Tensor, kv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keys, values = self._split_heads(F.linear(memory, kv)).chunk(2, dim=1)
        return keys, values

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, n*D] -> [B, n*H, T, Dh]"""
        b, t, _ = x.shape
        return x.view(b, t, -1, self.head_dim).transpose(1, 2)

    def _merge_heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2).flatten(2)

    def table(self, length: int) -> torch.Tensor:
        if length > self.positions.weights.shape[0]:
            self.positions.make_weights(length, self.hidden_size)
        return self.positions.weights

    def step(self, state: DecoderState, tokens: torch.Tensor) -> torch.Tensor:
        """Feed ``tokens`` ``[B, K, T]`` at the next positions; return the last position's logits ``[B, K, V]``.

        No autograd context is entered per step: every tensor here is detached from the modules already.
        """
        x = self._forward(state, self.embed[self.codebook_index, tokens].sum(1))  # [B, T, D]
        last = _norm(x[:, -1], self.final_norm)  # [B, D]
        if self.flat_heads is not None:
            return self.flat_heads(last).view(last.shape[0], *self.head_shape)  # [B, K * V] -> [B, K, V]
        return torch.matmul(self.heads, last.T).permute(2, 0, 1)  # [K, V, B] -> [B, K, V]

    def _forward(self, state: DecoderState, x: torch.Tensor) -> torch.Tensor:
        """Run embeddings ``x`` ``[B, T, D]`` at the next positions through every layer, caching keys and values."""
        start, steps = state.length, x.shape[1]
        end = start + steps
        x = x + self.table(end)[start:end].to(x.dtype)
        causal = None
        if steps > 1:  # a prompt: each position sees the cache and the prompt up to itself
            causal = torch.ones(steps, end, dtype=torch.bool, device=x.device).tril(start)
        for i, layer in enumerate(self.layers):
            b, t, _ = x.shape  # [B, T, 3 * D] -> [3, B, H, T, Dh]: q, then keys and values in one copy
            qkv = layer.qkv(_norm(x, layer.norm)).view(b, t, 3, -1, self.head_dim).permute(2, 0, 3, 1, 4)
            cache = state.cache[i]
            cache[:, :, :, start:end] = qkv[1:]
            attended = F.scaled_dot_product_attention(qkv[0].to(cache.dtype), cache[0, :, :, :end],
                                                      cache[1, :, :, :end], causal).to(x.dtype)
            x = x + layer.out(self._merge_heads(attended))
            if state.cross is not None and layer.cross is not None:  # `start` made sure both or neither
                q = self._split_heads(layer.cross.q(_norm(x, layer.cross.norm)))
                attended = F.scaled_dot_product_attention(q, *state.cross[i])
                x = x + layer.cross.out(self._merge_heads(attended))
            x = x + layer.fc2(self.activation(layer.fc1(_norm(x, layer.ffn_norm))))
        state.length = end
        return x
