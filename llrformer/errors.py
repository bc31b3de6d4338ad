"""The error type for a user's mistake, and the command-line wrapper that reports it.

A UserError reaches the user as one line on stderr and exit status 2, never as a traceback.
"""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from typing import Callable, Iterator, Optional, Sequence

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """A problem with the user's input: a file, an option or a config value.

    The message names the value and says what to do.
    """


def setup_logging(verbose: bool = False) -> None:
    """Configure the root logger once for a command-line program."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
        force=True,
    )
    # Third-party debug logging (matplotlib's font search prints hundreds of lines) would
    # drown the program's own -v output.
    for noisy in ("matplotlib", "PIL", "h5py"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _program_name(program: Optional[str] = None) -> str:
    return program or (sys.argv[0].rsplit("/", 1)[-1] if sys.argv else "llrformer")


@contextmanager
def exit_on_interrupt(program: Optional[str] = None) -> Iterator[None]:
    """Exit with one "interrupted" line and status 130, as `run_cli` does, on Ctrl-C in the block.

    Tools wrap their module-level imports of torch in it, because that import takes seconds
    and runs before `run_cli` can catch anything.
    """
    try:
        yield
    except KeyboardInterrupt:
        print(f"{_program_name(program)}: interrupted", file=sys.stderr)
        raise SystemExit(EXIT_INTERRUPTED) from None


def run_cli(
    main: Callable[[Optional[Sequence[str]]], int],
    argv: Optional[Sequence[str]] = None,
    program: Optional[str] = None,
) -> int:
    """Run a command's `main`, turning a UserError or Ctrl-C into one line and an exit status."""
    name = _program_name(program)
    try:
        return main(argv) or 0
    except UserError as error:
        print(f"{name}: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as error:
        # A file system refusal (permissions, a file where a folder is expected, a full
        # disk) is a problem of the user's paths, not a bug, so it gets one line too.
        where = f" {error.filename}" if error.filename else ""
        reason = error.strerror or str(error)
        print(
            f"{name}: error: cannot access{where}: {reason}; check the path and its permissions",
            file=sys.stderr,
        )
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
