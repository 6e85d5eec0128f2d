"""`kubernetes-agent-sandbox serve`: the MCP server; with no arguments, stdio on the embedded local provider."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Collection
from typing import Any

from ..errors import SandboxError
from ..server.config import CONFIG_ENV, SETTINGS, ConfigError, load
from ..server.logs import configure_logging
from ..server.runtime import serve

EPILOG = f"""\
Every setting can also come from an environment variable (shown after each option) or from a TOML file given
with --config or ${CONFIG_ENV}, whose keys are the option names without dashes (port = 8080,
token_file = "/etc/kas/tokens"). A flag beats the environment, which beats the file.

Over HTTP every request needs a bearer token from --token-file or $KUBERNETES_AGENT_SANDBOX_TOKENS (or a JWT
when --jwks-url is set), unless the server is bound to loopback and --allow-unauthenticated is given."""


def _comma_list(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


PARSERS: dict[str, Callable[[str], Any]] = {"int": int, "float": float, "str": str, "list": _comma_list}


def register(subcommands: Any) -> None:
    parser = subcommands.add_parser(
        "serve",
        help="Run the MCP server (stdio by default; --transport http for streamable HTTP at /mcp).",
        description="Serve the sandbox tools over MCP. With no arguments: stdio, on the embedded local provider, "
        "which is what a desktop client's configuration starts.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_setting_arguments(parser)
    parser.set_defaults(handler=run)


def add_setting_arguments(parser: argparse.ArgumentParser, names: Collection[str] | None = None) -> None:
    """--config and one option per setting of `SETTINGS` (those in `names`, when given)."""
    parser.add_argument("--config", metavar="FILE", help=f"TOML file of settings [${CONFIG_ENV}]")
    for setting in SETTINGS:
        if not setting.flag or (names is not None and setting.name not in names):
            continue
        text = f"{setting.described} [${setting.env}]"
        if setting.kind == "bool":
            parser.add_argument(setting.option, dest=setting.name, action="store_true", default=None, help=text)
            continue
        parser.add_argument(
            setting.option,
            dest=setting.name,
            default=None,
            type=PARSERS[setting.kind],
            choices=setting.choices or None,
            metavar=None if setting.choices else setting.name.upper(),
            help=text,
        )


def run(args: argparse.Namespace) -> int:
    flags = {setting.name: getattr(args, setting.name) for setting in SETTINGS if setting.flag}
    try:
        config = load(flags, os.environ, args.config)
    except ConfigError as error:
        print(f"kubernetes-agent-sandbox serve: {error}", file=sys.stderr)
        return 2
    configure_logging(config.log_level)
    try:
        asyncio.run(serve(config))
    except ConfigError as error:
        print(f"kubernetes-agent-sandbox serve: {error}", file=sys.stderr)
        return 2
    except SandboxError as error:
        print(
            f"kubernetes-agent-sandbox serve: the {config.provider} provider is not available: {error}", file=sys.stderr
        )
        return 1
    except KeyboardInterrupt:
        pass
    return 0
