"""The HRNet backbone (`pre_feature`): stem, layer1, and stages 2 and 3.

Parameter names follow the public HRNet release, so published checkpoints load unchanged.
The backbone returns the highest-resolution branch of stage 3: STAGE3.NUM_CHANNELS[0]
channels at a quarter of the input size.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

BN_MOMENTUM = 0.1


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(
        self,
        in_channels: int,
        channels: int,
        stride: int = 1,
        downsample: Optional[nn.Module] = None,
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, channels, stride)
        self.bn1 = nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(
        self,
        in_channels: int,
        channels: int,
        stride: int = 1,
        downsample: Optional[nn.Module] = None,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)
        self.conv2 = conv3x3(channels, channels, stride)
        self.bn2 = nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)
        self.conv3 = nn.Conv2d(channels, channels * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels * self.expansion, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


BLOCKS = {"BASIC": BasicBlock, "BOTTLENECK": Bottleneck}


def make_layer(
    block: type, in_channels: int, channels: int, num_blocks: int, stride: int = 1
) -> nn.Sequential:
    """Stack `num_blocks` residual blocks; the first gets a 1x1 projection when shapes change."""
    downsample = None
    if stride != 1 or in_channels != channels * block.expansion:
        downsample = nn.Sequential(
            nn.Conv2d(in_channels, channels * block.expansion, 1, stride=stride, bias=False),
            nn.BatchNorm2d(channels * block.expansion, momentum=BN_MOMENTUM),
        )
    layers = [block(in_channels, channels, stride, downsample)]
    layers += [block(channels * block.expansion, channels) for _ in range(1, num_blocks)]
    return nn.Sequential(*layers)


class HighResolutionModule(nn.Module):
    """Parallel branches at 1/1, 1/2, 1/4 ... resolution, then an exchange unit that sums them.

    Higher-to-lower paths are chains of stride-2 3x3 convolutions (ReLU between, not after the
    last); lower-to-higher paths are a 1x1 convolution, BN and nearest upsampling.
    """

    def __init__(
        self,
        block: type,
        num_blocks: Sequence[int],
        channels: Sequence[int],
        multi_scale_output: bool = True,
    ) -> None:
        super().__init__()
        self.num_branches = len(channels)
        self.branches = nn.ModuleList(
            make_layer(block, channels[i], channels[i], num_blocks[i])
            for i in range(self.num_branches)
        )
        num_outputs = self.num_branches if multi_scale_output else 1
        self.fuse_layers = nn.ModuleList(
            nn.ModuleList(self._exchange(channels, i, j) for j in range(self.num_branches))
            for i in range(num_outputs)
        )
        self.relu = nn.ReLU(inplace=True)

    @staticmethod
    def _exchange(channels: Sequence[int], target: int, source: int) -> Optional[nn.Module]:
        if source == target:
            return None
        if source > target:
            return nn.Sequential(
                nn.Conv2d(channels[source], channels[target], 1, bias=False),
                nn.BatchNorm2d(channels[target], momentum=BN_MOMENTUM),
                nn.Upsample(scale_factor=2 ** (source - target), mode="nearest"),
            )
        steps = []
        for step in range(target - source):
            last = step == target - source - 1
            out_channels = channels[target] if last else channels[source]
            layers = [
                conv3x3(channels[source], out_channels, stride=2),
                nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM),
            ]
            if not last:
                layers.append(nn.ReLU(inplace=True))
            steps.append(nn.Sequential(*layers))
        return nn.Sequential(*steps)

    def forward(self, inputs: List[torch.Tensor]) -> List[torch.Tensor]:
        branch_outputs = [branch(x) for branch, x in zip(self.branches, inputs)]
        fused = []
        for paths in self.fuse_layers:
            total = None
            for source, path in enumerate(paths):
                value = branch_outputs[source] if path is None else path(branch_outputs[source])
                total = value if total is None else total + value
            fused.append(self.relu(total))
        return fused


def _make_transition(previous: Sequence[int], current: Sequence[int]) -> nn.ModuleList:
    """Adapt branch widths between stages; each new branch comes from the lowest-resolution one."""
    layers: List[Optional[nn.Module]] = []
    for i, channels in enumerate(current):
        if i < len(previous):
            if previous[i] == channels:
                layers.append(None)
            else:
                layers.append(
                    nn.Sequential(
                        conv3x3(previous[i], channels),
                        nn.BatchNorm2d(channels, momentum=BN_MOMENTUM),
                        nn.ReLU(inplace=True),
                    )
                )
        else:
            steps = []
            for step in range(i + 1 - len(previous)):
                in_channels = previous[-1]
                out_channels = channels if step == i - len(previous) else in_channels
                steps.append(
                    nn.Sequential(
                        conv3x3(in_channels, out_channels, stride=2),
                        nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM),
                        nn.ReLU(inplace=True),
                    )
                )
            layers.append(nn.Sequential(*steps))
    return nn.ModuleList(layers)


class HRNetBackbone(nn.Module):
    """HRNet with three stages; `forward` maps [B, 3, H, W] to [B, C, H / 4, W / 4]."""

    def __init__(self, extra) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(64, 64, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = make_layer(Bottleneck, 64, 64, 4)

        stage2, stage3 = extra["STAGE2"], extra["STAGE3"]
        stage2_channels = self._widths(stage2)
        self.transition1 = _make_transition([64 * Bottleneck.expansion], stage2_channels)
        self.stage2 = self._make_stage(stage2, stage2_channels, multi_scale_output=True)
        stage3_channels = self._widths(stage3)
        self.transition2 = _make_transition(stage2_channels, stage3_channels)
        self.stage3 = self._make_stage(stage3, stage3_channels, multi_scale_output=False)
        self.out_channels = stage3_channels[0]

    @staticmethod
    def _widths(stage) -> List[int]:
        block = BLOCKS[stage["BLOCK"]]
        return [int(c) * block.expansion for c in stage["NUM_CHANNELS"][: stage["NUM_BRANCHES"]]]

    @staticmethod
    def _make_stage(stage, channels: List[int], multi_scale_output: bool) -> nn.Sequential:
        block = BLOCKS[stage["BLOCK"]]
        modules = []
        for index in range(stage["NUM_MODULES"]):
            last = index == stage["NUM_MODULES"] - 1
            modules.append(
                HighResolutionModule(
                    block, stage["NUM_BLOCKS"], channels, multi_scale_output or not last
                )
            )
        return nn.Sequential(*modules)

    @staticmethod
    def _transition(transition: nn.ModuleList, features: List[torch.Tensor]) -> List[torch.Tensor]:
        outputs = []
        for i, layer in enumerate(transition):
            if layer is None:
                outputs.append(features[i])
            else:
                outputs.append(layer(features[min(i, len(features) - 1)]))
        return outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.layer1(x)
        features = self.stage2(self._transition(self.transition1, [x]))
        features = self.stage3(self._transition(self.transition2, features))
        return features[0]


def fuse_conv_batchnorm(module: nn.Module) -> nn.Module:
    """Fold every eval-mode BatchNorm into the convolution before it, in place.

    Covers the `convN`/`bnN` attribute pairs of the blocks and stem, and (Conv2d, BatchNorm2d)
    neighbours in nn.Sequential containers. The folded model computes the same function to
    float rounding but has no BN entries in its state dict, so use it for inference only.
    """
    for child in module.children():
        if child is not None:
            fuse_conv_batchnorm(child)
    for index in (1, 2, 3):
        conv, norm = getattr(module, f"conv{index}", None), getattr(module, f"bn{index}", None)
        if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
            setattr(module, f"conv{index}", fuse_conv_bn_eval(conv, norm))
            setattr(module, f"bn{index}", nn.Identity())
    if isinstance(module, nn.Sequential):
        names = list(module._modules)
        for first, second in zip(names, names[1:]):
            conv, norm = module._modules[first], module._modules[second]
            if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                module._modules[first] = fuse_conv_bn_eval(conv, norm)
                module._modules[second] = nn.Identity()
    return module
