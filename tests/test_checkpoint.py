"""Checkpoint forms, refusals, mismatch messages and the checkpoint search order."""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import python_output

from llrformer.checkpoint import load_model, read_tensors
from llrformer.checkpoint_files import find_checkpoint, read_arrays, resolve_config_and_checkpoint
from llrformer.config import load_config
from llrformer.errors import UserError


@pytest.fixture
def tiny_state(tiny_checkpoint: Path) -> dict:
    return torch.load(tiny_checkpoint, weights_only=True)


def _first_parameter(model) -> torch.Tensor:
    return model.transformer.kp_init.detach()


@pytest.mark.parametrize(
    "form",
    ["bare", "state_dict", "best_state_dict", "module_bare", "module_checkpoint"],
)
def test_checkpoint_forms_load(form, tiny_config_path, tiny_state, tmp_path):
    module_state = {f"module.{key}": value for key, value in tiny_state.items()}
    payload = {
        "bare": tiny_state,
        "state_dict": {
            "epoch": 3,
            "state_dict": tiny_state,
            "perf": np.float64(0.5),
            "optimizer": {"state": {}, "param_groups": []},
            "model": "llrformer",
        },
        "best_state_dict": {"epoch": 3, "best_state_dict": tiny_state},
        "module_bare": module_state,
        "module_checkpoint": {"epoch": 1, "state_dict": module_state},
    }[form]
    path = tmp_path / f"{form}.pth"
    torch.save(payload, path)

    model = load_model(load_config(tiny_config_path), path)

    assert torch.equal(_first_parameter(model), tiny_state["transformer.kp_init"])
    assert not model.training
    assert all(p.device.type == "cpu" for p in model.parameters())


def test_loaded_model_runs_forward(tiny_config_path, tiny_checkpoint):
    model = load_model(load_config(tiny_config_path), tiny_checkpoint)
    with torch.inference_mode():
        heatmaps = model(torch.zeros(1, 3, 96, 48))
    assert heatmaps.shape == (1, 36, 24, 12)
    assert torch.isfinite(heatmaps).all()


def test_missing_checkpoint_rejected(tiny_config_path, tmp_path):
    with pytest.raises(UserError, match="checkpoint not found"):
        load_model(load_config(tiny_config_path), tmp_path / "nope.pth")


def test_empty_checkpoint_rejected(tiny_config_path, tmp_path):
    path = tmp_path / "empty.pth"
    path.write_bytes(b"")
    with pytest.raises(UserError, match="is empty"):
        load_model(load_config(tiny_config_path), path)


def test_truncated_checkpoint_rejected(tiny_config_path, tiny_checkpoint, tmp_path):
    path = tmp_path / "truncated.pth"
    path.write_bytes(tiny_checkpoint.read_bytes()[:5000])
    with pytest.raises(UserError, match="not a readable PyTorch checkpoint"):
        load_model(load_config(tiny_config_path), path)


@pytest.mark.parametrize("text", ["these are not weights\n", "not a checkpoint"])
def test_text_file_rejected(tiny_config_path, tmp_path, text):
    path = tmp_path / "notes.pth"
    path.write_text(text)
    with pytest.raises(UserError, match="not a PyTorch checkpoint: it is neither a zip"):
        load_model(load_config(tiny_config_path), path)


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_code_running_pickle_rejected(tiny_config_path, tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as handle:
        pickle.dump({"state_dict": _RunsCode(marker)}, handle)
    with pytest.raises(UserError, match="would run code"):
        load_model(load_config(tiny_config_path), path)
    assert not marker.exists()


def test_folder_rejected(tiny_config_path, tmp_path):
    with pytest.raises(UserError, match="is a folder; pass the .pth file inside it"):
        load_model(load_config(tiny_config_path), tmp_path)


def test_object_without_weights_rejected(tiny_config_path, tmp_path):
    path = tmp_path / "no_weights.pth"
    torch.save({"epoch": 3, "note": "hello"}, path)
    with pytest.raises(UserError, match="contains no model weights"):
        load_model(load_config(tiny_config_path), path)


def test_mismatch_lists_keys_and_fitting_config(tiny_config_path, tiny_state, tmp_path):
    state = dict(tiny_state)
    del state["transformer.kp_pos"]
    state["transformer.extra.weight"] = torch.zeros(2)
    state["transformer.kp_init"] = torch.zeros(1, 36, 24)
    path = tmp_path / "mismatch.pth"
    torch.save(state, path)

    with pytest.raises(UserError) as raised:
        load_model(load_config(tiny_config_path), path)

    message = str(raised.value)
    assert "missing keys: transformer.kp_pos" in message
    assert "unexpected keys: transformer.extra.weight" in message
    assert "transformer.kp_init (1, 36, 24) vs (1, 36, 16)" in message
    assert "DIM=24" in message
    assert "heatmap_pixels=288" in message  # 24 x 12 per keypoint token
    assert len(message.splitlines()) <= 6


def test_mismatch_names_config_that_fits(tiny_config_path, tiny_checkpoint, tmp_path):
    config_dir = tmp_path / "configs"
    config_dir.mkdir()
    (config_dir / "fits.yaml").write_text(tiny_config_path.read_text())
    golden = load_config(Path(__file__).resolve().parents[1] / "configs" / "llrformer.yaml")
    with pytest.raises(UserError, match=r"configs that fit: .*fits\.yaml"):
        load_model(golden, tiny_checkpoint, config_dir=config_dir)


def test_read_tensors_reads_named_only(tiny_checkpoint, tiny_state):
    keys = ["transformer.kp_init", "transformer.kp_pos", "transformer.kp_id_emb.weight"]
    tensors = read_tensors(tiny_checkpoint, keys)
    assert sorted(tensors) == sorted(keys)
    assert torch.equal(tensors["transformer.kp_pos"], tiny_state["transformer.kp_pos"])


def test_read_tensors_missing_key(tiny_checkpoint):
    with pytest.raises(UserError, match="has no tensor transformer.nothing"):
        read_tensors(tiny_checkpoint, ["transformer.nothing"])


TOKEN_KEYS = ["transformer.kp_init", "transformer.kp_pos", "transformer.kp_id_emb.weight"]


@pytest.mark.parametrize("form", ["bare", "module_checkpoint", "legacy_format"])
def test_read_arrays_matches_torch(form, tiny_state, tmp_path):
    path = tmp_path / f"{form}.pth"
    if form == "bare":
        torch.save(tiny_state, path)
    elif form == "module_checkpoint":
        module_state = {f"module.{key}": value for key, value in tiny_state.items()}
        torch.save({"epoch": 2, "perf": np.float64(0.5), "state_dict": module_state}, path)
    else:
        torch.save(tiny_state, path, _use_new_zipfile_serialization=False)

    arrays = read_arrays(path, TOKEN_KEYS)

    assert sorted(arrays) == sorted(TOKEN_KEYS)
    for key in TOKEN_KEYS:
        assert arrays[key].dtype == np.float32
        np.testing.assert_array_equal(arrays[key], tiny_state[key].numpy())


def test_read_arrays_follows_views_and_dtypes(tmp_path):
    base = torch.arange(24, dtype=torch.float64).reshape(4, 6)
    state = {
        "view": base[1:, ::2].t(),
        "half": torch.linspace(-2, 2, 5).to(torch.bfloat16),
        "count": torch.tensor([3, -7], dtype=torch.int64),
    }
    path = tmp_path / "views.pth"
    torch.save(state, path)

    arrays = read_arrays(path, list(state))

    np.testing.assert_array_equal(arrays["view"], state["view"].numpy())
    np.testing.assert_array_equal(arrays["half"], state["half"].float().numpy())
    np.testing.assert_array_equal(arrays["count"], [3, -7])


def test_read_arrays_runs_no_code(tiny_state, tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": tiny_state, "extra": _RunsCode(marker)}, path)

    arrays = read_arrays(path, TOKEN_KEYS)

    assert not marker.exists()
    np.testing.assert_array_equal(arrays[TOKEN_KEYS[0]], tiny_state[TOKEN_KEYS[0]].numpy())


def test_read_arrays_missing_key(tiny_checkpoint):
    with pytest.raises(UserError, match="has no tensor transformer.nothing"):
        read_arrays(tiny_checkpoint, ["transformer.nothing"])


def test_read_arrays_does_not_import_torch(tiny_checkpoint):
    code = (
        "import sys; from llrformer.checkpoint_files import read_arrays; "
        f"arrays = read_arrays({str(tiny_checkpoint)!r}, {TOKEN_KEYS!r}); "
        "print(len(arrays), 'torch' in sys.modules)"
    )
    assert python_output(code).split() == ["3", "False"]


def _place(path: Path, source: Path, mtime: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(source.read_bytes())
    os.utime(path, (mtime, mtime))
    return path


def test_search_order(tiny_config_path, tiny_checkpoint, tmp_path):
    cfg = load_config(tiny_config_path)
    root = tmp_path / "repo"
    runs = root / "output" / "MyKeypointDataset" / "llrformer"
    now = time.time()

    published = _place(runs / "model_best.pth", tiny_checkpoint, now)
    assert find_checkpoint(cfg, root) == published

    _place(runs / "old_run" / "model_best.pth", tiny_checkpoint, now - 100)
    newest = _place(runs / "new_run" / "model_best.pth", tiny_checkpoint, now - 10)
    assert find_checkpoint(cfg, root) == newest

    own_run = _place(runs / tiny_config_path.stem / "model_best.pth", tiny_checkpoint, now - 500)
    assert find_checkpoint(cfg, root) == own_run

    explicit = _place(root / "weights" / "mine.pth", tiny_checkpoint, now - 1000)
    cfg.TEST.MODEL_FILE = "weights/mine.pth"
    assert find_checkpoint(cfg, root) == explicit


def test_search_failure_lists_places(tiny_config_path, tmp_path):
    with pytest.raises(UserError) as raised:
        find_checkpoint(load_config(tiny_config_path), tmp_path)
    message = str(raised.value)
    assert "output/MyKeypointDataset/llrformer/*/model_best.pth" in message
    assert "output/MyKeypointDataset/llrformer/model_best.pth" in message
    assert "tools/train.py" in message


def test_config_beside_checkpoint_is_used(tiny_config_path, tiny_checkpoint, tmp_path):
    root = tmp_path / "repo"
    run = root / "output" / "MyKeypointDataset" / "llrformer" / "tiny"
    _place(run / "model_best.pth", tiny_checkpoint, time.time())
    (run / "config.yaml").write_text(tiny_config_path.read_text())
    default = Path(__file__).resolve().parents[1] / "configs" / "llrformer.yaml"

    cfg, checkpoint = resolve_config_and_checkpoint(None, None, root, default)

    assert checkpoint == run / "model_best.pth"
    assert cfg.path == str(run / "config.yaml")
    assert cfg.MODEL.DIM == 16
