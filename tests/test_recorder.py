"""The attention recorder: shapes, cleanup, no-capture error and unchanged outputs."""

from __future__ import annotations

import pytest
import torch

from llrformer.config import load_config
from llrformer.model import build_model
from llrformer.recorder import AttentionRecorder
from llrformer.transformer import AttentionProbe


@pytest.fixture
def tiny_model(tiny_config_path):
    torch.manual_seed(0)
    return build_model(load_config(tiny_config_path)).eval()


def _hook_count(model) -> int:
    return sum(len(m._forward_hooks) for m in model.modules() if isinstance(m, AttentionProbe))


def test_shapes_and_softmax(tiny_model):
    batch = torch.randn(2, 3, 96, 48)
    with AttentionRecorder(tiny_model) as recorder:
        tiny_model(batch)
    cross = recorder.stacked("cross")
    full = recorder.stacked("self")
    assert cross.shape == (2, 2, 2, 36, 12)  # layers, batch, heads, keypoints, patches
    assert full.shape == (2, 2, 2, 48, 48)
    assert torch.allclose(cross.sum(-1), torch.ones(()), atol=1e-5)
    assert torch.allclose(full.sum(-1), torch.ones(()), atol=1e-5)
    assert cross.device.type == "cpu"
    assert not cross.requires_grad


def test_keypoint_rows_only(tiny_model):
    with AttentionRecorder(tiny_model) as full_recorder:
        tiny_model(torch.ones(1, 3, 96, 48))
    with AttentionRecorder(tiny_model, keypoint_rows_only=True) as rows_recorder:
        tiny_model(torch.ones(1, 3, 96, 48))
    rows = rows_recorder.stacked("self", batch_index=0)
    assert rows.shape == (2, 2, 36, 48)
    assert torch.allclose(rows, full_recorder.stacked("self", batch_index=0)[:, :, :36])


@pytest.mark.parametrize("keypoint_rows_only", [False, True])
def test_recording_does_not_change_output(tiny_model, keypoint_rows_only):
    batch = torch.randn(1, 3, 96, 48)
    with torch.inference_mode():
        plain = tiny_model(batch)
        with AttentionRecorder(tiny_model, keypoint_rows_only=keypoint_rows_only):
            recorded = tiny_model(batch)
    assert torch.allclose(plain, recorded, atol=1e-6)


def test_row_limit_reset_on_exit(tiny_model):
    with AttentionRecorder(tiny_model, keypoint_rows_only=True):
        tiny_model(torch.zeros(1, 3, 96, 48))
    probes = [m for m in tiny_model.modules() if isinstance(m, AttentionProbe)]
    assert probes
    assert all(probe.query_rows is None for probe in probes)


def test_hooks_removed_on_exit(tiny_model):
    with AttentionRecorder(tiny_model):
        assert _hook_count(tiny_model) == 4
        tiny_model(torch.zeros(1, 3, 96, 48))
    assert _hook_count(tiny_model) == 0


def test_hooks_removed_after_exception(tiny_model):
    with pytest.raises(ZeroDivisionError):
        with AttentionRecorder(tiny_model):
            tiny_model(torch.zeros(1, 3, 96, 48))
            _ = 1 / 0
    assert _hook_count(tiny_model) == 0


def test_no_forward_pass_raises(tiny_model):
    with pytest.raises(RuntimeError, match="captured no attention"):
        with AttentionRecorder(tiny_model):
            pass
    assert _hook_count(tiny_model) == 0


def test_second_forward_pass_raises(tiny_model):
    with pytest.raises(RuntimeError, match="one AttentionRecorder per forward pass"):
        with AttentionRecorder(tiny_model):
            tiny_model(torch.zeros(1, 3, 96, 48))
            tiny_model(torch.zeros(1, 3, 96, 48))
    assert _hook_count(tiny_model) == 0


def test_only_cross_kind(tiny_model):
    with AttentionRecorder(tiny_model, kinds=("cross",)) as recorder:
        tiny_model(torch.zeros(1, 3, 96, 48))
    assert len(recorder.layers("cross")) == 2
    assert "self" not in recorder.records
    with pytest.raises(ValueError, match="unknown attention kinds"):
        AttentionRecorder(tiny_model, kinds=("diagonal",))


def test_encode_records_same_attention(tiny_model):
    batch = torch.randn(1, 3, 96, 48)
    with torch.inference_mode():
        with AttentionRecorder(tiny_model) as full_pass:
            tiny_model(batch)
        with AttentionRecorder(tiny_model) as encode_pass:
            tokens = tiny_model.encode(batch)
    assert tokens.shape == (1, 36 + 12, 16)
    for kind in ("cross", "self"):
        assert torch.equal(encode_pass.stacked(kind), full_pass.stacked(kind))
