"""tools/fix_kpt_order.py: canonical order, nothing lost, backups, --check and --dry-run."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import stat
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from llrformer.errors import run_cli
from llrformer.keypoints import KEYPOINT_NAMES

REPOSITORY = Path(__file__).resolve().parents[1]
TOOL = REPOSITORY / "tools" / "fix_kpt_order.py"


def load_tool():
    spec = importlib.util.spec_from_file_location("fix_kpt_order", TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


fix_kpt_order = load_tool()


def run_tool(argv, capsys):
    """Run the tool's main as the command line does; return (status, stdout, stderr)."""
    status = run_cli(fix_kpt_order.main, argv, program="fix_kpt_order.py")
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def landmark_shape(index: int) -> dict:
    return {
        "label": KEYPOINT_NAMES[index],
        "points": [[1000.0 + index * 3.141592653589793, 300.0 + index * 201.25]],
        "group_id": None,
        "description": "",
        "shape_type": "circle" if index == 0 else "point",
        "flags": {},
    }


OTHER_SHAPES = [
    {"label": "HKA axis", "points": [[1, 2], [3, 4]], "shape_type": "line", "flags": {}},
    {"label": "R_FCC", "points": [[5.5, 6.5]], "shape_type": "point", "flags": {}},
    {"label": "Hüfte 髋", "points": [[1, 1], [9, 1], [5, 7]], "shape_type": "polygon"},
    {"label": "R_FC", "points": [[1, 2], [3, 4]], "shape_type": "rectangle"},
]


def annotation_document(shapes) -> dict:
    return {
        "version": "5.4.1",
        "flags": {"checked": True},
        "shapes": shapes,
        "imagePath": "..\\images\\Bein 07.png",
        "imageData": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVQIHWNgAAAAAgAB"
        "c3UBGAAAAABJRU5ErkJggg==",
        "imageHeight": 7600,
        "imageWidth": 2800,
        "pixel_spacing_mm": 0.1237,
        "phantom": {"seed": 11},
    }


def write(path: Path, document) -> Path:
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def folder(tmp_path) -> Path:
    """A folder with a shuffled file, an ordered file and one with a missing landmark."""
    directory = tmp_path / "annotations"
    directory.mkdir()
    shapes = [landmark_shape(index) for index in range(36)] + OTHER_SHAPES
    shapes.append(landmark_shape(5))  # a duplicate L_FNeck_Cut_Up
    random.Random(4).shuffle(shapes)
    write(directory / "shuffled é.json", annotation_document(shapes))
    write(directory / "ordered.json", annotation_document([landmark_shape(i) for i in range(36)]))
    partial = [landmark_shape(index) for index in range(36) if index != 14]
    partial.reverse()
    write(directory / "partial.json", annotation_document(partial))
    return directory


def canonical_shapes(shapes):
    return Counter(json.dumps(shape, sort_keys=True) for shape in shapes)


def test_round_trip_loses_nothing(folder, capsys):
    path = folder / "shuffled é.json"
    original_bytes = path.read_bytes()
    original = json.loads(original_bytes)

    status, out, err = run_tool([str(folder)], capsys)

    assert status == 0, err
    fixed = json.loads(path.read_text(encoding="utf-8"))
    # Every key and every shape is still there, with the same values.
    assert {k: v for k, v in fixed.items() if k != "shapes"} == {
        k: v for k, v in original.items() if k != "shapes"
    }
    assert list(fixed) == list(original)
    assert canonical_shapes(fixed["shapes"]) == canonical_shapes(original["shapes"])
    assert len(fixed["shapes"]) == 36 + len(OTHER_SHAPES) + 1
    # Landmarks first in canonical order, the duplicate beside its twin.
    labels = [shape["label"] for shape in fixed["shapes"]]
    expected = list(KEYPOINT_NAMES[:6]) + ["L_FNeck_Cut_Up"] + list(KEYPOINT_NAMES[6:])
    assert labels[:37] == expected
    # The other shapes follow in their original relative order.
    original_others = [s for s in original["shapes"] if s in OTHER_SHAPES]
    assert fixed["shapes"][37:] == original_others
    # The backup is the original file, byte for byte.
    assert (folder / "shuffled é.json.bak").read_bytes() == original_bytes
    assert path.read_text(encoding="utf-8").endswith("}\n")
    assert "Hüfte 髋" in path.read_text(encoding="utf-8")


def test_report_lists_missing_and_extra(folder, capsys):
    shuffled = folder / "shuffled é.json"
    partial = folder / "partial.json"
    shapes = json.loads(shuffled.read_text(encoding="utf-8"))["shapes"]
    extra = [shape["label"] for shape in shapes if shape in OTHER_SHAPES]
    extra = [f"{label} (rectangle)" if label == "R_FC" else label for label in extra]

    status, out, err = run_tool([str(folder)], capsys)

    lines = out.splitlines()
    assert f"{shuffled}: reordered 41 shapes (backup shuffled é.json.bak)" in lines
    assert f"{shuffled}: extra (4): {', '.join(extra)}" in lines
    assert f"{shuffled}: duplicated: L_FNeck_Cut_Up x2" in lines
    assert f"{partial}: missing (1): R_LLP" in lines
    assert f"{folder / 'ordered.json'}: in order" in lines
    assert lines[-1] == "3 files checked: 2 reordered, 2 with missing or extra labels, 0 failed"


def test_ordered_file_untouched(folder, capsys):
    path = folder / "ordered.json"
    before = path.stat().st_mtime_ns, path.read_bytes()
    status, out, err = run_tool([str(path)], capsys)
    assert status == 0
    assert (path.stat().st_mtime_ns, path.read_bytes()) == before
    assert not (folder / "ordered.json.bak").exists()


def test_check_exits_1_and_writes_nothing(folder, capsys):
    contents = {path: path.read_bytes() for path in folder.iterdir()}

    status, out, err = run_tool(["--check", str(folder)], capsys)

    assert status == 1
    assert {path: path.read_bytes() for path in folder.iterdir()} == contents
    assert f"{folder / 'partial.json'}: out of order (35 shapes)" in out.splitlines()

    run_tool([str(folder)], capsys)
    status, out, err = run_tool(["--check", str(folder)], capsys)
    assert status == 0
    assert "0 out of order" in out.splitlines()[-1]


def test_dry_run_writes_nothing(folder, capsys):
    contents = {path: path.read_bytes() for path in folder.iterdir()}

    status, out, err = run_tool(["--dry-run", str(folder)], capsys)

    assert status == 0
    assert {path: path.read_bytes() for path in folder.iterdir()} == contents
    assert f"{folder / 'partial.json'}: would reorder (35 shapes)" in out.splitlines()


def test_second_run_needs_no_backup(folder, capsys):
    run_tool([str(folder)], capsys)
    status, out, err = run_tool([str(folder)], capsys)
    assert status == 0
    assert sorted(path.name for path in folder.glob("*.bak*")) == [
        "partial.json.bak",
        "shuffled é.json.bak",
    ]
    assert "0 reordered" in out.splitlines()[-1]


def test_unreadable_file_reported_others_fixed(folder, capsys):
    (folder / "broken.json").write_text('{"shapes": [', encoding="utf-8")
    (folder / "twice.json").write_text(
        '{"shapes": [], "imagePath": "a.png", "imagePath": "b.png"}', encoding="utf-8"
    )
    twice_before = (folder / "twice.json").read_bytes()

    status, out, err = run_tool([str(folder)], capsys)

    errors = err.strip().splitlines()
    assert status == 2
    assert len(errors) == 2
    assert errors[0].startswith(f"fix_kpt_order.py: error: {folder / 'broken.json'}: invalid JSON")
    assert "the key 'imagePath' appears twice in one object" in errors[1]
    assert (folder / "twice.json").read_bytes() == twice_before
    assert (folder / "partial.json.bak").exists()  # the good files were still fixed
    assert "2 failed" in out.splitlines()[-1]


def test_permissions_kept(folder, capsys):
    path = folder / "partial.json"
    os.chmod(path, 0o640)
    run_tool([str(path)], capsys)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_symbolic_link_kept(folder, tmp_path, capsys):
    linked = tmp_path / "link.json"
    linked.symlink_to(folder / "partial.json")
    status, out, err = run_tool([str(linked)], capsys)
    assert status == 0, err
    assert linked.is_symlink()
    shapes = json.loads((folder / "partial.json").read_text(encoding="utf-8"))["shapes"]
    assert shapes[0]["label"] == "R_FC"


def test_read_only_file_left_unchanged(folder, capsys):
    path = folder / "partial.json"
    before = path.read_bytes()
    os.chmod(path, 0o444)
    status, out, err = run_tool([str(path)], capsys)
    assert status == 2
    assert "the file is read-only; left unchanged" in err
    assert path.read_bytes() == before
    assert not (folder / "partial.json.bak").exists()


def test_missing_path_is_user_error(tmp_path, capsys):
    status, out, err = run_tool([str(tmp_path / "nowhere")], capsys)
    assert status == 2
    assert err.strip() == (
        f"fix_kpt_order.py: error: {tmp_path / 'nowhere'} not found; pass annotation folders "
        "or JSON files"
    )


def test_default_folders_of_repository(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(fix_kpt_order, "REPOSITORY", tmp_path)
    status, out, err = run_tool([], capsys)
    assert status == 2
    assert "no folders match data/*/annotations" in err

    for split in ("train", "val"):
        (tmp_path / "data" / split / "annotations").mkdir(parents=True)
        write(
            tmp_path / "data" / split / "annotations" / "a.json",
            annotation_document([landmark_shape(i) for i in reversed(range(36))]),
        )
    status, out, err = run_tool(["--check"], capsys)
    assert status == 1
    assert out.splitlines()[-1].startswith("2 files checked: 2 out of order")


def test_runs_as_script_from_any_folder(folder, tmp_path):
    completed = subprocess.run(
        [sys.executable, str(TOOL), "--check", "--quiet", str(folder)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 1, completed.stderr
    assert "Traceback" not in completed.stderr
    assert completed.stdout.splitlines()[-1].startswith("3 files checked: 2 out of order")


def test_summary_line_singular_file():
    report = fix_kpt_order.FileReport(path=Path("a.json"))
    assert fix_kpt_order.summary_line([report], write=False).startswith("1 file checked: ")
