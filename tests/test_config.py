"""Config loading: every published key, misspellings, invalid YAML and impossible geometry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import REFERENCE_DIR, REPO_ROOT

from llrformer.config import load_config, save_config
from llrformer.errors import UserError


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def _nest(flat: dict) -> dict:
    tree: dict = {}
    for dotted, value in flat.items():
        node = tree
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def test_every_published_key_loads(tmp_path):
    flat = json.loads((REPO_ROOT / "llrformer" / "config_defaults.json").read_text())
    tree = _nest(flat)
    published = yaml.safe_load((REPO_ROOT / "configs" / "llrformer.yaml").read_text())
    tree["MODEL"].update({key: value for key, value in published["MODEL"].items()})
    tree["EVALUATION"]["REGIONS"] = {"hip": [0, 7], "anything": {"free": "form"}}

    cfg = load_config(_write(tmp_path, yaml.safe_dump(tree)))

    assert cfg.TEST.OKS_THRE == flat["TEST.OKS_THRE"]
    assert cfg.MODEL.HEAD_TYPES.SPATIAL_HEADS == [0, 1, 2, 3]
    assert cfg.EVALUATION.REGIONS.anything.free == "form"


@pytest.mark.skipif(not (REFERENCE_DIR / "config_keys.json").is_file(), reason="no reference")
def test_defaults_match_reference_keys():
    reference = json.loads((REFERENCE_DIR / "config_keys.json").read_text())
    shipped = json.loads((REPO_ROOT / "llrformer" / "config_defaults.json").read_text())
    assert shipped == reference


def test_published_config_geometry():
    cfg = load_config(REPO_ROOT / "configs" / "llrformer.yaml")
    assert cfg.MODEL.IMAGE_SIZE == [384, 1152]
    assert cfg.MODEL.HEATMAP_SIZE == [96, 288]
    assert cfg.MODEL.PATCH_SIZE == [9, 3]
    assert cfg.MODEL.DIM == 192


def test_misspelt_key_suggests_nearest(tmp_path):
    path = _write(tmp_path, "MODEL:\n  NUM_JOINT: 36\n")
    with pytest.raises(UserError, match=r"unknown config key MODEL\.NUM_JOINT.*MODEL\.NUM_JOINTS"):
        load_config(path)


def test_unknown_section_named(tmp_path):
    path = _write(tmp_path, "TRAINING:\n  LR: 0.1\n")
    with pytest.raises(UserError, match="unknown config key TRAINING"):
        load_config(path)


def test_invalid_yaml_names_line(tmp_path):
    path = _write(tmp_path, "MODEL:\n  DIM: 192\n  HEADS: [8\n")
    with pytest.raises(UserError, match=r"invalid YAML in .*config\.yaml line \d+"):
        load_config(path)


def test_wrong_type_named(tmp_path):
    path = _write(tmp_path, "MODEL:\n  DIM: wide\n")
    with pytest.raises(UserError, match=r"MODEL\.DIM is 'wide'"):
        load_config(path)


def test_missing_file_named(tmp_path):
    with pytest.raises(UserError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")


def test_dim_not_divisible_by_heads(tmp_path, tiny_config_path):
    text = tiny_config_path.read_text().replace("TRANSFORMER_HEADS: 2", "TRANSFORMER_HEADS: 3")
    with pytest.raises(UserError, match="DIM 16 is not divisible by MODEL.TRANSFORMER_HEADS 3"):
        load_config(_write(tmp_path, text))


def test_feature_map_smaller_than_patch(tmp_path, tiny_config_path):
    text = tiny_config_path.read_text().replace("PATCH_SIZE: [6, 4]", "PATCH_SIZE: [6, 16]")
    with pytest.raises(UserError, match="smaller than one patch"):
        load_config(_write(tmp_path, text))


def test_patch_not_dividing_feature_map(tmp_path, tiny_config_path):
    text = tiny_config_path.read_text().replace("PATCH_SIZE: [6, 4]", "PATCH_SIZE: [5, 4]")
    with pytest.raises(UserError, match="not a whole number of patches"):
        load_config(_write(tmp_path, text))


def test_save_and_reload_round_trip(tmp_path, tiny_config_path):
    cfg = load_config(tiny_config_path)
    saved = tmp_path / "out" / "config.yaml"
    save_config(cfg, saved)
    again = load_config(saved)
    assert again.MODEL.to_dict() == cfg.MODEL.to_dict()
    assert again.TRAIN.to_dict() == cfg.TRAIN.to_dict()
