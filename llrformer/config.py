"""Experiment configuration: the published LLRFormer keys, their defaults and YAML loading.

A config is a tree of `ConfigNode` dicts with attribute access (`cfg.MODEL.IMAGE_SIZE`). Only
the keys of the published default configuration are accepted, plus anything under the
free-form sections `MODEL.EXTRA` and `EVALUATION.REGIONS`. A misspelt key is an error that
names it and suggests the nearest valid key.
"""

from __future__ import annotations

import copy
import difflib
import json
from pathlib import Path
from typing import Any, Dict, Iterable, Optional, Union

import yaml

from .errors import UserError
from .fileio import write_text_atomic

FREE_FORM_SECTIONS = ("MODEL.EXTRA", "EVALUATION.REGIONS")
_DEFAULTS_FILE = Path(__file__).with_name("config_defaults.json")


class ConfigNode(dict):
    """A nested dict whose keys are also attributes; `path` is the YAML file it came from."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def to_dict(self) -> Dict[str, Any]:
        """Return a plain nested dict, for YAML output."""
        return {
            key: value.to_dict() if isinstance(value, ConfigNode) else copy.deepcopy(value)
            for key, value in self.items()
        }


def _load_flat_defaults() -> Dict[str, Any]:
    with open(_DEFAULTS_FILE, encoding="utf-8") as handle:
        return json.load(handle)


def _nest(flat: Dict[str, Any]) -> ConfigNode:
    root = ConfigNode()
    for dotted, value in flat.items():
        node = root
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, ConfigNode())
        node[leaf] = copy.deepcopy(value)
    return root


def _to_node(value: Any) -> Any:
    if isinstance(value, dict):
        return ConfigNode({key: _to_node(item) for key, item in value.items()})
    return value


def default_config() -> ConfigNode:
    """Return the published default configuration, with empty free-form sections."""
    cfg = _nest(_load_flat_defaults())
    cfg.MODEL.EXTRA = ConfigNode()
    cfg.EVALUATION.REGIONS = ConfigNode()
    return cfg


def _suggest(dotted: str, valid: Iterable[str]) -> str:
    matches = difflib.get_close_matches(dotted, list(valid), n=1, cutoff=0.6)
    return f"; did you mean {matches[0]}?" if matches else ""


def _check_type(dotted: str, value: Any, default: Any, source: str) -> Any:
    """Return `value` if it fits the default's type (ints are accepted for floats)."""
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        valid = isinstance(value, bool)
    elif isinstance(default, (int, float)):
        valid = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif isinstance(default, (list, tuple)):
        valid = isinstance(value, (list, tuple))
    elif isinstance(default, str):
        valid = isinstance(value, (str, list))
    else:
        valid = True
    if not valid:
        raise UserError(
            f"{source}: {dotted} is {value!r} ({type(value).__name__}), expected a "
            f"{type(default).__name__} like the default {default!r}"
        )
    return value


def _merge(
    node: ConfigNode, values: Dict[str, Any], prefix: str, flat: Dict[str, Any], source: str
) -> None:
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        if any(dotted == free or dotted.startswith(free + ".") for free in FREE_FORM_SECTIONS):
            node[key] = _to_node(value)
            continue
        is_section = any(name.startswith(dotted + ".") for name in flat) or dotted in {
            section.rsplit(".", 1)[0] for section in FREE_FORM_SECTIONS
        }
        if is_section:
            if not isinstance(value, dict):
                raise UserError(
                    f"{source}: {dotted} is a section and needs nested keys, not {value!r}"
                )
            _merge(node[key], value, dotted + ".", flat, source)
        elif dotted in flat:
            node[key] = _check_type(dotted, value, flat[dotted], source)
        else:
            raise UserError(
                f"{source}: unknown config key {dotted}"
                f"{_suggest(dotted, list(flat) + list(FREE_FORM_SECTIONS))}"
            )


def _read_yaml(path: Path) -> Dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read config file {path}: {error}") from None
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise UserError(f"invalid YAML in {path}{where}: {problem}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise UserError(f"invalid config {path}: the top level must be a mapping of sections")
    return values


def load_config(path: Optional[Union[str, Path]] = None) -> ConfigNode:
    """Load a YAML config over the published defaults and check the model geometry.

    Raises UserError naming the file and the key for an unknown key, a value of the wrong
    type, invalid YAML or an impossible geometry.
    """
    cfg = default_config()
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        _merge(cfg, _read_yaml(path), "", _load_flat_defaults(), source)
    cfg["path"] = str(path) if path is not None else None
    validate_geometry(cfg, source)
    return cfg


def config_name(cfg: ConfigNode) -> str:
    """Return the config's file stem, which names its training output folder."""
    return Path(cfg.path).stem if cfg.get("path") else "default"


def resolve_repo_path(value: Union[str, Path], root: Path) -> Path:
    """Return `value` as is when absolute, else relative to the repository root `root`."""
    path = Path(value)
    return path if path.is_absolute() else root / path


def run_directory(cfg: ConfigNode, root: Path) -> Path:
    """Return OUTPUT_DIR/DATASET.DATASET/MODEL.NAME/<config file stem> for a config."""
    output = resolve_repo_path(cfg.OUTPUT_DIR or "output", root)
    return output / cfg.DATASET.DATASET / cfg.MODEL.NAME / config_name(cfg)


def save_config(cfg: ConfigNode, path: Union[str, Path]) -> None:
    """Write the config as YAML (without the `path` entry), atomically."""
    values = {key: value for key, value in cfg.to_dict().items() if key != "path"}
    write_text_atomic(path, yaml.safe_dump(values, sort_keys=False))


def validate_geometry(cfg: ConfigNode, source: str = "config") -> None:
    """Raise UserError if the image, feature map, patch grid or transformer widths disagree."""
    model = cfg.MODEL
    image_w, image_h = model.IMAGE_SIZE
    patch_h, patch_w = model.PATCH_SIZE
    if image_w % 4 or image_h % 4:
        raise UserError(
            f"{source}: MODEL.IMAGE_SIZE {model.IMAGE_SIZE} must be divisible by 4, "
            "the backbone stride"
        )
    feature_w, feature_h = image_w // 4, image_h // 4
    if patch_h > feature_h or patch_w > feature_w:
        raise UserError(
            f"{source}: the feature map ({feature_h} x {feature_w}, a quarter of "
            f"MODEL.IMAGE_SIZE) is smaller than one patch (MODEL.PATCH_SIZE {patch_h} x {patch_w})"
        )
    if feature_h % patch_h or feature_w % patch_w:
        raise UserError(
            f"{source}: the feature map {feature_h} x {feature_w} (height x width) is not a whole "
            f"number of patches of {patch_h} x {patch_w}; change MODEL.PATCH_SIZE or IMAGE_SIZE"
        )
    if model.DIM % model.TRANSFORMER_HEADS:
        raise UserError(
            f"{source}: MODEL.DIM {model.DIM} is not divisible by "
            f"MODEL.TRANSFORMER_HEADS {model.TRANSFORMER_HEADS}"
        )
    if model.NUM_JOINTS < 1 or model.DIM < 1 or model.CROSS_SELF_ATTENTION_LAYERS < 1:
        raise UserError(
            f"{source}: MODEL.NUM_JOINTS, DIM and CROSS_SELF_ATTENTION_LAYERS must be positive"
        )
    extra = model.get("EXTRA") or {}
    for stage in ("STAGE2", "STAGE3"):
        if stage not in extra:
            raise UserError(
                f"{source}: MODEL.EXTRA.{stage} is missing; the HRNet backbone "
                "needs NUM_MODULES, NUM_BRANCHES, BLOCK, NUM_BLOCKS and NUM_CHANNELS"
            )
        for key in ("NUM_MODULES", "NUM_BRANCHES", "BLOCK", "NUM_BLOCKS", "NUM_CHANNELS"):
            if key not in extra[stage]:
                raise UserError(f"{source}: MODEL.EXTRA.{stage}.{key} is missing")
