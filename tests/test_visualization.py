"""The three visualization scripts end to end on a tiny model, and their bad-input errors."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, TINY_CONFIG
from PIL import Image

from llrformer.errors import run_cli
from llrformer.keypoints import KEYPOINT_NAMES
from llrformer.script_support import SCRIPT_OPTIONS

VISUALIZATION = REPO_ROOT / "visualization"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, VISUALIZATION / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


layers_script = load_script("attention_vis_keypoint_attention_layers")
visualize_script = load_script("attention_visualize")
similarity_script = load_script("plot_keypoint_token_similarity")


@pytest.fixture
def annotated_image(tall_image: Path, tmp_path: Path) -> Path:
    """The tall test image in a data/test layout with a LabelMe annotation of 36 landmarks."""
    images = tmp_path / "data" / "test" / "images"
    annotations = tmp_path / "data" / "test" / "annotations"
    images.mkdir(parents=True)
    annotations.mkdir(parents=True)
    image = images / "leg.png"
    image.write_bytes(tall_image.read_bytes())
    width, height = Image.open(image).size
    shapes = []
    for index, name in enumerate(KEYPOINT_NAMES):
        x = width * (0.3 if index % 2 == 0 else 0.7)
        y = height * (0.1 + 0.8 * (index // 2) / 17)
        shapes.append({"label": name, "points": [[x, y]], "shape_type": "point"})
    document = {"shapes": shapes, "imageWidth": width, "imageHeight": height}
    (annotations / "leg.json").write_text(json.dumps(document))
    return image


def model_options(config: Path, checkpoint: Path, out_dir: Path) -> list:
    return [
        "--config",
        str(config),
        "--checkpoint",
        str(checkpoint),
        "--device",
        "cpu",
        "--out-dir",
        str(out_dir),
        "--dpi",
        "60",
    ]


def written(out_dir: Path) -> set:
    return {path.name for path in out_dir.iterdir()}


def test_layers_script_writes_figure_and_share(
    tiny_config_path, tiny_checkpoint, annotated_image, tmp_path, capsys
):
    out_dir = tmp_path / "figures"
    options = model_options(tiny_config_path, tiny_checkpoint, out_dir)
    assert layers_script.main(options + ["--image", str(annotated_image)]) == 0

    assert written(out_dir) == {"cross_keypoint_attention_layers.png", "keypoint_token_share.csv"}
    with Image.open(out_dir / "cross_keypoint_attention_layers.png") as image:
        assert image.format == "PNG"
        assert image.size[0] > 300
    share_lines = (out_dir / "keypoint_token_share.csv").read_text().splitlines()
    assert share_lines[0] == "keypoint_index,keypoint_name,layer_0,layer_1"
    assert len(share_lines) == 1 + 36
    shares = np.array([[float(v) for v in line.split(",")[2:]] for line in share_lines[1:]])
    assert ((shares > 0) & (shares < 1)).all()
    assert "to keypoint tokens" in capsys.readouterr().out


def test_layers_script_per_head_and_subset(
    tiny_config_path, tiny_checkpoint, annotated_image, tmp_path
):
    out_dir = tmp_path / "figures"
    options = model_options(tiny_config_path, tiny_checkpoint, out_dir)
    arguments = ["--image", str(annotated_image), "--heads", "all", "--layers", "1"]
    arguments += ["--keypoints", "0,1,R_LLP", "--scale", "row"]
    assert layers_script.main(options + arguments) == 0
    assert {
        "cross_keypoint_attention_layers.png",
        "cross_keypoint_attention_layers_head0.png",
        "cross_keypoint_attention_layers_head1.png",
    } <= written(out_dir)


def test_visualize_script_outputs(
    tiny_config_path, tiny_checkpoint, annotated_image, tmp_path, capsys
):
    out_dir = tmp_path / "figures"
    options = model_options(tiny_config_path, tiny_checkpoint, out_dir)
    assert visualize_script.main(options + ["--image", str(annotated_image)]) == 0

    assert written(out_dir) == {
        "cross_keypoint_attention_layers.jpg",
        "keypoint_to_image_attention_keypoints_4_5_14_15.jpg",
        "keypoint_to_image_cross_attention_keypoints_4_5_14_15.jpg",
        "keypoint_token_share.csv",
        "left_right_symmetry_keypoints_4_5_14_15.csv",
    }
    for name in written(out_dir):
        if name.endswith(".jpg"):
            with Image.open(out_dir / name) as image:
                assert image.format == "JPEG"
    rows = (out_dir / "left_right_symmetry_keypoints_4_5_14_15.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 2 * 2  # pairs x kinds x layers
    assert rows[1].startswith("4,R_FNeck_Cut_Up,5,L_FNeck_Cut_Up,self,0,")
    assert ",ground truth," in rows[1]
    printed = capsys.readouterr().out
    assert "r mirrored near 1" in printed
    assert "from the ground truth" in printed


def test_visualize_script_names_heads_without_annotation(
    tiny_config_path, tiny_checkpoint, annotated_image, tmp_path, capsys
):
    out_dir = tmp_path / "figures"
    options = model_options(tiny_config_path, tiny_checkpoint, out_dir)
    arguments = ["--image", str(annotated_image), "--no-annotation"]
    arguments += ["--keypoints", "R_LLP,1", "--layers", "1", "--heads", "1"]
    assert visualize_script.main(options + arguments) == 0

    assert {
        "keypoint_to_image_attention_keypoints_14_1.jpg",
        "keypoint_to_image_cross_attention_keypoints_14_1.jpg",
        "keypoint_to_image_attention_keypoint_14_by_head.jpg",
        "keypoint_to_image_cross_attention_keypoint_1_by_head.jpg",
        "cross_keypoint_attention_layers_head1.jpg",
        "left_right_symmetry_keypoints_14_1.csv",
    } <= written(out_dir)
    assert "from the prediction" in capsys.readouterr().out


def test_similarity_script_reads_token_tensors_only(tiny_config_path, tiny_checkpoint, tmp_path):
    state = torch.load(tiny_checkpoint, weights_only=True)
    keys = similarity_script.TOKEN_KEYS
    tokens_only = tmp_path / "tokens_only.pth"
    torch.save({"state_dict": {f"module.{key}": state[key] for key in keys}}, tokens_only)

    out_dir = tmp_path / "figures"
    arguments = ["--config", str(tiny_config_path), "--checkpoint", str(tokens_only)]
    arguments += ["--out-dir", str(out_dir), "--cluster"]
    assert similarity_script.main(arguments) == 0
    assert written(out_dir) == {"keypoint_token_similarity.png"}
    with Image.open(out_dir / "keypoint_token_similarity.png") as image:
        assert image.format == "PNG"


def run_script_file(script: str, arguments: list, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(VISUALIZATION / script)] + arguments,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_scripts_run_as_files_from_both_folders(
    tiny_config_path, tiny_checkpoint, annotated_image, tmp_path
):
    out_dir = tmp_path / "figures"
    options = model_options(tiny_config_path, tiny_checkpoint, out_dir)
    result = run_script_file(
        "attention_visualize.py", options + ["--image", str(annotated_image)], VISUALIZATION
    )
    assert result.returncode == 0, result.stderr
    result = run_script_file(
        "plot_keypoint_token_similarity.py",
        ["--config", str(tiny_config_path), "--checkpoint", str(tiny_checkpoint)]
        + ["--out-dir", str(out_dir)],
        REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "keypoint_token_similarity.png" in written(out_dir)


def test_figure_workers_draw_same_files(
    tiny_config_path, tiny_checkpoint, annotated_image, tmp_path
):
    # In this test process torch is imported, so main() draws without workers; a script
    # started as a file draws in two worker processes.
    options = model_options(tiny_config_path, tiny_checkpoint, tmp_path / "inline")
    options += ["--image", str(annotated_image), "--heads", "all"]
    assert visualize_script.main(options) == 0
    options[options.index(str(tmp_path / "inline"))] = str(tmp_path / "workers")

    result = run_script_file("attention_visualize.py", options + ["-v"], REPO_ROOT)

    assert result.returncode == 0, result.stderr
    assert "figure worker processes: 2" in result.stderr
    names = written(tmp_path / "inline")
    assert written(tmp_path / "workers") == names
    for name in names:
        inline = (tmp_path / "inline" / name).read_bytes()
        assert (tmp_path / "workers" / name).read_bytes() == inline, name


@pytest.fixture
def config_without_checkpoints(tmp_path: Path) -> Path:
    path = tmp_path / "nowhere.yaml"
    path.write_text(TINY_CONFIG + f"OUTPUT_DIR: {tmp_path / 'empty_output'}\n")
    return path


def error_lines(stderr: str) -> list:
    """Return the lines of stderr, after checking that none is part of a traceback."""
    assert "Traceback" not in stderr
    return stderr.strip().splitlines()


BAD_INPUTS = {
    "unknown landmark": (["--keypoints", "R_KNEE"], "unknown landmark name 'R_KNEE'"),
    "layer out of range": (["--layers", "0,2"], "layer 2 is out of range"),
    "head out of range": (["--heads", "2"], "head 2 is out of range"),
    "head not a number": (["--heads", "average"], "give 'mean' (the default), 'all'"),
    "missing image": (["--image", "MISSING"], "image not found"),
    "folder as image": (["--image", "FOLDER"], "is a folder, not an image file; pass one"),
    "annotation and no-annotation": (
        ["--annotation", "MISSING", "--no-annotation"],
        "--no-annotation contradict each other",
    ),
    "missing annotation": (["--annotation", "MISSING"], "annotation not found"),
    "bad dpi": (["--dpi", "5"], "--dpi 5 is out of range"),
    "bad device": (["--device", "tpu"], "invalid --device 'tpu'"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_one_line_exit_2(
    case, tiny_config_path, tiny_checkpoint, annotated_image, tmp_path, capsys
):
    arguments, fragment = BAD_INPUTS[case]
    places = {"MISSING": str(tmp_path / "missing"), "FOLDER": str(annotated_image.parent)}
    arguments = [places.get(item, item) for item in arguments]
    out_dir = tmp_path / "figures"
    options = model_options(tiny_config_path, tiny_checkpoint, out_dir)
    options += ["--image", str(annotated_image)] + arguments

    assert run_cli(visualize_script.main, options, program="attention_visualize.py") == 2
    error = error_lines(capsys.readouterr().err)
    assert len(error) == 1, error
    assert error[0].startswith("attention_visualize.py: error: ")
    assert fragment in error[0]
    assert not out_dir.exists()


@pytest.mark.parametrize("script", [layers_script, visualize_script])
def test_bad_device_before_any_output(
    script, tiny_config_path, tiny_checkpoint, annotated_image, tmp_path, capsys
):
    out_dir = tmp_path / "figures"
    options = model_options(tiny_config_path, tiny_checkpoint, out_dir)
    options += ["--image", str(annotated_image), "--device", "cuda:99", "--layers", "1"]
    assert run_cli(script.main, options, program="script") == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    error = error_lines(captured.err)
    assert len(error) == 1, error
    assert "--device cuda:99" in error[0]
    assert not out_dir.exists()


def test_similarity_config_mismatch_rejected(tiny_checkpoint, tmp_path, capsys):
    out_dir = tmp_path / "figures"
    config = REPO_ROOT / "configs" / "llrformer_demo.yaml"
    arguments = ["--config", str(config), "--checkpoint", str(tiny_checkpoint)]

    status = run_cli(similarity_script.main, arguments + ["--out-dir", str(out_dir)])

    assert status == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert "does not fit config" in error[-1]
    assert "36 x 16" in error[-1]
    assert not out_dir.exists()


def test_similarity_unknown_landmark_before_output(tiny_checkpoint, tmp_path, capsys):
    out_dir = tmp_path / "figures"
    arguments = ["--checkpoint", str(tiny_checkpoint), "--out-dir", str(out_dir), "-v"]
    assert run_cli(similarity_script.main, arguments + ["--keypoints", "R_FCC"]) == 2
    error = error_lines(capsys.readouterr().err)
    assert len(error) == 1, error
    assert "unknown landmark name 'R_FCC'" in error[0]
    assert not out_dir.exists()


@pytest.mark.parametrize("script", [layers_script, visualize_script, similarity_script])
def test_no_checkpoint_lists_places_searched(script, config_without_checkpoints, tmp_path, capsys):
    arguments = ["--config", str(config_without_checkpoints), "--out-dir", str(tmp_path / "f")]
    assert run_cli(script.main, arguments, program="script") == 2
    error = error_lines(capsys.readouterr().err)
    assert len(error) == 1, error
    assert "no checkpoint found; searched" in error[0]
    assert str(tmp_path / "empty_output") in error[0]
    assert "tools/train.py" in error[0]


def test_self_attention_stops_before_head(tiny_config_path, tiny_checkpoint, tall_image):
    from llrformer.checkpoint import load_model
    from llrformer.config import load_config
    from llrformer.images import read_image
    from llrformer.inference import predict
    from llrformer.script_support import record_self_attention

    model = load_model(load_config(tiny_config_path), tiny_checkpoint)
    rgb = read_image(tall_image).rgb
    calls = []
    handle = model.transformer.mlp_head.register_forward_hook(lambda *args: calls.append(1))
    recorded = record_self_attention(model, rgb)
    handle.remove()
    assert calls == []

    full = predict(model, rgb, record=True, keypoint_rows_only=True).self_attention
    assert recorded.shape == full.shape
    assert np.allclose(recorded, full, atol=1e-6)
    assert predict(model, rgb).heatmaps.shape == (36, 24, 12)


def test_visualize_partial_annotation_midlines(
    tiny_config_path, tiny_checkpoint, annotated_image, tmp_path
):
    annotation = annotated_image.parents[1] / "annotations" / "leg.json"
    document = json.loads(annotation.read_text())
    document["shapes"] = [
        shape for shape in document["shapes"] if shape["label"] != "L_FNeck_Cut_Up"
    ]
    annotation.write_text(json.dumps(document))

    out_dir = tmp_path / "figures"
    options = model_options(tiny_config_path, tiny_checkpoint, out_dir)
    assert visualize_script.main(options + ["--image", str(annotated_image)]) == 0
    rows = (out_dir / "left_right_symmetry_keypoints_4_5_14_15.csv").read_text().splitlines()
    sources = {(row.split(",")[0], row.split(",")[7]) for row in rows[1:]}
    assert sources == {("4", "prediction"), ("14", "ground truth")}


def test_unused_option_warns_and_runs(tiny_config_path, tiny_checkpoint, tmp_path, capsys):
    out_dir = tmp_path / "figures"
    arguments = model_options(tiny_config_path, tiny_checkpoint, out_dir)
    assert similarity_script.main(arguments + ["--layers", "1", "--no-annotation"]) == 0
    lines = error_lines(capsys.readouterr().err)
    assert "warning: --layers is not used by this script; ignoring it" in lines
    assert "warning: --no-annotation is not used by this script; ignoring it" in lines
    assert written(out_dir) == {"keypoint_token_similarity.png"}


def test_mismatched_annotation_marks_predictions(
    tiny_config_path, tiny_checkpoint, annotated_image, tmp_path, capsys
):
    annotation = annotated_image.parents[1] / "annotations" / "leg.json"
    document = json.loads(annotation.read_text())
    document["imageWidth"] *= 3
    annotation.write_text(json.dumps(document))

    out_dir = tmp_path / "figures"
    options = model_options(tiny_config_path, tiny_checkpoint, out_dir)
    assert visualize_script.main(options + ["--image", str(annotated_image)]) == 0
    assert "marking the model's predictions instead" in capsys.readouterr().err
    rows = (out_dir / "left_right_symmetry_keypoints_4_5_14_15.csv").read_text().splitlines()
    assert {row.split(",")[7] for row in rows[1:]} == {"prediction"}


def test_script_model_matches_default_layout(tiny_config_path, tiny_checkpoint, tall_image):
    from llrformer.checkpoint import load_model as load_default
    from llrformer.config import load_config
    from llrformer.images import read_image
    from llrformer.inference import predict
    from llrformer.script_support import load_model

    cfg = load_config(tiny_config_path)
    rgb = read_image(tall_image).rgb
    reference = predict(load_default(cfg, tiny_checkpoint), rgb, record=True)
    scripted = predict(load_model(cfg, tiny_checkpoint, "cpu"), rgb, record=True)
    for name in ("heatmaps", "cross_attention", "self_attention"):
        expected, actual = getattr(reference, name), getattr(scripted, name)
        assert np.linalg.norm(actual - expected) <= 1e-5 * np.linalg.norm(expected), name


def read_share_csv(out_dir: Path) -> str:
    return (out_dir / "keypoint_token_share.csv").read_text()


@pytest.mark.parametrize("extra", [[], ["--keypoints", "0,1,R_LLP", "--layers", "1"]])
def test_share_csv_same_from_both_scripts(
    extra, tiny_config_path, tiny_checkpoint, annotated_image, tmp_path
):
    tables = []
    for name, script in (("layers", layers_script), ("visualize", visualize_script)):
        out_dir = tmp_path / name
        options = model_options(tiny_config_path, tiny_checkpoint, out_dir)
        assert script.main(options + ["--image", str(annotated_image)] + extra) == 0
        tables.append(read_share_csv(out_dir))
    assert tables[0] == tables[1]
    expected_rows = 3 if extra else 36
    assert len(tables[0].splitlines()) == 1 + expected_rows


def test_visualize_keypoints_apply_to_matrices(
    tiny_config_path, tiny_checkpoint, annotated_image, tmp_path
):
    out_dir = tmp_path / "figures"
    options = model_options(tiny_config_path, tiny_checkpoint, out_dir)
    arguments = ["--image", str(annotated_image), "--keypoints", "R_LLP,15"]
    assert visualize_script.main(options + arguments) == 0
    rows = read_share_csv(out_dir).splitlines()[1:]
    assert [row.split(",")[1] for row in rows] == ["R_LLP", "L_LLP"]
    assert "keypoint_to_image_attention_keypoints_14_15.jpg" in written(out_dir)


def test_keypoints_help_states_both_defaults():
    text = " ".join(visualize_script.build_parser().format_help().split())
    assert "applies to every figure and table" in text
    assert "4,5,14,15 in the keypoint-to-image figures" in text
    layers_text = " ".join(layers_script.build_parser().format_help().split())
    assert "applies to every figure and table" in layers_text


def test_annotation_problems_one_warning_each(
    tiny_config_path, tiny_checkpoint, annotated_image, tmp_path, capsys
):
    annotation = annotated_image.parents[1] / "annotations" / "leg.json"
    document = json.loads(annotation.read_text())
    for shape in document["shapes"]:
        if shape["label"] == "R_FC":
            shape["label"] = "R_FCC"
    document["shapes"] = [shape for shape in document["shapes"] if shape["label"] != "L_LLP"]
    annotation.write_text(json.dumps(document))

    out_dir = tmp_path / "figures"
    options = model_options(tiny_config_path, tiny_checkpoint, out_dir)
    assert visualize_script.main(options + ["--image", str(annotated_image)]) == 0
    lines = error_lines(capsys.readouterr().err)
    unknown = [line for line in lines if "R_FCC" in line]
    missing = [line for line in lines if "landmarks marked missing" in line]
    assert len(unknown) == 1
    assert unknown[0].startswith("warning: ")
    assert "did you mean R_FC?" in unknown[0]
    assert len(missing) == 1
    assert "R_FC, L_LLP" in missing[0]


def test_failed_run_leaves_no_out_dir(tiny_config_path, tiny_checkpoint, annotated_image, tmp_path):
    out_dir = tmp_path / "new" / "figures"
    options = model_options(tiny_config_path, tiny_checkpoint, out_dir)
    options += ["--image", str(annotated_image), "--layers", "7"]
    for script in (layers_script, visualize_script):
        assert run_cli(script.main, options, program="script") == 2
    assert not (tmp_path / "new").exists()


def test_out_dir_that_is_a_file_rejected(tiny_checkpoint, tmp_path, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    arguments = ["--checkpoint", str(tiny_checkpoint), "--out-dir", str(blocker / "figures")]
    assert run_cli(similarity_script.main, arguments, program="script") == 2
    error = error_lines(capsys.readouterr().err)
    assert len(error) == 1, error
    assert "is a file" in error[0]


def readme_option_table() -> dict:
    """Return {option: {script: "yes" | "ignored" | "no"}} from visualization/README.md."""
    lines = (VISUALIZATION / "README.md").read_text().splitlines()
    start = lines.index("| option | layers | visualize | similarity | meaning |")
    table = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        for option in re.findall(r"`(-[-\w]+)`", cells[0]):
            table[option] = dict(zip(("layers", "visualize", "similarity"), cells[1:4]))
    return table


def script_options(script) -> dict:
    """Return {option: "yes" | "ignored"} for the options of a script's parser but --help."""
    parser = script.build_parser()
    used = parser.get_default("script_options_used")
    options = {}
    for action in parser._actions:
        name = "annotation" if action.dest == "no_annotation" else action.dest
        for option in action.option_strings:
            if option not in ("-h", "--help"):
                unused = name in SCRIPT_OPTIONS and name not in used
                options[option] = "ignored" if unused else "yes"
    return options


def test_readme_option_table_matches_parsers():
    table = readme_option_table()
    scripts = {
        "layers": layers_script,
        "visualize": visualize_script,
        "similarity": similarity_script,
    }
    for name, script in scripts.items():
        documented = {option: cells[name] for option, cells in table.items()}
        accepted = script_options(script)
        for option, cell in documented.items():
            assert cell in ("yes", "ignored", "no"), (option, cell)
            assert accepted.get(option, "no") == cell, (name, option)
        assert set(accepted) <= set(documented), name
    assert table["--cluster"] == {"layers": "no", "visualize": "no", "similarity": "yes"}


@pytest.mark.parametrize("script", [layers_script, visualize_script, similarity_script])
def test_annotation_options_conflict_exit_2(
    script, tiny_config_path, tiny_checkpoint, annotated_image, tmp_path, capsys
):
    annotation = annotated_image.parents[1] / "annotations" / "leg.json"
    out_dir = tmp_path / "figures"
    options = model_options(tiny_config_path, tiny_checkpoint, out_dir)
    options += ["--image", str(annotated_image), "--annotation", str(annotation)]

    assert run_cli(script.main, options + ["--no-annotation"], program="script") == 2
    error = error_lines(capsys.readouterr().err)
    assert len(error) == 1, error
    assert "--no-annotation contradict each other; give one of them" in error[0]
    assert not out_dir.exists()


def test_similarity_help_marks_device_unused():
    text = " ".join(similarity_script.build_parser().format_help().split())
    assert "default: auto) (not used by this script)" in text
    for script in (layers_script, visualize_script):
        used_text = " ".join(script.build_parser().format_help().split())
        assert "default: auto) (not used" not in used_text


def figure_text(layout) -> str:
    """Return every text of a drawn figure, with line breaks and runs of spaces as one space."""
    from matplotlib.text import Text

    return " ".join(" ".join(text.get_text().split()) for text in layout.figure.findobj(Text))


def test_subtitles_count_drawn_keypoints():
    from llrformer.figures_attention import keypoint_matrix_figure, token_similarity_figure

    rng = np.random.default_rng(0)
    self_rows = rng.dirichlet(np.ones(36 + 12), size=(2, 2, 36)).astype(np.float32)
    keypoints = [4, 5, 14]
    matrix = keypoint_matrix_figure(
        self_rows, [0, 1], None, keypoints, KEYPOINT_NAMES, "shared", "source", 60
    )
    text = figure_text(matrix)
    assert "a row over all 36 keypoint columns, not only the 3 drawn, sums to" in text

    tokens = rng.normal(size=(36, 16))
    similarity = token_similarity_figure(tokens, keypoints, KEYPOINT_NAMES, False, "source", 60)
    text = figure_text(similarity)
    assert "T: 3 of the 36 keypoint query tokens" in text

    everything = token_similarity_figure(tokens, range(36), KEYPOINT_NAMES, False, "source", 60)
    assert "T: 36 keypoint query tokens" in figure_text(everything)


def test_partial_ground_truth_counts_drawn_landmarks():
    from llrformer.figures_outputs import choose_landmarks
    from llrformer.preprocess import Letterbox

    box = Letterbox.fit((96, 40), (96, 40))
    ground_truth = np.full((36, 2), 5.0)
    ground_truth[[0, 5]] = np.nan
    landmarks = choose_landmarks(ground_truth, np.full((36, 2), 7.0), box)

    note = landmarks.note(KEYPOINT_NAMES, [4, 5, 14, 15])
    assert note.startswith("Ground truth is partial: 3 of the 4 landmarks drawn are annotated")
    assert note.endswith("the prediction marks the others (L_FNeck_Cut_Up).")
    assert landmarks.note(KEYPOINT_NAMES, [14, 15]) == ""
    assert "34 of 36 landmarks annotated" in landmarks.note(KEYPOINT_NAMES)


def test_annotation_image_path_checked_against_image(
    tiny_config_path, tiny_checkpoint, annotated_image, tmp_path, capsys
):
    document = json.loads((annotated_image.parents[1] / "annotations" / "leg.json").read_text())
    matching = tmp_path / "labels from a colleague.json"
    matching.write_text(json.dumps({**document, "imagePath": "..\\images\\leg.png"}))
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps({**document, "imagePath": "old_name.png"}))
    options = model_options(tiny_config_path, tiny_checkpoint, tmp_path / "figures")
    options += ["--image", str(annotated_image), "--layers", "1"]

    assert visualize_script.main(options + ["--annotation", str(matching)]) == 0
    assert "imagePath" not in capsys.readouterr().err

    assert visualize_script.main(options + ["--annotation", str(stale)]) == 0
    lines = [line for line in error_lines(capsys.readouterr().err) if "imagePath" in line]
    assert lines == [
        f"warning: {stale}: imagePath 'old_name.png' does not match the image leg.png; "
        "ignored, the annotation is used with leg.png"
    ]


def test_tiny_image_warns_and_runs(tiny_config_path, tiny_checkpoint, tmp_path, capsys):
    image = tmp_path / "dot.png"
    Image.new("L", (1, 1), 128).save(image)
    out_dir = tmp_path / "figures"
    options = model_options(tiny_config_path, tiny_checkpoint, out_dir)

    assert layers_script.main(options + ["--image", str(image)]) == 0
    lines = error_lines(capsys.readouterr().err)
    warnings = [line for line in lines if line.startswith("warning: ")]
    assert warnings == [
        f"warning: {image} is only 1 x 1 pixels, under 32 on a side, so it is unlikely to be "
        "a radiograph; check that this is the image you meant"
    ]
    assert "cross_keypoint_attention_layers.png" in written(out_dir)


def test_config_mismatch_before_image_lines(tiny_checkpoint, annotated_image, tmp_path, capsys):
    config = REPO_ROOT / "configs" / "llrformer_demo.yaml"
    out_dir = tmp_path / "figures"
    options = model_options(config, tiny_checkpoint, out_dir)

    assert run_cli(visualize_script.main, options + ["--image", str(annotated_image)]) == 2
    lines = error_lines(capsys.readouterr().err)
    assert not [line for line in lines if line.startswith(("image:", "annotation:"))], lines
    assert any("does not fit config" in line for line in lines)
    assert not out_dir.exists()
