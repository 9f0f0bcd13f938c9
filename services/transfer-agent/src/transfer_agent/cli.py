"""`transfer-agent run|check --config FILE.toml`.

Exit codes: 0 ok, 1 the configuration (or a folder or key it names) has problems, 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

import structlog

from servicekit.logs import configure_logging
from transfer_agent.checks import config_problems
from transfer_agent.config import AgentConfig, ConfigError, load_config

EXIT_OK = 0
EXIT_CONFIG = 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="transfer-agent",
        description="Move verified batch files between drop zones.",
        epilog="Exit codes: 0 ok, 1 configuration problems, 2 usage error.",
    )
    parser.add_argument("command", choices=["run", "check"])
    parser.add_argument("--config", required=True, type=Path, help="the agent's TOML file")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    problems = config_problems(config)
    if args.command == "check":
        return _report(config, problems)
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    return _run(config)


def _report(config: AgentConfig, problems: list[str]) -> int:
    for problem in problems:
        print(f"problem: {problem}")
    if problems:
        return EXIT_CONFIG
    for route in config.routes:
        print(f"ok: route {route.name!r}: {route.source} -> {route.destination}")
    return EXIT_OK


def _run(config: AgentConfig) -> int:
    from transfer_agent.daemon import Agent

    agent_section = config.agent
    configure_logging(
        "transfer-agent", json=agent_section.log_format == "json", level=agent_section.log_level
    )
    try:
        asyncio.run(Agent(config).run())
    except OSError as exc:  # e.g. the listen address is taken
        structlog.get_logger("transfer_agent").error("agent_failed", error=str(exc))
        return EXIT_CONFIG
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
