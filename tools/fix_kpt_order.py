"""Put the shapes of LabelMe / X-AnyLabeling annotation files into canonical landmark order.

Landmark shapes (point or circle shapes labelled with one of the 36 landmark names) come
first, in the order of llrformer.keypoints.KEYPOINT_NAMES. Every other shape follows in
its original order, so no shape is dropped. A changed file is first copied to
NAME.json.bak (or .bak1, .bak2, ...) and then replaced atomically. Before writing, the
new text is parsed again and compared with the old document.

Exit status: 0 when done, 1 with --check when a file is out of order, 2 when a file
could not be read or written.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llrformer.annotations import canonical_name, landmark_index  # noqa: E402
from llrformer.errors import UserError, run_cli, setup_logging  # noqa: E402
from llrformer.fileio import atomic_path, backup_file  # noqa: E402
from llrformer.keypoints import KEYPOINT_NAMES, NUM_KEYPOINTS  # noqa: E402

REPOSITORY = Path(__file__).resolve().parents[1]
DEFAULT_PATTERN = "data/*/annotations"
PROGRAM = "fix_kpt_order.py"


@dataclass
class FileReport:
    """Findings and actions of the tool for one annotation file."""

    path: Path
    out_of_order: bool = False
    shape_count: int = 0
    backup: Optional[Path] = None
    missing: List[str] = field(default_factory=list)
    extra: List[str] = field(default_factory=list)
    duplicates: List[str] = field(default_factory=list)
    error: Optional[str] = None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description=(
            "Put the shapes of annotation JSON files into the canonical order of the 36 "
            "landmarks. Shapes with other labels or of other types stay, after the landmarks."
        ),
        epilog="Exit status: 0 done, 1 out of order (with --check), 2 a file failed.",
    )
    parser.add_argument(
        "paths",
        nargs="*",
        type=Path,
        help=f"annotation folders or JSON files (default: {DEFAULT_PATTERN} in the repository)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="report what would change and write nothing"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing and exit with status 1 when any file is out of order",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="print only problems and the summary line"
    )
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    files = collect_files(args.paths)
    write = not (args.dry_run or args.check)

    reports = [fix_file(path, write) for path in files]

    for report in reports:
        for line in report_lines(report, write, args.check, args.quiet):
            print(line)
        if report.error is not None:
            print(f"{PROGRAM}: error: {report.error}", file=sys.stderr)
    print(summary_line(reports, write))

    if any(report.error is not None for report in reports):
        return 2
    if args.check and any(report.out_of_order for report in reports):
        return 1
    return 0


def collect_files(paths: Sequence[Path]) -> List[Path]:
    """Return the JSON files of the given folders and files, or of data/*/annotations."""
    if not paths:
        paths = sorted(REPOSITORY.glob(DEFAULT_PATTERN))
        if not paths:
            raise UserError(
                f"no folders match {DEFAULT_PATTERN} in {REPOSITORY}; pass annotation folders "
                "or files"
            )
    files: List[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(
                entry
                for entry in path.glob("*.json")
                if entry.is_file() and not entry.name.startswith(".")
            )
            if not found:
                print(f"{path}: no .json files", file=sys.stderr)
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise UserError(f"{path} not found; pass annotation folders or JSON files")
    if not files:
        raise UserError("no annotation files found in the given folders")
    return files


def canonical_order(shapes: List[Any]) -> List[Any]:
    """Return the shapes with landmarks first in canonical order, the rest after, in order.

    Python's sort is stable, so duplicates of one landmark and the other shapes keep their
    relative order.
    """

    def rank(shape: Any) -> int:
        index = landmark_index(shape)
        return NUM_KEYPOINTS if index is None else index

    return sorted(shapes, key=rank)


def fix_file(path: Path, write: bool) -> FileReport:
    """Check one file, and reorder it in place (with a backup) when `write` is True."""
    report = FileReport(path)
    try:
        text, document = load_document(path)
        shapes = document["shapes"]
        report.shape_count = len(shapes)
        report.missing, report.extra, report.duplicates = label_report(shapes)
        ordered = canonical_order(shapes)
        report.out_of_order = ordered != shapes
        if report.out_of_order and write:
            new_document = dict(document, shapes=ordered)
            new_text = json.dumps(new_document, indent=2, ensure_ascii=False)
            if text.endswith("\n"):
                new_text += "\n"
            verify_nothing_lost(document, new_text, path)
            report.backup = replace_with_backup(path, new_text)
    except UserError as error:
        report.error = str(error)
    return report


def load_document(path: Path) -> Tuple[str, Dict[str, Any]]:
    """Return the text and parsed object of an annotation file.

    Raises UserError for text that is not UTF-8 JSON, for a document without a `shapes`
    list, and for repeated keys in one object, which a rewrite would silently lose.
    """

    def reject_repeated_keys(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
        counts = Counter(key for key, _ in pairs)
        repeated = sorted(key for key, count in counts.items() if count > 1)
        if repeated:
            raise UserError(
                f"{path}: the key {repeated[0]!r} appears twice in one object, so rewriting "
                "would lose one value; merge the entries by hand"
            )
        return dict(pairs)

    try:
        text = path.read_bytes().decode("utf-8-sig")
        document = json.loads(text, object_pairs_hook=reject_repeated_keys)
    except UnicodeDecodeError as error:
        raise UserError(f"{path}: not UTF-8 text (invalid byte at offset {error.start})") from None
    except json.JSONDecodeError as error:
        raise UserError(
            f"{path}: invalid JSON ({error.msg} at line {error.lineno} column {error.colno})"
        ) from None
    except OSError as error:
        raise UserError(f"{path}: cannot be read ({error.strerror})") from None
    if not isinstance(document, dict) or not isinstance(document.get("shapes"), list):
        raise UserError(f"{path}: not a LabelMe / X-AnyLabeling file (no 'shapes' list)")
    return text, document


def label_report(shapes: List[Any]) -> Tuple[List[str], List[str], List[str]]:
    """Return (missing landmark names, extra labels, landmark names labelled more than once).

    Extra labels are those of shapes that are not landmarks: unknown names, and landmark
    names on shapes other than points and circles (shown with the shape type).
    """
    counts: Counter = Counter()
    extra: List[str] = []
    for shape in shapes:
        index = landmark_index(shape)
        if index is not None:
            counts[KEYPOINT_NAMES[index]] += 1
            continue
        label = shape.get("label") if isinstance(shape, dict) else None
        text = label if isinstance(label, str) else repr(label)
        shape_type = shape.get("shape_type") if isinstance(shape, dict) else None
        if canonical_name(label) is not None:
            text = f"{text} ({shape_type})"
        extra.append(text)
    missing = [name for name in KEYPOINT_NAMES if counts[name] == 0]
    duplicates = [f"{name} x{counts[name]}" for name in KEYPOINT_NAMES if counts[name] > 1]
    return missing, extra, duplicates


def verify_nothing_lost(document: Dict[str, Any], new_text: str, path: Path) -> None:
    """Raise UserError unless `new_text` is `document` with only the shapes reordered."""
    new_document = json.loads(new_text)

    def canonical(value: Any) -> str:
        return json.dumps(value, sort_keys=True, ensure_ascii=False)

    same_keys = {key: value for key, value in document.items() if key != "shapes"}
    new_keys = {key: value for key, value in new_document.items() if key != "shapes"}
    same_shapes = Counter(map(canonical, document["shapes"])) == Counter(
        map(canonical, new_document["shapes"])
    )
    if canonical(same_keys) != canonical(new_keys) or not same_shapes:
        raise UserError(f"{path}: the reordered file would differ in content; left unchanged")


def replace_with_backup(path: Path, new_text: str) -> Path:
    """Back up `path`, then replace it atomically with `new_text`, keeping its permissions."""
    target = path.resolve()  # write through a symbolic link instead of replacing the link
    mode = stat.S_IMODE(target.stat().st_mode)
    # Without the owner's write bit the file counts as read-only, even for root.
    if not os.access(target, os.W_OK) or not mode & stat.S_IWUSR:
        raise UserError(f"{path}: the file is read-only; left unchanged")
    try:
        backup = backup_file(target)
        with atomic_path(target) as temporary:
            temporary.write_text(new_text, encoding="utf-8")
            os.chmod(temporary, mode)
    except OSError as error:
        raise UserError(f"{path}: cannot be written ({error}); left unchanged") from None
    return backup


def report_lines(report: FileReport, write: bool, check: bool, quiet: bool) -> List[str]:
    """Return the lines printed for one file (none for an in-order file without problems)."""
    if report.error is not None:
        return []
    lines = []
    if report.out_of_order:
        if write:
            action = f"reordered {report.shape_count} shapes (backup {report.backup.name})"
        else:
            action = "out of order" if check else "would reorder"
            action += f" ({report.shape_count} shapes)"
        lines.append(f"{report.path}: {action}")
    elif not quiet:
        lines.append(f"{report.path}: in order")
    if report.missing:
        lines.append(f"{report.path}: missing ({len(report.missing)}): {', '.join(report.missing)}")
    if report.extra:
        lines.append(f"{report.path}: extra ({len(report.extra)}): {', '.join(report.extra)}")
    if report.duplicates:
        lines.append(f"{report.path}: duplicated: {', '.join(report.duplicates)}")
    return lines


def summary_line(reports: Sequence[FileReport], write: bool) -> str:
    unordered = sum(report.out_of_order for report in reports)
    failed = sum(report.error is not None for report in reports)
    changed = sum(report.backup is not None for report in reports)
    incomplete = sum(bool(report.missing or report.extra) for report in reports)
    verb = f"{changed} reordered" if write else f"{unordered} out of order"
    files = "1 file" if len(reports) == 1 else f"{len(reports)} files"
    return f"{files} checked: {verb}, {incomplete} with missing or extra labels, {failed} failed"


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
