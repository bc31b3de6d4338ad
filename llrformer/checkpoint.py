"""Checkpoint reading with torch and strict loading into LLRFormer.

Three file forms are accepted: a bare state dict (`model_best.pth`, `final_state.pth`), a
training checkpoint dict with `state_dict` or `best_state_dict` (`checkpoint.pth`), and either
of them with every key prefixed `module.` (saved from DataParallel). Files are read with
`torch.load(weights_only=True)`, so a file whose unpickling would run code is rejected.
The search for a checkpoint and the torch-free reading live in `checkpoint_files`.
"""

from __future__ import annotations

import logging
import pickle
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from . import checkpoint_files
from .checkpoint_files import check_checkpoint_file
from .config import ConfigNode, load_config
from .errors import UserError
from .hrnet import fuse_conv_batchnorm
from .model import LLRFormer, build_model

logger = logging.getLogger(__name__)

PathLike = Union[str, Path]

# numpy scalars and dtypes (a saved `perf` value, for example) unpickle without running code.
# Files written under numpy 1 name the scalar constructor numpy.core, under numpy 2 numpy._core.
_NUMPY_SCALAR = np.float64(0.0).__reduce__()[0]
_SAFE_NUMPY_GLOBALS = [
    (_NUMPY_SCALAR, "numpy.core.multiarray.scalar"),
    (_NUMPY_SCALAR, "numpy._core.multiarray.scalar"),
    np.dtype,
] + [type(np.dtype(name)) for name in ("float64", "float32", "int64", "int32", "bool")]


def _torch_load(path: Path, mmap: bool) -> object:
    with torch.serialization.safe_globals(_SAFE_NUMPY_GLOBALS):
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)


def read_checkpoint(path: PathLike) -> object:
    """Read a checkpoint file with weights_only=True, memory-mapped when the format allows.

    Raises UserError for a missing, empty, truncated or non-checkpoint file, and for a file
    whose unpickling would run code.
    """
    path = check_checkpoint_file(path)
    with open(path, "rb") as handle:
        start = handle.read(2)
    # torch.save writes a zip file, or a pickle (protocol byte 0x80) in the legacy format.
    if not (start.startswith(b"PK") or start.startswith(b"\x80")):
        raise UserError(
            f"{path} is not a PyTorch checkpoint: it is neither a zip file nor a pickle; "
            "pass a file written by torch.save"
        )
    try:
        return _torch_load(path, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as error:
        first_line = str(error).strip().splitlines()[-1] if str(error).strip() else ""
        if "Weights only load failed" in str(error) or "Unsupported global" in str(error):
            raise UserError(
                f"rejected checkpoint {path}: unpickling it would run code or build objects "
                f"other than tensors ({first_line[:160]}); re-save it as a plain state dict "
                "with torch.save(model.state_dict(), ...) from code you trust"
            ) from None
        raise UserError(f"{path} is not a valid PyTorch checkpoint: {first_line[:160]}") from None
    # Unpickling arbitrary bytes can fail with almost any exception type.
    except Exception as error:  # noqa: BLE001
        detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
        detail = detail.split(". ")[0][:120] if len(detail) > 20 else type(error).__name__
        raise UserError(
            f"{path} is not a readable PyTorch checkpoint: it is truncated or in another "
            f"format ({detail}); pass a file written by torch.save"
        ) from None


def extract_state_dict(
    checkpoint: object, path: PathLike = "checkpoint"
) -> Dict[str, torch.Tensor]:
    """Return the model state dict of any accepted checkpoint form, without `module.` prefixes."""
    return checkpoint_files.extract_state_dict(
        checkpoint, path, lambda value: isinstance(value, torch.Tensor)
    )


def infer_geometry(state: Dict[str, torch.Tensor]) -> Dict[str, object]:
    """Read NUM_JOINTS, DIM, layer count, patch count and heatmap pixels from tensor shapes."""
    facts: Dict[str, object] = {}
    if "transformer.kp_init" in state:
        _, keypoints, dim = state["transformer.kp_init"].shape
        facts.update(NUM_JOINTS=int(keypoints), DIM=int(dim))
    if "transformer.vis_pos" in state:
        facts["patches"] = int(state["transformer.vis_pos"].shape[1])
    layers = {
        key.split(".")[2]
        for key in state
        if key.startswith("transformer.cross_self_transformer_layers.")
    }
    if layers:
        facts["CROSS_SELF_ATTENTION_LAYERS"] = len(layers)
    head = sorted(
        key for key in state if key.startswith("transformer.mlp_head.") and key.endswith(".bias")
    )
    if head:
        # The head runs on each keypoint token, so its last layer has one output per pixel.
        facts["heatmap_pixels"] = int(state[head[-1]].shape[0])
    return facts


def _expected_shapes(cfg: ConfigNode) -> Dict[str, Tuple[int, ...]]:
    return {
        key: tuple(value.shape)
        for key, value in build_model(cfg, initialize=False).state_dict().items()
    }


def _describe_mismatch(
    state: Dict[str, torch.Tensor],
    expected: Dict[str, Tuple[int, ...]],
    cfg: ConfigNode,
    path: PathLike,
    config_dir: Optional[Path],
) -> str:
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [
        f"{key} {tuple(state[key].shape)} vs {expected[key]}"
        for key in sorted(expected)
        if key in state and tuple(state[key].shape) != expected[key]
    ]

    def listing(label: str, items: List[str]) -> str:
        shown = "; ".join(items[:3]) + (f"; ... ({len(items)} in all)" if len(items) > 3 else "")
        return f"\n  {label}: {shown}"

    lines = [f"checkpoint {path} does not fit config {cfg.get('path') or 'defaults'}"]
    if missing:
        lines.append(listing("missing keys", missing))
    if unexpected:
        lines.append(listing("unexpected keys", unexpected))
    if wrong:
        lines.append(listing("wrong shapes (checkpoint vs model)", wrong))
    facts = infer_geometry(state)
    if facts:
        lines.append(
            "\n  the checkpoint's shapes say: "
            + ", ".join(f"{key}={value}" for key, value in facts.items())
        )
    fitting = find_fitting_configs(state, config_dir) if config_dir else []
    if fitting:
        lines.append(f"\n  configs that fit: {', '.join(str(p) for p in fitting)}")
    return "".join(lines)


def find_fitting_configs(state: Dict[str, torch.Tensor], config_dir: Path) -> List[Path]:
    """Return the YAML files in `config_dir` whose model has exactly the checkpoint's shapes."""
    shapes = {key: tuple(value.shape) for key, value in state.items()}
    fitting = []
    for candidate in sorted(Path(config_dir).glob("*.yaml")):
        try:
            if _expected_shapes(load_config(candidate)) == shapes:
                fitting.append(candidate)
        except UserError:
            continue
    return fitting


def load_model(
    cfg: ConfigNode,
    checkpoint_path: PathLike,
    device: Union[str, torch.device] = "cpu",
    config_dir: Optional[Path] = None,
    fuse_batchnorm: bool = False,
) -> LLRFormer:
    """Build LLRFormer without random initialisation and load a checkpoint strictly.

    The model is returned in eval mode on `device`. With `fuse_batchnorm`, BN layers are
    folded into the convolutions (a faster backbone, same outputs to float rounding, for
    inference only). Raises UserError listing missing, unexpected and mis-shaped keys, and
    the configs in `config_dir` that would fit.
    """
    state = extract_state_dict(read_checkpoint(checkpoint_path), checkpoint_path)
    model = build_model(cfg, initialize=False)
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    shapes = {key: tuple(value.shape) for key, value in state.items()}
    if shapes != expected:
        raise UserError(_describe_mismatch(state, expected, cfg, checkpoint_path, config_dir))
    model.load_state_dict(state, strict=True, assign=True)
    model.eval()
    if fuse_batchnorm:
        fuse_conv_batchnorm(model.pre_feature)
    return model.to(device)


def read_tensors(path: PathLike, keys: Sequence[str]) -> Dict[str, torch.Tensor]:
    """Read only the named tensors of a checkpoint (memory-mapped, `module.` prefix allowed)."""
    state = extract_state_dict(read_checkpoint(path), path)
    missing = [key for key in keys if key not in state]
    if missing:
        raise UserError(
            f"checkpoint {path} has no tensor {missing[0]}; is it an LLRFormer checkpoint?"
        )
    return {key: state[key].clone() for key in keys}
