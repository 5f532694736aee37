"""Registration for subcommands whose implementation has not landed yet: they say so instead of failing."""

from __future__ import annotations

import argparse
import sys


def register_pending(parser: argparse.ArgumentParser, what: str, exit_code: int = 1) -> None:
    """Make `parser` print that `what` is not built yet and exit with `exit_code`."""
    parser.epilog = f"{what} is not built yet."

    def handler(_args: argparse.Namespace) -> int:
        print(f"{what}: not built yet.", file=sys.stderr)
        return exit_code

    parser.set_defaults(handler=handler)
