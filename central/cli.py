"""``dr-central``: the central service's command line.

Global options: ``--config FILE`` (or ``$DR_CENTRAL_CONFIG``) and ``--data-dir DIR``.
Exit status: 0 done, 1 refused (the message says why), 2 bad configuration or arguments.
``--json`` on the commands that print something gives machine-readable output for scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any, cast

from central import audit_hooks as audit_events
from central.audit_hooks import verify_file as verify_audit_file
from central.config import CentralConfig, ConfigError, load_config
from central.data_report import data_report
from central.keyring import CentralKeyring
from central.models import (
    AMOUNT_GUYANE_CENTS,
    AMOUNT_STANDARD_CENTS,
    FormError,
    Parent,
    PreRequestForm,
    PreRequestStatus,
    Stage,
    StageTransitionError,
)
from central.pki import CertificateAuthority
from central.retention import RetentionPolicy, retention_loop, run_retention
from central.schema import create_schema
from central.service import CentralService
from central.store import Store
from dr_contracts.audit import key_id as audit_key_id
from dr_contracts.enrolment import RequestReason
from dr_contracts.identifiers import IdentifierError, format_request_number
from dr_contracts.keys import KeyFileError, ed25519_fingerprint
from dr_contracts.logsetup import configure_logging
from dr_contracts.rejections import RejectedError, Rejection

log = logging.getLogger("central.cli")

CRL_FILE = "crl.pem"


class CliError(Exception):
    """A refusal to report on stderr with exit status ``status``."""

    def __init__(self, message: str, *, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def _print(args: argparse.Namespace, data: dict[str, Any] | list[Any], text: str) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2) if args.json else text)


def _config(args: argparse.Namespace) -> CentralConfig:
    path = args.config or os.environ.get("DR_CENTRAL_CONFIG")
    return load_config(
        Path(path) if path else None,
        data_dir=Path(args.data_dir) if args.data_dir else None,
    )


def _service(config: CentralConfig) -> CentralService:
    return CentralService.from_config(config)


# --- init / check-config ---------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    config = _config(args)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    keys = CentralKeyring.create(config.key_dir)
    ca = CertificateAuthority.load_or_create(config.ca_dir)
    store = Store.open(config.database)
    try:
        create_schema(store)
    finally:
        store.close()
    data = {
        "data_dir": str(config.data_dir),
        "database": config.database.split("@")[-1],
        "recipient_key_fingerprint": keys.recipient_public.fingerprint,
        "signing_key_fingerprint": ed25519_fingerprint(keys.signing.public_key),
        "ca_cert": str(ca.cert_path),
    }
    _print(args, data, "\n".join(f"{k}: {v}" for k, v in data.items()))
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    config = _config(args)
    problems: list[str] = []
    try:
        CentralKeyring.load(config.key_dir)
    except KeyFileError as exc:
        problems.append(f"keys: {exc}")
    try:
        config.operator_token()
    except ConfigError as exc:
        problems.append(str(exc))
    data = {
        "source": config.source,
        "data_dir": str(config.data_dir),
        "database": config.database.split("@")[-1],
        "key_dir": str(config.key_dir),
        "ca_dir": str(config.ca_dir),
        "http": f"{config.http_host}:{config.http_port}",
        "problems": problems,
    }
    _print(args, data, "\n".join(f"{k}: {v}" for k, v in data.items()))
    return 2 if problems else 0


def cmd_support_bundle(args: argparse.Namespace) -> int:
    from central.support import build_bundle
    from dr_contracts.supportbundle import SupportBundleError

    try:
        members = build_bundle(
            Path(args.output),
            config=_config(args),
            log_files=[Path(p) for p in args.log_file],
            journal_lines=args.lines,
        )
    except SupportBundleError as exc:
        raise CliError(f"support bundle not written: {exc}") from exc
    print(f"{args.output}: {', '.join(members)}")
    return 0


# --- pre-requests ----------------------------------------------------------------------


def _form(args: argparse.Namespace) -> PreRequestForm:
    if args.from_json:
        return PreRequestForm.from_dict(json.loads(Path(args.from_json).read_text("utf-8")))
    try:
        birth = date.fromisoformat(args.birth_date or "")
    except ValueError:
        raise FormError("birth_date", "a date YYYY-MM-DD") from None
    parents = {}
    for who in ("father", "mother"):
        surname, given = getattr(args, f"{who}_surname"), getattr(args, f"{who}_given_names")
        if surname:
            parents[who] = Parent(surname=surname, given_names=given or "")
    return PreRequestForm(
        surname=args.surname or "",
        given_names=args.given_names or "",
        sex=args.sex or "",
        birth_date=birth,
        birth_place=args.birth_place or "",
        nationality=args.nationality,
        address_line=args.address or "",
        postcode=args.postcode or "",
        city=args.city or "",
        height_cm=args.height,
        eye_colour=args.eyes or "",
        reason=RequestReason(args.reason),
        usage_name=args.usage_name or "",
        **parents,  # type: ignore[arg-type]
    )


def cmd_prerequest_create(args: argparse.Namespace) -> int:
    config = _config(args)
    form = _form(args)
    with _service(config) as service:
        pre = service.create_prerequest(
            form, number=args.number, status=PreRequestStatus(args.status)
        )
        qr = service.prerequest_qr(pre.number)
        if args.pdf:
            from central.recap import render_recap

            Path(args.pdf).write_bytes(render_recap(pre, qr_payload=qr))
    data = {**pre.to_dict(), "qr": qr, "pdf": args.pdf}
    _print(
        args,
        data,
        f"pre-request: {pre.number}\nqr: {qr}" + (f"\npdf: {args.pdf}" if args.pdf else ""),
    )
    return 0


def cmd_prerequest_show(args: argparse.Namespace) -> int:
    config = _config(args)
    with _service(config) as service:
        pre = service.get_prerequest(args.number)
        if pre is None:
            raise CliError(f"unknown pre-request {args.number}")
        if args.pdf:
            from central.recap import render_recap

            Path(args.pdf).write_bytes(
                render_recap(pre, qr_payload=service.prerequest_qr(pre.number))
            )
    _print(
        args,
        pre.to_dict(),
        f"pre-request: {pre.number}\nstatus: {pre.status}\nexpires: {pre.expires_at:%Y-%m-%d}",
    )
    return 0


# --- stamps ------------------------------------------------------------------------------


def cmd_stamp_create(args: argparse.Namespace) -> int:
    config = _config(args)
    amount = {
        "25": AMOUNT_STANDARD_CENTS,
        "12.50": AMOUNT_GUYANE_CENTS,
        "12.5": AMOUNT_GUYANE_CENTS,
    }
    if args.amount not in amount:
        raise CliError("--amount is 25 or 12.50", status=2)
    with _service(config) as service:
        stamps = [
            service.create_stamp(amount_cents=amount[args.amount], number=args.number)
            for _ in range(args.count)
        ]
    data = [s.to_dict() for s in stamps]
    _print(
        args, data, "\n".join(f"stamp: {s.number} ({s.amount_cents / 100:.2f} EUR)" for s in stamps)
    )
    return 0


def cmd_stamp_cancel(args: argparse.Namespace) -> int:
    with _service(_config(args)) as service:
        try:
            stamp = service.cancel_stamp(args.number)
        except KeyError:
            raise CliError(f"unknown stamp {args.number}") from None
    _print(args, stamp.to_dict(), f"stamp: {stamp.number} {stamp.state}")
    return 0


# --- devices -----------------------------------------------------------------------------


def cmd_device_provision(args: argparse.Namespace) -> int:
    from central.provisioning import provision_device

    config = _config(args)
    keys = CentralKeyring.load(config.key_dir)
    ca = CertificateAuthority.load_or_create(config.ca_dir)
    with _service(config) as service:
        try:
            bundle = provision_device(
                service,
                ca,
                keys,
                device_id=args.device_id,
                commune_name=args.commune,
                out_dir=Path(args.out),
                replace=args.replace,
            )
        except (FileExistsError, ValueError) as exc:
            raise CliError(str(exc)) from None
    data = {
        "device_id": bundle.device_id,
        "bundle": str(bundle.directory),
        "manifest": str(bundle.manifest),
        "signing_key_fingerprint": bundle.signing_fingerprint,
    }
    _print(args, data, "\n".join(f"{k}: {v}" for k, v in data.items()))
    return 0


def cmd_device_revoke(args: argparse.Namespace) -> int:
    config = _config(args)
    with _service(config) as service:
        try:
            device = service.revoke_device(args.device_id)
        except KeyError:
            raise CliError(f"unknown device {args.device_id}") from None
    # The broker refuses the certificate at the next handshake (CRL) and the ACL denies the
    # id; the running central's MQTT side also polls the registry (see central.mqtt).
    ca = CertificateAuthority.load_or_create(config.ca_dir)
    ca.revoke(device.device_id)
    ca.write_crl(config.ca_dir / CRL_FILE)
    _print(args, device.to_dict(), f"device: {device.device_id} {device.state}")
    return 0


def cmd_device_list(args: argparse.Namespace) -> int:
    with _service(_config(args)) as service:
        devices = service.devices()
    lines = [f"{d.device_id}\t{d.state}\t{d.commune_name}" for d in devices]
    _print(args, [d.to_dict() for d in devices], "\n".join(lines) or "(no device)")
    return 0


# --- request status ----------------------------------------------------------------------


def cmd_status_advance(args: argparse.Namespace) -> int:
    with _service(_config(args)) as service:
        try:
            status = service.advance_status(args.number, Stage(args.stage), note=args.note)
        except RejectedError as exc:
            raise CliError(exc.rejection.message_fr) from None
        except StageTransitionError as exc:
            raise CliError(str(exc)) from None
    _print(
        args, status.to_dict(), f"{format_request_number(status.request_number)}: {status.stage}"
    )
    return 0


def cmd_status_show(args: argparse.Namespace) -> int:
    with _service(_config(args)) as service:
        status = service.request_status(args.number)
    if isinstance(status, Rejection):
        if args.json:
            print(json.dumps(status.to_dict(), ensure_ascii=False))
            return 1
        raise CliError(f"{status.code}: {status.message_fr}")
    lines = [f"{format_request_number(status.request_number)}: {status.stage}"]
    lines += [f"  {e.at:%Y-%m-%d %H:%M} {e.stage}" for e in status.history]
    _print(args, status.to_dict(), "\n".join(lines))
    return 0


# --- keys --------------------------------------------------------------------------------


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    config = _config(args)
    keys = CentralKeyring.rotate_recipient_key(config.key_dir)
    data = {
        "recipient_key_fingerprint": keys.recipient_public.fingerprint,
        "kept_keys": sorted(keys.decryption_keys),
    }
    _print(args, data, "\n".join(f"{k}: {v}" for k, v in data.items()))
    return 0


# --- privacy: retention, audit, data report ---------------------------------------------


def _retention_policy(config: CentralConfig) -> RetentionPolicy:
    try:
        return RetentionPolicy.from_mapping(config.retention)
    except ValueError as exc:
        raise ConfigError(config.source, "retention", str(exc)) from None


def cmd_retention_run(args: argparse.Namespace) -> int:
    config = _config(args)
    policy = _retention_policy(config)
    with _service(config) as service:
        run = run_retention(service, policy, dry_run=args.dry_run, actor=audit_events.OPERATOR)
    verb = "would delete" if run.dry_run else "deleted"
    lines = [f"retention: {verb} {len(run.actions) if run.dry_run else run.done}"]
    lines += [f"  {a.kind} {a.subject} ({a.rule}, since {a.since:%Y-%m-%d})" for a in run.actions]
    if run.skipped:
        lines.append(f"  {run.skipped} changed meanwhile, left for the next run")
    _print(args, run.to_dict(), "\n".join(lines))
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    config = _config(args)
    path = Path(args.file) if args.file else config.audit_path
    if path is None or not path.is_file():
        raise CliError(f"no audit log at {path}", status=2)
    keys = CentralKeyring.load(config.key_dir)
    public = keys.signing.public_key
    report = verify_audit_file(path, public_keys={audit_key_id(public): public})
    data = {
        "file": str(path),
        "ok": report.ok,
        "entries": report.entries,
        "signed_heads": report.signed_heads,
        "problems": [{"seq": p.seq, "kind": p.kind, "detail": p.detail} for p in report.problems],
    }
    text = f"audit {path}: {report.entries} entries, {report.signed_heads} signed heads, " + (
        "intact" if report.ok else f"{len(report.problems)} problem(s)"
    )
    text += "".join(f"\n  {problem}" for problem in report.problems)
    _print(args, data, text)
    return 0 if report.ok else 1


def cmd_report(args: argparse.Namespace) -> int:
    config = _config(args)
    policy = _retention_policy(config)
    with _service(config) as service:
        report = data_report(service, args.number, policy=policy)
    if isinstance(report, Rejection):
        print(json.dumps(report.to_dict(), ensure_ascii=False), file=sys.stderr)
        return 1
    print(json.dumps(report, ensure_ascii=False, indent=2))
    return 0


# --- serve -------------------------------------------------------------------------------


async def _serve(config: CentralConfig) -> None:
    from aiohttp import web

    from central.http import build_app

    service = _service(config)
    policy = _retention_policy(config)
    app = build_app(service, operator_token=config.operator_token(), retention=policy)
    if config.dashboard:
        from central.dashboard import attach_dashboard
        from central.dashboard.feed import FleetSource

        # FleetSource.devices() is declared as list[FleetDevice]; list is invariant, so
        # CentralService (list[Device], a FleetDevice) fits only through a cast.
        attach_dashboard(app, service=cast("FleetSource", service), config=config)
    runner = web.AppRunner(app)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        site = web.TCPSite(runner, config.http_host, config.http_port)
        await site.start()
        log.info("central serving", extra={"http": f"{config.http_host}:{config.http_port}"})
        print(f"central: http://{config.http_host}:{config.http_port}/", flush=True)
        mqtt_main = _mqtt_entry_point()
        async with asyncio.TaskGroup() as tasks:
            if mqtt_main is not None and config.mqtt:
                mqtt_task = tasks.create_task(mqtt_main(service, config))
            else:
                mqtt_task = None
            retention_task = tasks.create_task(retention_loop(service, policy))
            await stop.wait()
            retention_task.cancel()
            if mqtt_task is not None:
                mqtt_task.cancel()
    finally:
        await runner.cleanup()
        service.close()


def _mqtt_entry_point() -> Any:
    """``central.mqtt.serve(service, config)`` when the link's MQTT side is installed."""
    try:
        module = importlib.import_module("central.mqtt")
    except ImportError:
        return None
    return getattr(module, "serve", None)


def cmd_serve(args: argparse.Namespace) -> int:
    config = _config(args)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve(config))
    except ExceptionGroup as group:
        # A task of the TaskGroup (the MQTT side) failed at start: report its configuration
        # or key problem like any other command would, not as a traceback.
        for kind in (ConfigError, KeyFileError):
            found = group.subgroup(kind)
            if found is not None:
                raise found.exceptions[0] from group
        raise
    return 0


# --- parser ------------------------------------------------------------------------------


def _prerequest_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from-json", metavar="FILE", help="CERFA fields as a JSON object")
    parser.add_argument("--surname")
    parser.add_argument("--usage-name")
    parser.add_argument("--given-names")
    parser.add_argument("--sex", choices=["F", "M"])
    parser.add_argument("--birth-date", metavar="YYYY-MM-DD")
    parser.add_argument("--birth-place")
    parser.add_argument("--nationality", default="française")
    parser.add_argument("--address", help="street address")
    parser.add_argument("--postcode")
    parser.add_argument("--city")
    parser.add_argument("--height", type=int, default=0, help="height in cm")
    parser.add_argument("--eyes", help="eye colour")
    parser.add_argument(
        "--reason", choices=[r.value for r in RequestReason], default=RequestReason.FIRST_REQUEST
    )
    for who in ("father", "mother"):
        parser.add_argument(f"--{who}-surname")
        parser.add_argument(f"--{who}-given-names")
    parser.add_argument("--number", help="use this pre-request number (tests, imports)")
    parser.add_argument(
        "--status", choices=["validated", "declared"], default="validated", help="initial status"
    )
    parser.add_argument("--pdf", metavar="FILE", help="write the recap PDF here")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dr-central", description="DR central service")
    parser.add_argument("--config", metavar="FILE", help="TOML config (or $DR_CENTRAL_CONFIG)")
    parser.add_argument("--data-dir", metavar="DIR", help="override central.data_dir")
    parser.add_argument(
        "--log-level", default=None, help="DEBUG, INFO, WARNING (default: INFO for serve)"
    )
    json_flag = argparse.ArgumentParser(add_help=False)
    json_flag.add_argument("--json", action="store_true", help="print JSON")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("init", parents=[json_flag], help="create keys, CA and database").set_defaults(
        func=cmd_init
    )
    sub.add_parser(
        "check-config", parents=[json_flag], help="validate the configuration"
    ).set_defaults(func=cmd_check_config)
    sub.add_parser("serve", help="run the HTTP API, citizen page and MQTT side").set_defaults(
        func=cmd_serve
    )

    pre = sub.add_parser("prerequest", help="pre-requests").add_subparsers(
        dest="action", required=True
    )
    create = pre.add_parser("create", parents=[json_flag], help="record a pre-request")
    _prerequest_options(create)
    create.set_defaults(func=cmd_prerequest_create)
    show = pre.add_parser("show", parents=[json_flag], help="show a pre-request")
    show.add_argument("number")
    show.add_argument("--pdf", metavar="FILE")
    show.set_defaults(func=cmd_prerequest_show)

    stamp = sub.add_parser("stamp", help="tax stamps").add_subparsers(dest="action", required=True)
    screate = stamp.add_parser("create", parents=[json_flag], help="record tax stamps")
    screate.add_argument("--amount", default="25", help="25 or 12.50 (Guyane)")
    screate.add_argument("--count", type=int, default=1)
    screate.add_argument("--number", help="use this stamp number (with --count 1)")
    screate.set_defaults(func=cmd_stamp_create)
    scancel = stamp.add_parser("cancel", parents=[json_flag], help="cancel an unused stamp")
    scancel.add_argument("number")
    scancel.set_defaults(func=cmd_stamp_cancel)

    device = sub.add_parser("device", help="device registry").add_subparsers(
        dest="action", required=True
    )
    prov = device.add_parser("provision", parents=[json_flag], help="provision a device")
    prov.add_argument("device_id", metavar="ID", help="dr-<INSEE commune>-<station>")
    prov.add_argument("--commune", required=True, help="commune name")
    prov.add_argument("--out", required=True, metavar="DIR", help="bundle directory")
    prov.add_argument("--replace", action="store_true", help="re-provision an existing id")
    prov.set_defaults(func=cmd_device_provision)
    revoke = device.add_parser("revoke", parents=[json_flag], help="revoke a device")
    revoke.add_argument("device_id", metavar="ID")
    revoke.set_defaults(func=cmd_device_revoke)
    device.add_parser("list", parents=[json_flag], help="list devices").set_defaults(
        func=cmd_device_list
    )

    status = sub.add_parser("status", help="request status").add_subparsers(
        dest="action", required=True
    )
    advance = status.add_parser("advance", parents=[json_flag], help="move a request on")
    advance.add_argument("number")
    advance.add_argument("stage", choices=[s.value for s in Stage])
    advance.add_argument("--note", default="")
    advance.set_defaults(func=cmd_status_advance)
    sshow = status.add_parser("show", parents=[json_flag], help="show a request's status")
    sshow.add_argument("number")
    sshow.set_defaults(func=cmd_status_show)

    retention = sub.add_parser("retention", help="retention policy").add_subparsers(
        dest="action", required=True
    )
    rrun = retention.add_parser("run", parents=[json_flag], help="delete what is due")
    rrun.add_argument("--dry-run", action="store_true", help="list what is due, delete nothing")
    rrun.set_defaults(func=cmd_retention_run)
    audit = sub.add_parser("audit", help="audit trail").add_subparsers(dest="action", required=True)
    averify = audit.add_parser("verify", parents=[json_flag], help="check the hash chain")
    averify.add_argument("--file", help="audit file (default: [audit] path)")
    averify.set_defaults(func=cmd_audit_verify)
    report = sub.add_parser("report", help="a request's data report (JSON)")
    report.add_argument("number", help="request number")
    report.set_defaults(func=cmd_report)

    keys = sub.add_parser("keys", help="central's keys").add_subparsers(
        dest="action", required=True
    )
    keys.add_parser(
        "rotate", parents=[json_flag], help="new HPKE recipient key (old ones kept)"
    ).set_defaults(func=cmd_keys_rotate)

    bundle = sub.add_parser(
        "support-bundle", help="write a .tar.gz for support (versions, redacted config, logs)"
    )
    bundle.add_argument("-o", "--output", required=True, help="archive to write (F.tar.gz)")
    bundle.add_argument("--log-file", action="append", default=[], help="include this log's tail")
    bundle.add_argument("--lines", type=int, default=2000, help="journal lines to include")
    bundle.set_defaults(func=cmd_support_bundle)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.json = getattr(args, "json", False)
    configure_logging(level=args.log_level or ("INFO" if args.command == "serve" else "WARNING"))
    try:
        status: int = args.func(args)
    except ConfigError as exc:
        print(f"dr-central: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyFileError as exc:
        print(f"dr-central: {exc} (run 'dr-central init' first?)", file=sys.stderr)
        return 2
    except FormError as exc:
        print(f"dr-central: invalid field {exc.field}: {exc.reason}", file=sys.stderr)
        return 2
    except IdentifierError as exc:
        print(f"dr-central: {exc}", file=sys.stderr)
        return 2
    except CliError as exc:
        print(f"dr-central: {exc}", file=sys.stderr)
        return exc.status
    return status


if __name__ == "__main__":
    sys.exit(main())
