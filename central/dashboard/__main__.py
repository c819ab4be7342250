"""``python -m central.dashboard``: manage operator accounts of the dashboard.

    python -m central.dashboard --accounts FILE set-password LOGIN   (password read from stdin
                                                                     or asked without echo)
    python -m central.dashboard --accounts FILE remove LOGIN
    python -m central.dashboard --accounts FILE list

Exit status: 0 done, 1 refused (the message says why), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Sequence
from pathlib import Path

from central.dashboard.accounts import AccountError, OperatorAccounts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m central.dashboard")
    parser.add_argument("--accounts", required=True, type=Path, help="the accounts file (0600)")
    sub = parser.add_subparsers(dest="command", required=True)
    set_password = sub.add_parser("set-password", help="create an operator or change a password")
    set_password.add_argument("login")
    sub.add_parser("remove", help="delete an operator").add_argument("login")
    sub.add_parser("list", help="list operator logins")
    args = parser.parse_args(argv)
    try:
        accounts = OperatorAccounts(args.accounts)
        if args.command == "list":
            for login in accounts.logins:
                print(login)
        elif args.command == "remove":
            if not accounts.remove(args.login):
                print(f"unknown operator {args.login!r}", file=sys.stderr)
                return 1
        else:
            if sys.stdin.isatty():
                password = getpass.getpass("Mot de passe : ")
                if getpass.getpass("Confirmation : ") != password:
                    print("passwords differ", file=sys.stderr)
                    return 1
            else:
                password = sys.stdin.readline().rstrip("\n")
            accounts.set_password(args.login, password)
    except AccountError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
