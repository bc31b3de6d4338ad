"""Training LLRFormer: loss, optimizer, schedulers, backbone pretraining, checkpoints, loop.

A run writes into `run_directory(cfg)` = OUTPUT_DIR/DATASET.DATASET/MODEL.NAME/<config stem>/:
`model_best.pth` and `final_state.pth` (bare state dicts, loadable by the published code),
`checkpoint.pth` (weights, optimizer and scheduler state for --resume), `config.yaml`,
`train.log` and `metrics.json`. Every file is replaced atomically.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from .checkpoint import extract_state_dict, read_checkpoint
from .config import ConfigNode, resolve_repo_path, run_directory, save_config
from .data import LandmarkDataset, LandmarkSample, load_split, uses_subpixel_targets
from .decode import decode_heatmaps
from .errors import UserError
from .fileio import atomic_path, write_text_atomic
from .keypoints import LOSS_GROUPS
from .metrics import compute_errors, pck
from .model import LLRFormer, build_model
from .preprocess import normalize_image

logger = logging.getLogger(__name__)

PathLike = Union[str, Path]
# The weights a run leaves. A folder with none of them (a run stopped during its first epoch)
# may take a fresh run, which keeps the old train.log lines above its own.
WEIGHT_FILES = ("model_best.pth", "final_state.pth", "checkpoint.pth")


# ---------------------------------------------------------------------------------------------
# Loss


def joint_weights(cfg: ConfigNode) -> Optional[torch.Tensor]:
    """Return per-keypoint loss weights [K], or None for equal weights.

    TRAIN.KEYPOINT_WEIGHTS, when non-empty, gives one weight per keypoint. Otherwise, with
    TRAIN.JOINT_WEIGHTS true, the published region weights apply: HIP_WEIGHT to indices 0-9,
    FEMUR_WEIGHT to 10-17, KNEE_WEIGHT to 18-25, TIBIA_WEIGHT to 26-33 and ANKLE_WEIGHT to
    34-35, with FEMUR_TIBIA_WEIGHT replacing both the femur and the tibia weight.
    """
    train = cfg.TRAIN
    num_keypoints = int(cfg.MODEL.NUM_JOINTS)
    if train.KEYPOINT_WEIGHTS:
        if len(train.KEYPOINT_WEIGHTS) != num_keypoints:
            raise UserError(
                f"{cfg.get('path') or 'config'}: TRAIN.KEYPOINT_WEIGHTS has "
                f"{len(train.KEYPOINT_WEIGHTS)} values, but MODEL.NUM_JOINTS is {num_keypoints}"
            )
        return torch.tensor([float(w) for w in train.KEYPOINT_WEIGHTS])
    if not train.JOINT_WEIGHTS:
        return None
    # NOTE: these index ranges are the published loss groups (LOSS_GROUPS), which differ from
    # the anatomical regions of the reports; they are kept for compatible training.
    weights = torch.ones(num_keypoints)
    groups = []
    for key, first, last in LOSS_GROUPS:
        value = float(train[key])
        if key in ("FEMUR_WEIGHT", "TIBIA_WEIGHT"):
            value = float(train.FEMUR_TIBIA_WEIGHT)
        weights[first : min(last + 1, num_keypoints)] = value
        groups.append(f"{first}-{last} x {value:g}")
    logger.info(
        "TRAIN.JOINT_WEIGHTS: loss weights by the published keypoint groups (%s); these groups "
        "differ from the anatomical regions of the evaluation tables",
        ", ".join(groups),
    )
    return weights


class WeightedHeatmapLoss(nn.Module):
    """Mean squared heatmap error, weighted per keypoint and per sample.

    loss = 0.5 * mean over batch, keypoints and heatmap pixels of
    joint_weight[k] * target_weight[b, k] * (predicted - target)^2.
    """

    def __init__(self, joint_weights: Optional[torch.Tensor] = None) -> None:
        super().__init__()
        self.register_buffer("joint_weights", joint_weights, persistent=False)

    def forward(
        self, predicted: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor
    ) -> torch.Tensor:
        """`predicted` and `target` are [B, K, Hh, Wh], `target_weight` [B, K]."""
        weight = target_weight
        if self.joint_weights is not None:
            weight = weight * self.joint_weights
        squared = (predicted - target).pow(2).mean(dim=(2, 3))
        return 0.5 * (squared * weight).mean()


def check_loss_settings(cfg: ConfigNode) -> None:
    """Raise UserError for an unsupported loss type; warn about options that are ignored."""
    if str(cfg.LOSS.TYPE).lower() != "mse":
        raise UserError(
            f"{cfg.get('path') or 'config'}: LOSS.TYPE {cfg.LOSS.TYPE!r} is not supported; "
            "use mse (the heatmap mean squared error)"
        )
    ignored = [
        key
        for key, value in (
            ("LOSS.USE_OHKM", cfg.LOSS.USE_OHKM),
            ("LOSS.FOCAL_LOSS", cfg.LOSS.FOCAL_LOSS),
            ("LOSS.LABEL_SMOOTHING", cfg.LOSS.LABEL_SMOOTHING),
            ("DATASET.MIXUP_CUTMIX", cfg.DATASET.MIXUP_CUTMIX),
            ("TRAIN.LAYERED_TRAINING", cfg.TRAIN.LAYERED_TRAINING),
            ("TRAIN.ATTENTION_REGULARIZATION", cfg.TRAIN.ATTENTION_REGULARIZATION),
            ("TRAIN.FREEZE_LAYERS", bool(cfg.TRAIN.FREEZE_LAYERS)),
            ("TRAIN.WARMUP_EPOCHS", cfg.TRAIN.WARMUP_EPOCHS > 0),
            ("TRAIN.GRADIENT_CLIP", cfg.TRAIN.GRADIENT_CLIP > 0),
            ("MODEL.USE_MIXED_PRECISION", cfg.MODEL.USE_MIXED_PRECISION),
            ("MODEL.USE_GRADIENT_CHECKPOINTING", cfg.MODEL.USE_GRADIENT_CHECKPOINTING),
        )
        if value
    ]
    if ignored:
        logger.warning("not implemented here, so ignored: %s", ", ".join(ignored))


# ---------------------------------------------------------------------------------------------
# Optimizer, scheduler and pretrained backbone


def build_optimizer(cfg: ConfigNode, model: nn.Module) -> torch.optim.Optimizer:
    """Build TRAIN.OPTIMIZER (adam, adamw or sgd) with TRAIN.LR and TRAIN.WD as weight decay."""
    train = cfg.TRAIN
    parameters = [p for p in model.parameters() if p.requires_grad]
    name = str(train.OPTIMIZER).lower()
    if name == "adam":
        return torch.optim.Adam(parameters, lr=train.LR, weight_decay=train.WD)
    if name == "adamw":
        return torch.optim.AdamW(parameters, lr=train.LR, weight_decay=train.WD)
    if name == "sgd":
        return torch.optim.SGD(
            parameters,
            lr=train.LR,
            momentum=train.MOMENTUM,
            weight_decay=train.WD,
            nesterov=bool(train.NESTEROV),
        )
    raise UserError(
        f"{cfg.get('path') or 'config'}: TRAIN.OPTIMIZER {train.OPTIMIZER!r} is not supported; "
        "use adam, adamw or sgd"
    )


def build_scheduler(cfg: ConfigNode, optimizer: torch.optim.Optimizer):
    """Build TRAIN.LR_SCHEDULER, stepped once per epoch.

    MultiStepLR multiplies the learning rate by TRAIN.LR_FACTOR at the epochs TRAIN.LR_STEP.
    ReduceLROnPlateau multiplies it by LR_FACTOR after TRAIN.PATIENCE epochs without a lower
    validation mean radial error, down to TRAIN.MIN_LR. CosineAnnealingLR decays it to
    TRAIN.LR_END over TRAIN.END_EPOCH epochs.
    """
    train = cfg.TRAIN
    name = str(train.LR_SCHEDULER)
    if name.lower() == "multisteplr":
        return torch.optim.lr_scheduler.MultiStepLR(
            optimizer, milestones=list(train.LR_STEP), gamma=train.LR_FACTOR
        )
    if name.lower() == "reducelronplateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer,
            mode="min",
            factor=train.LR_FACTOR,
            patience=int(train.PATIENCE),
            min_lr=train.MIN_LR,
        )
    if name.lower() == "cosineannealinglr":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(1, int(train.END_EPOCH)), eta_min=train.LR_END
        )
    raise UserError(
        f"{cfg.get('path') or 'config'}: TRAIN.LR_SCHEDULER {name!r} is not supported; use "
        "MultiStepLR, ReduceLROnPlateau or CosineAnnealingLR"
    )


def scheduler_state(scheduler) -> Dict[str, object]:
    """Return the scheduler state with plain types, so that weights_only loading accepts it.

    MultiStepLR keeps its milestones in a collections.Counter, which is stored as a dict.
    """
    state = dict(scheduler.state_dict())
    for key, value in state.items():
        if isinstance(value, collections.Counter):
            state[key] = dict(value)
    return state


def load_scheduler_state(scheduler, state: Dict[str, object]) -> None:
    """Restore a state written by `scheduler_state`."""
    state = dict(state)
    if isinstance(scheduler, torch.optim.lr_scheduler.MultiStepLR) and "milestones" in state:
        state["milestones"] = collections.Counter(state["milestones"])
    scheduler.load_state_dict(state)


def load_pretrained_backbone(model: LLRFormer, path: Path, layers: Sequence[str]) -> Dict[str, int]:
    """Copy ImageNet HRNet weights into the backbone (`model.pre_feature`).

    The file uses the public HRNet key names (conv1.weight, layer1.0.conv1.weight, ...).
    A tensor is copied when the first part of its name is in `layers` (or `layers` is
    ["*"]) and the backbone has a tensor of that name and shape; the classification head
    and the stages that LLRFormer lacks are skipped. Returns the counts per outcome.
    Raises UserError for a missing or unreadable file, or one with no usable tensor.
    """
    if not path.is_file():
        raise UserError(
            f"MODEL.PRETRAINED file {path} not found; download the ImageNet HRNet-W32 "
            "weights to that path, or set MODEL.PRETRAINED to '' to start from random weights"
        )
    source = extract_state_dict(read_checkpoint(path), path)
    target = model.pre_feature.state_dict()
    take_all = list(layers) == ["*"]
    counts = {"loaded": 0, "not_in_layers": 0, "not_in_model": 0, "wrong_shape": 0}
    update = {}
    for key, tensor in source.items():
        if not take_all and key.split(".")[0] not in layers:
            counts["not_in_layers"] += 1
        elif key not in target:
            counts["not_in_model"] += 1
        elif tuple(target[key].shape) != tuple(tensor.shape):
            counts["wrong_shape"] += 1
            logger.debug(
                "pretrained %s: shape %s, backbone %s",
                key,
                tuple(tensor.shape),
                tuple(target[key].shape),
            )
        else:
            update[key] = tensor
            counts["loaded"] += 1
    if not update:
        raise UserError(
            f"MODEL.PRETRAINED file {path} has no tensor that fits the backbone "
            f"({len(source)} tensors; {counts}); expected ImageNet HRNet weights with keys "
            "such as conv1.weight and layer1.0.conv1.weight"
        )
    model.pre_feature.load_state_dict(update, strict=False)
    logger.info(
        "pretrained backbone %s: %d tensors loaded, %d outside MODEL.EXTRA.PRETRAINED_LAYERS, "
        "%d not in this backbone, %d of another shape; %d backbone tensors kept random",
        path,
        counts["loaded"],
        counts["not_in_layers"],
        counts["not_in_model"],
        counts["wrong_shape"],
        len(target) - counts["loaded"],
    )
    return counts


# ---------------------------------------------------------------------------------------------
# Checkpoints


def save_state_dict(state: Dict[str, torch.Tensor], path: Path) -> None:
    """Write a bare state dict (CPU tensors) atomically."""
    with atomic_path(path) as temporary:
        torch.save({key: value.detach().cpu() for key, value in state.items()}, temporary)


def save_training_checkpoint(path: Path, payload: Dict[str, object]) -> None:
    """Write the resumable training state atomically."""
    with atomic_path(path) as temporary:
        torch.save(payload, temporary)


def read_training_checkpoint(path: Path) -> Dict[str, object]:
    """Read `checkpoint.pth` (weights_only) and check that it contains a resumable state."""
    checkpoint = read_checkpoint(path)
    required = ("epoch", "state_dict", "optimizer")
    if not isinstance(checkpoint, dict) or any(key not in checkpoint for key in required):
        raise UserError(
            f"{path} is not a training checkpoint with {', '.join(required)}; resume needs the "
            "checkpoint.pth written by tools/train.py"
        )
    checkpoint["state_dict"] = extract_state_dict(checkpoint["state_dict"], path)
    if isinstance(checkpoint.get("best_state_dict"), dict):
        checkpoint["best_state_dict"] = extract_state_dict(checkpoint["best_state_dict"], path)
    return checkpoint


# ---------------------------------------------------------------------------------------------
# Prediction and validation


@torch.inference_mode()
def predict_samples(
    model: LLRFormer,
    samples: Sequence[LandmarkSample],
    batch_size: int,
    device: torch.device,
    progress: bool = False,
) -> np.ndarray:
    """Run the model on cached samples and decode keypoints [N, K, 2] in input pixels."""
    from tqdm import tqdm

    model.eval()
    outputs = []
    starts = range(0, len(samples), batch_size)
    for start in tqdm(
        starts, desc="predicting", unit="batch", leave=False, disable=None if progress else True
    ):
        batch = torch.stack([normalize_image(s.image) for s in samples[start : start + batch_size]])
        heatmaps = model(batch.to(device)).float().cpu().numpy()
        outputs.append(decode_heatmaps(heatmaps, model.image_size)[0])
    return np.concatenate(outputs) if outputs else np.zeros((0, model.num_keypoints, 2))


def validation_metrics(
    predicted: np.ndarray, samples: Sequence[LandmarkSample], input_height: int
) -> Dict[str, float]:
    """Return mean radial error (input pixels and % of input height) and PCK@2% of height."""
    errors = compute_errors(
        predicted,
        np.stack([s.keypoints for s in samples]),
        np.stack([s.keypoints_original for s in samples]),
        [s.letterbox for s in samples],
        [s.reduction for s in samples],
        [s.pixel_spacing_mm for s in samples],
        input_height,
    )
    finite = errors.input_px[np.isfinite(errors.input_px)]
    mre = float(finite.mean()) if finite.size else float("nan")
    return {
        "val_mre_px": mre,
        "val_mre_percent_height": 100.0 * mre / input_height,
        "val_pck_2pct": pck(errors.input_px, 0.02 * input_height),
    }


@dataclass
class EpochResult:
    """Mean training loss and the number of optimisation steps of one epoch."""

    loss: float
    steps: int


def train_one_epoch(
    model: nn.Module,
    loader: torch.utils.data.DataLoader,
    loss_function: nn.Module,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    clip_norm: float,
    max_steps: Optional[int],
    description: str,
) -> EpochResult:
    """Train for one pass over `loader`, or until `max_steps` steps; shows a progress bar."""
    from tqdm import tqdm

    model.train()
    losses: List[float] = []
    # disable=None hides the bar when stderr is not a terminal.
    progress = tqdm(loader, desc=description, unit="batch", leave=False, disable=None)
    for batch in progress:
        if max_steps is not None and len(losses) >= max_steps:
            break
        images = batch["image"].to(device, non_blocking=True)
        target = batch["target"].to(device, non_blocking=True)
        weight = batch["target_weight"].to(device, non_blocking=True)
        loss = loss_function(model(images), target, weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip_norm > 0:
            nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        optimizer.step()
        losses.append(float(loss.detach()))
        progress.set_postfix(loss=f"{np.mean(losses[-20:]):.3g}")
    progress.close()
    return EpochResult(loss=float(np.mean(losses)) if losses else float("nan"), steps=len(losses))


# ---------------------------------------------------------------------------------------------
# The training run


@dataclass
class TrainOptions:
    """Command-line choices of a training run.

    `root` is the folder that relative DATASET.ROOT and OUTPUT_DIR are taken from. `resume`
    is a checkpoint.pth to continue from; `epochs` replaces TRAIN.END_EPOCH; `max_steps`
    stops the run after that many optimisation steps.
    """

    root: Path
    device: torch.device
    seed: int = 0
    epochs: Optional[int] = None
    max_steps: Optional[int] = None
    resume: Optional[Path] = None
    overwrite: bool = False


class RunLog(logging.Handler):
    """Collects log lines of a run and rewrites `train.log` atomically on `save`.

    `started` turns True once the run folder is set up; a run that fails its checks before
    that leaves an earlier run's log untouched.
    """

    def __init__(self, path: Path, keep_existing: bool) -> None:
        super().__init__(logging.INFO)
        self.path = path
        self.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
        existing = path.read_text(encoding="utf-8") if keep_existing and path.is_file() else ""
        self.lines = existing.splitlines()
        self.started = False

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def save(self) -> None:
        write_text_atomic(self.path, "\n".join(self.lines) + "\n")


def saved_weights(run_dir: Path) -> List[str]:
    """Return the names of the WEIGHT_FILES that exist in `run_dir`."""
    return [name for name in WEIGHT_FILES if (run_dir / name).exists()]


def check_run_directory(run_dir: Path, resuming: bool, overwrite: bool) -> None:
    """Raise UserError when a fresh run would replace the weights of an earlier run."""
    existing = saved_weights(run_dir)
    if existing and not resuming and not overwrite:
        raise UserError(
            f"{run_dir} already contains a training run ({', '.join(existing)}); pass --resume to "
            "continue it, --overwrite to replace it, or set OUTPUT_DIR to another folder"
        )


def _load_resume_state(model: LLRFormer, path: Path) -> Dict[str, object]:
    checkpoint = read_training_checkpoint(path)
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    found = {key: tuple(value.shape) for key, value in checkpoint["state_dict"].items()}
    if expected != found:
        differing = sorted(set(expected) ^ set(found)) or [
            key for key in expected if expected[key] != found[key]
        ]
        raise UserError(
            f"checkpoint {path} does not fit this config: {len(differing)} keys differ "
            f"(first: {differing[0]}); resume with the config that wrote it, or start a new run"
        )
    model.load_state_dict(checkpoint["state_dict"], strict=True)
    return checkpoint


def _history(run_dir: Path, resuming: bool) -> List[Dict[str, object]]:
    path = run_dir / "metrics.json"
    if not resuming or not path.is_file():
        return []
    try:
        return list(json.loads(path.read_text(encoding="utf-8")).get("history", []))
    except (OSError, ValueError, AttributeError):
        logger.warning("%s is unreadable; the epoch history starts again", path)
        return []


def _make_loader(
    dataset: LandmarkDataset, cfg: ConfigNode, seed: int, epoch: int, device: torch.device
) -> torch.utils.data.DataLoader:
    dataset.set_epoch(epoch)
    generator = torch.Generator()
    generator.manual_seed(seed * 1_000_003 + epoch)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=int(cfg.TRAIN.BATCH_SIZE_PER_GPU),
        shuffle=bool(cfg.TRAIN.SHUFFLE),
        num_workers=int(cfg.WORKERS),
        pin_memory=bool(cfg.PIN_MEMORY) and device.type == "cuda",
        drop_last=len(dataset) > int(cfg.TRAIN.BATCH_SIZE_PER_GPU),
        generator=generator,
    )


def train(cfg: ConfigNode, options: TrainOptions) -> Dict[str, object]:
    """Train a model for `cfg` and write the run directory; return the run summary.

    The best model is the one with the lowest mean radial error on DATASET.TEST_SET,
    checked after every epoch.
    """
    if options.epochs is not None:
        cfg.TRAIN.END_EPOCH = int(options.epochs)
    run_dir = run_directory(cfg, options.root)
    resuming = options.resume is not None
    # Log lines are collected from the start and written once the run folder exists.
    keep_log = resuming or not saved_weights(run_dir)
    run_log = RunLog(run_dir / "train.log", keep_existing=keep_log)
    package_logger = logging.getLogger("llrformer")
    package_logger.addHandler(run_log)
    try:
        return _prepare_and_run(cfg, options, run_dir, run_log)
    except KeyboardInterrupt:
        # Without this line, the log of a stopped run reads like that of a finished one.
        if (run_dir / "checkpoint.pth").is_file():
            logger.info("interrupted; train.py --resume continues from the last saved epoch")
        else:
            logger.info("interrupted before the first epoch was saved; train again to restart")
        raise
    finally:
        package_logger.removeHandler(run_log)
        if run_log.started:
            run_log.save()


def _prepare_and_run(
    cfg: ConfigNode, options: TrainOptions, run_dir: Path, run_log: RunLog
) -> Dict[str, object]:
    resuming = options.resume is not None
    check_loss_settings(cfg)
    uses_subpixel_targets(cfg)  # rejects an unsupported MODEL.TARGET_TYPE before loading data
    check_run_directory(run_dir, resuming, options.overwrite)
    pretrained = None
    if cfg.MODEL.PRETRAINED and not resuming:
        pretrained = resolve_repo_path(cfg.MODEL.PRETRAINED, options.root)
        if not pretrained.is_file():
            raise UserError(
                f"MODEL.PRETRAINED file {pretrained} not found; download the ImageNet HRNet-W32 "
                "weights to that path, or set MODEL.PRETRAINED to '' to start from random weights"
            )
    data_root = resolve_repo_path(cfg.DATASET.ROOT or "data", options.root)
    train_samples = load_split(cfg, data_root, cfg.DATASET.TRAIN_SET)
    val_samples = load_split(cfg, data_root, cfg.DATASET.TEST_SET)

    torch.manual_seed(options.seed)
    model = build_model(cfg, initialize=True)
    checkpoint: Dict[str, object] = {}
    if resuming:
        checkpoint = _load_resume_state(model, options.resume)
    elif pretrained is not None:
        layers = list(cfg.MODEL.EXTRA.get("PRETRAINED_LAYERS", ["*"]))
        load_pretrained_backbone(model, pretrained, layers)
    model.to(options.device)
    optimizer = build_optimizer(cfg, model)
    scheduler = build_scheduler(cfg, optimizer)
    if resuming:
        optimizer.load_state_dict(checkpoint["optimizer"])
        saved_name = checkpoint.get("scheduler_name")
        if checkpoint.get("scheduler") and saved_name == type(scheduler).__name__:
            load_scheduler_state(scheduler, checkpoint["scheduler"])
        elif checkpoint.get("scheduler"):
            logger.warning(
                "%s contains the state of a %s, but TRAIN.LR_SCHEDULER is %s; the learning-rate "
                "schedule starts again",
                options.resume,
                saved_name or "scheduler of unknown type",
                cfg.TRAIN.LR_SCHEDULER,
            )

    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    run_log.started = True
    return _run_epochs(
        cfg, options, model, optimizer, scheduler, checkpoint, run_dir, run_log,
        train_samples, val_samples,
    )  # fmt: skip


def _run_epochs(
    cfg: ConfigNode,
    options: TrainOptions,
    model: LLRFormer,
    optimizer: torch.optim.Optimizer,
    scheduler,
    checkpoint: Dict[str, object],
    run_dir: Path,
    run_log: RunLog,
    train_samples: Sequence[LandmarkSample],
    val_samples: Sequence[LandmarkSample],
) -> Dict[str, object]:
    device = options.device
    begin_epoch = int(checkpoint.get("epoch", cfg.TRAIN.BEGIN_EPOCH))
    end_epoch = int(cfg.TRAIN.END_EPOCH)
    best_perf = float(checkpoint.get("perf", math.inf))
    best_epoch = int(checkpoint.get("best_epoch", begin_epoch))
    best_state = checkpoint.get("best_state_dict")
    global_step = int(checkpoint.get("step", 0))
    history = _history(run_dir, bool(checkpoint))
    input_height = int(cfg.MODEL.IMAGE_SIZE[1])
    loss_function = WeightedHeatmapLoss(joint_weights(cfg)).to(device)
    dataset = LandmarkDataset(train_samples, cfg, train=True, seed=options.seed)
    steps_left = options.max_steps
    patience = int(cfg.CHECKPOINT.PATIENCE)
    save_every = max(1, int(cfg.CHECKPOINT.SAVE_FREQ))
    # NOTE: only the CPU path is tested; CUDA uses the same code with tensors moved to it.
    logger.info(
        "training %s on %s: %d training and %d validation images, epochs %d to %d, into %s",
        cfg.get("path") or "the default config",
        device,
        len(train_samples),
        len(val_samples),
        begin_epoch + 1,
        end_epoch,
        run_dir,
    )
    if begin_epoch >= end_epoch:
        logger.info("already trained for %d epochs; pass --epochs N to train longer", begin_epoch)

    started = time.perf_counter()
    epoch = begin_epoch
    for epoch in range(begin_epoch, end_epoch):
        epoch_start = time.perf_counter()
        loader = _make_loader(dataset, cfg, options.seed, epoch, device)
        result = train_one_epoch(
            model,
            loader,
            loss_function,
            optimizer,
            device,
            float(cfg.TRAIN.GRADIENT_CLIP_NORM),
            steps_left,
            f"epoch {epoch + 1}/{end_epoch}",
        )
        global_step += result.steps
        if steps_left is not None:
            steps_left -= result.steps

        predicted = predict_samples(model, val_samples, int(cfg.TEST.BATCH_SIZE_PER_GPU), device)
        metrics = validation_metrics(predicted, val_samples, input_height)
        learning_rate = optimizer.param_groups[0]["lr"]
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(metrics["val_mre_px"])
        else:
            scheduler.step()

        improved = best_state is None or metrics["val_mre_px"] < best_perf
        if improved:
            best_perf, best_epoch = metrics["val_mre_px"], epoch + 1
            best_state = {key: value.detach().cpu().clone() for key, value in
                          model.state_dict().items()}  # fmt: skip
            save_state_dict(best_state, run_dir / "model_best.pth")
        record = {
            "epoch": epoch + 1,
            "step": global_step,
            "lr": learning_rate,
            "train_loss": result.loss,
            **metrics,
            "seconds": time.perf_counter() - epoch_start,
        }
        history.append(record)
        logger.info(
            "epoch %d/%d: loss %.4g, validation MRE %.2f px (%.2f%% of height), "
            "PCK@2%% of height %.1f%%, lr %.3g, %.1f s%s",
            epoch + 1,
            end_epoch,
            result.loss,
            metrics["val_mre_px"],
            metrics["val_mre_percent_height"],
            100 * metrics["val_pck_2pct"],
            learning_rate,
            record["seconds"],
            " (best)" if improved else "",
        )

        stop = ""
        if steps_left is not None and steps_left <= 0:
            stop = f"stopped after {options.max_steps} steps (--max-steps)"
        elif patience > 0 and epoch + 1 - best_epoch >= patience:
            stop = f"stopped early: no better validation MRE for {patience} epochs"
        if stop or (epoch + 1) % save_every == 0 or epoch + 1 == end_epoch:
            payload = {
                "epoch": epoch + 1,
                "step": global_step,
                "model": cfg.MODEL.NAME,
                "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "best_state_dict": best_state,
                "perf": float(best_perf),
                "perf_name": "validation mean radial error, letterboxed input pixels",
                "best_epoch": best_epoch,
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler_state(scheduler),
                "scheduler_name": type(scheduler).__name__,
            }
            save_training_checkpoint(run_dir / "checkpoint.pth", payload)
        summary = {
            "run_directory": str(run_dir),
            "epochs_trained": epoch + 1,
            "steps": global_step,
            "best_epoch": best_epoch,
            "best_val_mre_px": best_perf,
            "best_val_mre_percent_height": 100.0 * best_perf / input_height,
            "seconds_this_run": time.perf_counter() - started,
        }
        write_text_atomic(
            run_dir / "metrics.json", json.dumps({**summary, "history": history}, indent=1)
        )
        run_log.save()
        if stop:
            logger.info("%s", stop)
            break

    save_state_dict(model.state_dict(), run_dir / "final_state.pth")
    if best_state is None:
        save_state_dict(model.state_dict(), run_dir / "model_best.pth")
    seconds = time.perf_counter() - started
    logger.info(
        "done in %.1f s: best validation MRE %.2f px at epoch %d; model in %s",
        seconds,
        best_perf,
        best_epoch,
        run_dir / "model_best.pth",
    )
    return {
        "run_directory": str(run_dir),
        "epochs_trained": max(epoch + 1, begin_epoch) if end_epoch > begin_epoch else begin_epoch,
        "steps": global_step,
        "best_epoch": best_epoch,
        "best_val_mre_px": best_perf,
        "best_val_mre_percent_height": 100.0 * best_perf / input_height,
        "seconds": seconds,
    }
