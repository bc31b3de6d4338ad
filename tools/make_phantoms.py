"""Write a data set of phantom full-length lower-limb AP radiographs with landmark truth.

Example:

    python tools/make_phantoms.py --out data --train 300 --val 40 --test 40 --seed 0

writes data/{train,val,test}/images/phantom_*.jpg and LabelMe annotations beside them in
data/{split}/annotations/. The same seed gives byte-identical files. An existing output
folder must be a phantom data set unless --force is given. Even with --force, only phantom
files are replaced, so other files stay untouched.

Exit status: 0 when done, 2 for invalid options or an unusable output folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llrformer.cli import HelpFormatter  # noqa: E402
from llrformer.errors import UserError, run_cli, setup_logging  # noqa: E402
from llrformer.phantoms import write_dataset  # noqa: E402

PROGRAM = "make_phantoms.py"


class _OneLineParser(argparse.ArgumentParser):
    """Argument parser whose errors become a UserError, reported as one line by run_cli."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{message} (see --help)")


def _count(text: str) -> int:
    """Parse a split count: a whole number >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid count {text!r}: use a whole number >= 0"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid count {value}: use a whole number >= 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog=PROGRAM,
        description=(
            "Generate phantom full-length lower-limb AP radiographs (JPEG) with the 36 "
            "LLRFormer landmarks as LabelMe annotations, in OUT/{train,val,test}/"
            "{images,annotations}."
        ),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--out", default="data", help="output folder of the data set")
    parser.add_argument("--train", type=_count, default=240, help="number of training images")
    parser.add_argument("--val", type=_count, default=30, help="number of validation images")
    parser.add_argument("--test", type=_count, default=30, help="number of test images")
    parser.add_argument("--seed", type=_count, default=0, help="random seed (whole number >= 0)")
    parser.add_argument(
        "--workers",
        type=_count,
        default=None,
        help="worker processes (default: the CPU count, at most 8; 0 or 1 runs in-process)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="write into a folder that also contains other files, which are left unchanged",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--verbose", action="store_true", help="log debug messages")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    counts = {"train": args.train, "val": args.val, "test": args.test}
    summary = write_dataset(
        args.out, counts, args.seed, args.workers, force=args.force, progress=not args.quiet
    )
    written = ", ".join(f"{count} {split}" for split, count in summary["counts"].items())
    print(
        f"wrote {written} phantom images to {summary['out_dir']} in {summary['seconds']:.1f} s "
        f"({summary['images_per_second']} images/s, {summary['workers']} workers)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main, program=PROGRAM))
