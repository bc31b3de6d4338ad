"""LLRFormer: the HRNet backbone (`pre_feature`) followed by the keypoint transformer."""

from __future__ import annotations

import logging

import torch
from torch import nn

from .config import ConfigNode, validate_geometry
from .hrnet import HRNetBackbone
from .patch_grid import PatchGrid
from .transformer import KeypointTransformer

logger = logging.getLogger(__name__)


class LLRFormer(nn.Module):
    """Map an ImageNet-normalised batch [B, 3, H, W] to heatmaps [B, K, H / 4, W / 4]-sized.

    The heatmap size is MODEL.HEATMAP_SIZE (width, height); `grid` is the patch grid.
    """

    def __init__(self, cfg: ConfigNode) -> None:
        super().__init__()
        model_cfg = cfg.MODEL
        self.grid = PatchGrid.from_config(cfg)
        self.num_keypoints = int(model_cfg.NUM_JOINTS)
        self.image_size = tuple(model_cfg.IMAGE_SIZE)
        self.pre_feature = HRNetBackbone(model_cfg.EXTRA)
        self.transformer = KeypointTransformer(
            num_keypoints=self.num_keypoints,
            feature_channels=self.pre_feature.out_channels,
            grid=self.grid,
            dim=int(model_cfg.DIM),
            heads=int(model_cfg.TRANSFORMER_HEADS),
            layers=int(model_cfg.CROSS_SELF_ATTENTION_LAYERS),
            mlp_ratio=int(model_cfg.TRANSFORMER_MLP_RATIO),
            heatmap_size=tuple(model_cfg.HEATMAP_SIZE),
            dropout=float(model_cfg.DROPOUT_RATE),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.transformer(self.pre_feature(images))

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Return the tokens after the last layer group, [B, K + P, dim], without the head."""
        return self.transformer.encode(self.pre_feature(images))

    def reset_parameters(self) -> None:
        """Initialise for training from scratch.

        Convolutions get N(0, 0.001) and BN (1, 0); the transformer is initialised as the
        published code does (see `KeypointTransformer.reset_parameters`).
        """
        for module in self.pre_feature.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, std=0.001)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
                module.reset_running_stats()
        self.transformer.reset_parameters()


def build_model(cfg: ConfigNode, initialize: bool = True) -> LLRFormer:
    """Build LLRFormer for a config.

    With `initialize=False` the parameters are created on the meta device and hold no memory:
    the model must then receive every tensor from a checkpoint, via
    `load_state_dict(state, strict=True, assign=True)`. This skips seconds of random
    initialisation that a checkpoint would overwrite.
    """
    validate_geometry(cfg)
    if not initialize:
        with torch.device("meta"):
            return LLRFormer(cfg)
    model = LLRFormer(cfg)
    model.reset_parameters()
    return model
