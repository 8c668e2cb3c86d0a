"""The ``deepesi`` command line: a thin face over the Python API.

Each subcommand lives in :mod:`deepesi.commands` as a module with ``add_parser(subparsers)``
(which registers the parser and sets ``func``). Errors a user can fix (ValueError, TypeError,
FileNotFoundError, FileExistsError, KeyError) become one clear line and exit code 2; ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from ._logging import logger, set_log_level

#: Subcommand modules, in the order ``deepesi --help`` lists them.
COMMAND_MODULES = (
    "demo",
    "headmodel",
    "sources",
    "forward",
    "simulate",
    "train",
    "localize",
    "models",
    "benchmark",
)

USER_ERRORS = (ValueError, TypeError, FileNotFoundError, FileExistsError, KeyError)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="deepesi",
        description=(
            "Deep-learning source imaging of cortical and subcortical M/EEG sources on realistic "
            "10-tissue head models."
        ),
    )
    parser.add_argument("--version", action="version", version=f"deepesi {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f".commands.{name}", __package__)
        except ModuleNotFoundError as err:
            if err.name and err.name.endswith(f"commands.{name}"):
                continue  # command not available in this build
            raise
        module.add_parser(sub)
    return parser


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """Options every long-running subcommand takes."""
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress bars or info messages (warnings and errors only)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace output files that already exist"
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``deepesi`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    quiet = getattr(args, "quiet", False)
    old_level = set_log_level("WARNING" if quiet else "INFO", return_old=True)
    old_mne = None
    if quiet:
        import mne

        old_mne = mne.set_log_level("ERROR", return_old_level=True)
    try:
        result = args.func(args)
    except USER_ERRORS as err:
        if args.debug:
            raise
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"deepesi {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.debug:
            raise
        # every output is written atomically: an interrupted command leaves nothing half-written
        print(f"deepesi {args.command}: interrupted; nothing was left half-written.",
              file=sys.stderr)
        return 130
    finally:
        logger.setLevel(old_level)
        if old_mne is not None:
            import mne

            mne.set_log_level(old_mne)
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
