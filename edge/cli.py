"""``dr-edge``: the DR device's command line.

Each area of the edge registers its own subcommands; this module only assembles them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Modules that expose ``register(subparsers)``; each adds its subcommands with
# ``set_defaults(func=...)`` where ``func(args) -> int``.
_COMMAND_MODULES: tuple[str, ...] = (
    "edge.drivers.cli",
    "edge.station.cli",
    "edge.queue.cli",
    "edge.audit_cli",
    "edge.support",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dr-edge", description="DR station daemon and tools")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from edge.config import ConfigError

    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except ConfigError as exc:
        # Every subcommand reads the same file: a bad one is a clear message and exit 2,
        # never a traceback (systemd shows this line in the unit's status).
        print(f"dr-edge: configuration error: {exc}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
