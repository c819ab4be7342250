"""``dr-edge`` subcommands of the station: the daemon, its configuration, agents, sessions.

::

    dr-edge run --config dr-edge.toml                 # the daemon (systemd runs this)
    dr-edge check-config --config dr-edge.toml        # validate, print the effective config
    dr-edge agent add ID --name "Marie Curie" --password-stdin --config ...
    dr-edge session signin --agent ID --password-stdin --config ...   # prints a token
    export DR_EDGE_TOKEN=...
    dr-edge session start | show SID | recall SID --number N | recall SID --qr PAYLOAD
    dr-edge session recall SID --scan | documents SID --checked photo,proof_of_address [--stamp S]
    dr-edge session capture SID | exception SID CODE | confirm SID | abort SID
    dr-edge session status | handover NUMBER

Every ``session`` command prints the JSON answer of the console; a refusal prints its French
message on stderr and exits 2 (3 when signed out, 1 for anything else).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

from edge.config import ConfigError, EdgeConfig, load_config

ENV_CONFIG = "DR_EDGE_CONFIG"
ENV_TOKEN = "DR_EDGE_TOKEN"  # noqa: S105 - the name of a variable, not a secret


def _config(args: argparse.Namespace) -> EdgeConfig:
    path = args.config or os.environ.get(ENV_CONFIG)
    return load_config(Path(path) if path else None)


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=str, default=None, help=f"TOML configuration file (default: ${ENV_CONFIG})"
    )


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    env = os.environ.get("DR_EDGE_PASSWORD")
    if env is not None:
        return env
    import getpass

    return getpass.getpass("Mot de passe : ")


def _print(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2, default=str))


# -- run / check-config / agent ----------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    from dr_contracts.logsetup import configure_logging
    from edge.daemon import run

    configure_logging()
    config = _config(args)
    return asyncio.run(run(config))


def cmd_check_config(args: argparse.Namespace) -> int:
    try:
        config = _config(args)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    data = dataclasses.asdict(config)
    _print(data)
    return 0


def cmd_agent_add(args: argparse.Namespace) -> int:
    from edge.daemon import open_local

    config = _config(args)
    local = open_local(config)
    try:
        local.agents.provision(args.agent_id, name=args.name, password=_password(args))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        local.close()
    print(f"agent {args.agent_id} provisioned")
    return 0


def cmd_agent_list(args: argparse.Namespace) -> int:
    from edge.daemon import open_local

    local = open_local(_config(args))
    try:
        _print(
            [
                {"id": a.id, "name": a.name, "disabled": a.disabled, "locked_until": a.locked_until}
                for a in local.store.agents()
            ]
        )
    finally:
        local.close()
    return 0


# -- session ------------------------------------------------------------------------------------
def _client(args: argparse.Namespace) -> Any:
    from edge.console.client import ConsoleClient
    from edge.daemon import console_url

    url = args.url or console_url(_config(args))
    return ConsoleClient(url, token=args.token or os.environ.get(ENV_TOKEN))


def cmd_session(args: argparse.Namespace) -> int:
    from edge.console.client import ConsoleError

    client = _client(args)
    action = args.action
    try:
        if action == "signin":
            _print({"token": client.sign_in(args.agent, _password(args))})
        elif action == "status":
            _print(client.status())
        elif action == "start":
            _print(client.start())
        elif action == "show":
            _print(client.session(args.sid))
        elif action == "recall":
            body: dict[str, Any] = {}
            if args.scan:
                body = {"from_scanner": True, "timeout": args.timeout}
            elif args.qr is not None:
                body = {"qr": args.qr}
            else:
                body = {"number": args.number}
            if args.offline_json:
                body["offline_details"] = json.loads(args.offline_json)
            _print(client.recall(args.sid, **body))
        elif action == "documents":
            checked = [c for c in args.checked.split(",") if c]
            _print(client.documents(args.sid, checked=checked, stamp=args.stamp))
        elif action == "capture":
            _print(client.capture(args.sid))
        elif action == "exception":
            _print(client.exception(args.sid, args.code))
        elif action == "confirm":
            _print(client.confirm(args.sid))
        elif action == "abort":
            _print(client.abort(args.sid))
        elif action == "handover":
            _print(client.handover(args.number))
    except ConsoleError as exc:
        print(f"{exc.code}: {exc.message}", file=sys.stderr)
        return 3 if exc.status == 401 else 2
    except OSError as exc:
        print(
            f"the DR daemon's console is not reachable at {client.base_url}: {exc}", file=sys.stderr
        )
        return 1
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("run", help="run the DR daemon (console, link, devices)")
    _add_config(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("check-config", help="validate the configuration and print it")
    _add_config(p)
    p.set_defaults(func=cmd_check_config)

    agent = sub.add_parser("agent", help="agent accounts of this station")
    agent_sub = agent.add_subparsers(dest="agent_command", required=True)
    p = agent_sub.add_parser("add", help="create or reset an agent account")
    p.add_argument("agent_id")
    p.add_argument("--name", required=True)
    p.add_argument("--password-stdin", action="store_true")
    _add_config(p)
    p.set_defaults(func=cmd_agent_add)
    p = agent_sub.add_parser("list", help="list agent accounts")
    _add_config(p)
    p.set_defaults(func=cmd_agent_list)

    session = sub.add_parser("session", help="drive the enrolment workflow (JSON API)")
    session_sub = session.add_subparsers(dest="action", required=True)

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        sp: argparse.ArgumentParser = session_sub.add_parser(name, help=help_)
        _add_config(sp)
        sp.add_argument("--url", default=None, help="console URL (default: from the daemon)")
        sp.add_argument("--token", default=None, help=f"sign-in token (default: ${ENV_TOKEN})")
        sp.set_defaults(func=cmd_session)
        return sp

    p = add("signin", "sign in; prints the token")
    p.add_argument("--agent", required=True)
    p.add_argument("--password-stdin", action="store_true")
    add("status", "link, queue, sensor and lease status")
    add("start", "start a new enrolment session")
    add("show", "show a session").add_argument("sid")
    p = add("recall", "step 2: recall the pre-request")
    p.add_argument("sid")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--number")
    group.add_argument("--qr")
    group.add_argument("--scan", action="store_true", help="wait for the QR scanner")
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument(
        "--offline-json",
        default=None,
        help='offline details: {"surname","given_names","birth_date","reason"}',
    )
    p = add("documents", "step 3: documents checklist and tax stamp")
    p.add_argument("sid")
    p.add_argument("--checked", required=True, help="comma-separated: photo,proof_of_address")
    p.add_argument("--stamp", default=None)
    add("capture", "step 4: capture the current finger once").add_argument("sid")
    p = add("exception", "step 4: declare an exception for the current finger")
    p.add_argument("sid")
    p.add_argument("code", help="amputated, bandaged_injured or physically_unable")
    add("confirm", "step 5: confirm, seal, queue; prints the request number").add_argument("sid")
    add("abort", "abandon a session").add_argument("sid")
    add("handover", "step 7: identity check at card handover").add_argument("number")
