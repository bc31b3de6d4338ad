"""Recording of attention probabilities with forward hooks.

Usage:

    with AttentionRecorder(model, keypoint_rows_only=True) as recorder:
        heatmaps = model(batch)
    cross = recorder.stacked("cross")  # [layers, batch, heads, keypoints, patches]
"""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

from .transformer import AttentionProbe, CrossAttention, CrossAttentionStep, SelfAttention

KINDS = ("cross", "self")
_LAYER_INDEX = re.compile(r"cross_self_transformer_layers\.(\d+)\.")


class AttentionRecorder:
    """Capture attention probabilities [batch, heads, queries, keys] of every layer.

    - "cross": keypoint queries over patch keys, [B, heads, K, P].
    - "self": all tokens over all tokens, [B, heads, K + P, K + P], or only the keypoint
      query rows [B, heads, K, K + P] with `keypoint_rows_only=True`.

    Tensors are detached and moved to the CPU. Hooks are removed on exit, also after an
    exception. One recorder covers one forward pass; a forward pass that captured nothing
    raises RuntimeError on exit.
    """

    def __init__(
        self, model: nn.Module, keypoint_rows_only: bool = False, kinds: Sequence[str] = KINDS
    ) -> None:
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown attention kinds {sorted(unknown)}; choose from {KINDS}")
        self.model = model
        self.keypoint_rows_only = keypoint_rows_only
        self.kinds = tuple(kinds)
        self.records: Dict[str, Dict[int, torch.Tensor]] = {kind: {} for kind in self.kinds}
        self._handles: List[torch.utils.hooks.RemovableHandle] = []
        self._limited_probes: List[AttentionProbe] = []
        self._num_keypoints = self._find_num_keypoints(model)

    @staticmethod
    def _find_num_keypoints(model: nn.Module) -> int:
        for module in model.modules():
            if isinstance(module, CrossAttentionStep):
                return module.num_keypoints
        raise ValueError("the model has no LLRFormer cross-attention layers to record")

    def _attention_modules(self) -> List[tuple]:
        found = []
        for name, module in self.model.named_modules():
            kind = {CrossAttention: "cross", SelfAttention: "self"}.get(type(module))
            if kind in self.kinds:
                match = _LAYER_INDEX.search(name)
                layer = int(match.group(1)) if match else len(found)
                found.append((kind, layer, module))
        return found

    def _make_hook(self, kind: str, layer: int):
        def hook(_module: nn.Module, _inputs: tuple, weights: torch.Tensor) -> None:
            if layer in self.records[kind]:
                raise RuntimeError(
                    f"{kind}-attention of layer {layer} was already recorded; "
                    "use one AttentionRecorder per forward pass"
                )
            if kind == "self" and self.keypoint_rows_only:
                weights = weights[:, :, : self._num_keypoints]
            self.records[kind][layer] = weights.detach().to("cpu", copy=True)

        return hook

    def __enter__(self) -> AttentionRecorder:
        modules = self._attention_modules()
        if not modules:
            raise ValueError("found no attention modules to record in the model")
        for kind, layer, module in modules:
            self._handles.append(module.probe.register_forward_hook(self._make_hook(kind, layer)))
            if kind == "self" and self.keypoint_rows_only:
                # The patch rows of the self-attention are then not computed at all.
                module.probe.query_rows = self._num_keypoints
                self._limited_probes.append(module.probe)
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        self.remove()
        if exc_type is None and not any(self.records[kind] for kind in self.kinds):
            raise RuntimeError(
                "AttentionRecorder captured no attention: run a forward pass of "
                "the model inside the `with` block"
            )

    def remove(self) -> None:
        """Remove every hook this recorder registered."""
        while self._handles:
            self._handles.pop().remove()
        while self._limited_probes:
            self._limited_probes.pop().query_rows = None

    def layers(self, kind: str) -> List[torch.Tensor]:
        """Return the recorded tensors of one kind, in layer order."""
        records = self.records[kind]
        return [records[layer] for layer in sorted(records)]

    def stacked(self, kind: str, batch_index: Optional[int] = None) -> torch.Tensor:
        """Return one kind stacked over layers: [layers, batch, heads, queries, keys].

        With `batch_index`, that sample only: [layers, heads, queries, keys].
        """
        tensors = self.layers(kind)
        if not tensors:
            raise RuntimeError(f"no {kind}-attention was recorded")
        stacked = torch.stack(tensors)
        return stacked if batch_index is None else stacked[:, batch_index]
