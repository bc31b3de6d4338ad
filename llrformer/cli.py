"""Command-line options shared by the tools and visualization scripts.

Paths given on the command line are taken relative to the current folder; defaults are
taken relative to the repository root, so every command works from any folder. Only the
functions that need torch import it, so option checks finish before the slow torch import.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Tuple

from .checkpoint_files import resolve_config_and_checkpoint
from .config import ConfigNode
from .errors import UserError

if TYPE_CHECKING:
    import torch

    from .model import LLRFormer

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO_ROOT / "configs" / "llrformer.yaml"
CONFIG_DIR = REPO_ROOT / "configs"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help formatter that appends "(default: ...)" only where the help text does not state it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, False):
            return text
        return super()._get_help_string(action)


def add_model_arguments(parser: argparse.ArgumentParser, device_note: str = "") -> None:
    """Add --config, --checkpoint and --device, with `device_note` after the --device help."""
    parser.add_argument(
        "--config",
        "--cfg",
        dest="config",
        type=Path,
        default=None,
        help="model config YAML (default: the config.yaml saved beside the checkpoint, "
        f"else {DEFAULT_CONFIG.relative_to(REPO_ROOT)})",
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="checkpoint file (default: TEST.MODEL_FILE, then model_best.pth of the "
        "config's own run folder output/MyKeypointDataset/llrformer/<config stem>/, then the "
        "newest output/MyKeypointDataset/llrformer/*/model_best.pth, then "
        "output/MyKeypointDataset/llrformer/model_best.pth)",
    )
    parser.add_argument(
        "--device",
        default="auto",
        help="cpu, cuda, cuda:N or auto (CUDA when available; default: auto)" + device_note,
    )


def resolve_device(name: str) -> torch.device:
    """Turn a --device value into a torch.device, or raise UserError."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"invalid --device {name!r}; use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(
            f"--device {name} requested, but this PyTorch has no CUDA device; use --device cpu"
        )
    if (
        device.type == "cuda"
        and device.index is not None
        and device.index >= torch.cuda.device_count()
    ):
        raise UserError(f"--device {name}: only {torch.cuda.device_count()} CUDA devices exist")
    return device


def load_model_from_args(args: argparse.Namespace) -> Tuple[ConfigNode, Path, LLRFormer]:
    """Resolve config and checkpoint from parsed options and load the model in eval mode."""
    from .checkpoint import load_model

    cfg, checkpoint = resolve_config_and_checkpoint(
        args.config, args.checkpoint, REPO_ROOT, DEFAULT_CONFIG
    )
    device = resolve_device(args.device)
    model = load_model(cfg, checkpoint, device=device, config_dir=CONFIG_DIR, fuse_batchnorm=True)
    logger.info(
        "model: %d keypoints, %d layers, patch grid %d x %d, on %s",
        model.num_keypoints,
        len(model.transformer.cross_self_transformer_layers),
        model.grid.rows,
        model.grid.cols,
        device,
    )
    return cfg, checkpoint, model
