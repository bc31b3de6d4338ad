"""The LLRFormer token transformer: keypoint tokens attend to patch tokens.

Token layout: [batch, keypoints + patches, dim], keypoint tokens first. Each layer group is a
cross-attention step (keypoint queries over patch keys, updating only the keypoint tokens)
followed by a pre-norm self-attention block over all tokens. Module names reproduce the
published state dict.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn


class AttentionProbe(nn.Identity):
    """Identity on attention probabilities [batch, heads, queries, keys].

    The attention modules compute their softmax explicitly and pass it through the probe only
    while a forward hook is registered on it; otherwise they use the fused kernel. With
    `query_rows` set, only the first `query_rows` queries' probabilities are computed for the
    probe, and the output still comes from the fused kernel.
    """

    def __init__(self) -> None:
        super().__init__()
        self.query_rows: Optional[int] = None

    @property
    def active(self) -> bool:
        return bool(self._forward_hooks)


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    batch, tokens, dim = x.shape
    return x.view(batch, tokens, heads, dim // heads).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    batch, heads, tokens, head_dim = x.shape
    return x.transpose(1, 2).reshape(batch, tokens, heads * head_dim)


def _attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    scale: float,
    probe: AttentionProbe,
    dropout: nn.Dropout,
) -> torch.Tensor:
    """Scaled dot-product attention on [batch, heads, tokens, head_dim] tensors."""
    dropping = dropout.training and dropout.p > 0
    rows = probe.query_rows
    if probe.active and not dropping and rows is not None and rows < q.shape[-2]:
        probe(torch.softmax(torch.matmul(q[..., :rows, :], k.transpose(-1, -2)) * scale, dim=-1))
        return F.scaled_dot_product_attention(q, k, v, scale=scale)
    if probe.active or dropping:
        weights = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * scale, dim=-1)
        weights = dropout(probe(weights))
        return torch.matmul(weights, v)
    return F.scaled_dot_product_attention(q, k, v, scale=scale)


class Residual(nn.Module):
    def __init__(self, fn: nn.Module) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.fn(x, **kwargs) + x


class PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.fn(self.norm(x), **kwargs)


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, hidden_dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SelfAttention(nn.Module):
    """Multi-head self-attention over all tokens, logits scaled by 1/sqrt(head width)."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.to_qkv = nn.Linear(dim, dim * 3, bias=False)
        self.to_out = nn.Sequential(nn.Linear(dim, dim), nn.Dropout(dropout))
        self.attn_dropout = nn.Dropout(0.0)
        self.probe = AttentionProbe()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (_split_heads(t, self.heads) for t in self.to_qkv(x).chunk(3, dim=-1))
        out = _attend(q, k, v, self.scale, self.probe, self.attn_dropout)
        return self.to_out(_merge_heads(out))


class CrossAttention(nn.Module):
    """Keypoint queries over patch keys and values, logits scaled by 1/sqrt(dim).

    NOTE: the published model scales by the whole width, not the head width; this is kept so
    that published checkpoints compute the same numbers.
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        self.scale = dim**-0.5
        self.norm_kv = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(dim, dim, bias=False)
        self.to_v = nn.Linear(dim, dim, bias=False)
        self.to_out = nn.Sequential(nn.Linear(dim, dim), nn.Dropout(dropout))
        self.attn_dropout = nn.Dropout(0.0)
        self.probe = AttentionProbe()

    def forward(self, queries: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        context = self.norm_kv(patches)
        q = _split_heads(self.to_q(queries), self.heads)
        k = _split_heads(self.to_k(context), self.heads)
        v = _split_heads(self.to_v(context), self.heads)
        out = _attend(q, k, v, self.scale, self.probe, self.attn_dropout)
        return self.to_out(_merge_heads(out))


class CrossAttentionStep(nn.Module):
    """q <- q + CrossAttention(LayerNorm(q), patches); the patch tokens pass on detached."""

    def __init__(self, dim: int, heads: int, num_keypoints: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.num_keypoints = num_keypoints
        self.layers = nn.ModuleList([Residual(PreNorm(dim, CrossAttention(dim, heads, dropout)))])

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        keypoints = tokens[:, : self.num_keypoints]
        patches = tokens[:, self.num_keypoints :]
        for layer in self.layers:
            keypoints = layer(keypoints, patches=patches)
        return torch.cat([keypoints, patches.detach()], dim=1)


class SelfAttentionBlock(nn.Module):
    """Pre-norm transformer block over all tokens: attention, then the MLP, each residual."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            [
                nn.ModuleList(
                    [
                        Residual(PreNorm(dim, SelfAttention(dim, heads, dropout))),
                        Residual(PreNorm(dim, FeedForward(dim, mlp_dim, dropout))),
                    ]
                )
            ]
        )

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        for attention, feed_forward in self.layers:
            tokens = feed_forward(attention(tokens))
        return tokens


def sine_position_embedding(
    rows: int, cols: int, dim: int, temperature: float = 10000.0
) -> torch.Tensor:
    """Return the fixed 2-D sine embedding [1, rows * cols, dim] of a grid, in raster order.

    y and x run 1..rows and 1..cols, are normalised by their last value (+1e-6) and multiplied
    by 2 pi. Each gives dim / 2 features, sine at even and cosine at odd positions; y first.
    """
    features = dim // 2
    y = torch.arange(1, rows + 1, dtype=torch.float32).view(rows, 1).expand(rows, cols)
    x = torch.arange(1, cols + 1, dtype=torch.float32).view(1, cols).expand(rows, cols)
    y = y / (rows + 1e-6) * 2 * math.pi
    x = x / (cols + 1e-6) * 2 * math.pi
    index = torch.arange(features, dtype=torch.float32)
    frequencies = temperature ** (2 * torch.div(index, 2, rounding_mode="floor") / features)
    parts = []
    for coordinate in (y, x):
        angles = coordinate[..., None] / frequencies
        embedded = torch.empty_like(angles)
        embedded[..., 0::2] = angles[..., 0::2].sin()
        embedded[..., 1::2] = angles[..., 1::2].cos()
        parts.append(embedded)
    return torch.cat(parts, dim=-1).reshape(1, rows * cols, 2 * features)


class KeypointTransformer(nn.Module):
    """Patch embedding, keypoint tokens, cross/self layer groups and the heatmap head.

    `forward` maps a feature map [B, C, Hf, Wf] to heatmaps [B, K, Hh, Wh].
    """

    def __init__(
        self,
        *,
        num_keypoints: int,
        feature_channels: int,
        grid,
        dim: int,
        heads: int,
        layers: int,
        mlp_ratio: int,
        heatmap_size,
        dropout: float = 0.0,
        embedding_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_keypoints = num_keypoints
        self.grid = grid
        self.heatmap_w, self.heatmap_h = heatmap_size
        patch_dim = feature_channels * grid.patch_h * grid.patch_w

        self.kp_init = nn.Parameter(torch.empty(1, num_keypoints, dim))
        self.kp_pos = nn.Parameter(torch.empty(1, num_keypoints, dim))
        self.vis_pos = nn.Parameter(torch.empty(1, grid.num_patches, dim), requires_grad=False)
        # Passing the weight skips nn.Embedding's own random init, slow on the meta device.
        self.kp_id_emb = nn.Embedding(num_keypoints, dim, _weight=torch.empty(num_keypoints, dim))
        self.patch_to_embedding = nn.Linear(patch_dim, dim)
        self.dropout = nn.Dropout(embedding_dropout)
        self.cross_self_transformer_layers = nn.ModuleList(
            nn.ModuleList(
                [
                    CrossAttentionStep(dim, heads, num_keypoints, dropout),
                    SelfAttentionBlock(dim, heads, dim * mlp_ratio, dropout),
                ]
            )
            for _ in range(layers)
        )

        heatmap_pixels = self.heatmap_w * self.heatmap_h
        hidden = heatmap_pixels // 8
        if dim <= hidden * 0.5:
            self.mlp_head = nn.Sequential(
                nn.LayerNorm(dim),
                nn.Linear(dim, hidden),
                nn.LayerNorm(hidden),
                nn.Linear(hidden, heatmap_pixels),
            )
        else:
            self.mlp_head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, heatmap_pixels))
        # Token t is the patch at zigzag cell t; a plain attribute, so meta-device builds keep it.
        self._raster_index = torch.from_numpy(grid.raster_index)

    def initial_keypoint_tokens(self) -> torch.Tensor:
        """Return the keypoint tokens before the first layer, [1, K, dim]."""
        return self.kp_init + self.kp_id_emb.weight.unsqueeze(0) + self.kp_pos

    def embed_patches(self, features: torch.Tensor) -> torch.Tensor:
        """Cut [B, C, Hf, Wf] into patches and embed them, in zigzag token order: [B, P, dim]."""
        batch, channels, height, width = features.shape
        grid = self.grid
        if (height, width) != (grid.rows * grid.patch_h, grid.cols * grid.patch_w):
            raise ValueError(
                f"feature map {height} x {width} does not match the patch grid "
                f"{grid.rows} x {grid.cols} of {grid.patch_h} x {grid.patch_w}"
            )
        patches = features.reshape(
            batch, channels, grid.rows, grid.patch_h, grid.cols, grid.patch_w
        )
        # [B, rows, cols, C, patch_h, patch_w]: each patch flattened channel-major.
        patches = patches.permute(0, 2, 4, 1, 3, 5).reshape(batch, grid.num_patches, -1)
        patches = patches[:, self._raster_index.to(patches.device)]
        # The raster-order position embedding is added position by position to the zigzag
        # tokens, as the published model does.
        return self.patch_to_embedding(patches) + self.vis_pos

    def encode(self, features: torch.Tensor) -> torch.Tensor:
        """Run every layer group on a feature map: tokens [B, K + P, dim], keypoints first.

        Everything the attention recorder captures is computed here; the heatmap head, whose
        last linear layer holds most of the published model's weights, is not run.
        """
        batch = features.shape[0]
        patches = self.embed_patches(features)
        keypoints = self.initial_keypoint_tokens().expand(batch, -1, -1)
        tokens = self.dropout(torch.cat([keypoints, patches], dim=1))
        for cross_step, self_block in self.cross_self_transformer_layers:
            tokens = self_block(cross_step(tokens))
        return tokens

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        tokens = self.encode(features)
        heatmaps = self.mlp_head(tokens[:, : self.num_keypoints])
        return heatmaps.view(len(tokens), self.num_keypoints, self.heatmap_h, self.heatmap_w)

    def reset_parameters(self) -> None:
        """Initialise for training from scratch as the published code does."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.trunc_normal_(self.kp_init, std=0.02)
        nn.init.trunc_normal_(self.kp_pos, std=0.01)
        nn.init.normal_(self.kp_id_emb.weight)
        with torch.no_grad():
            self.vis_pos.copy_(
                sine_position_embedding(self.grid.rows, self.grid.cols, self.vis_pos.shape[-1])
            )
