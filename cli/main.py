"""The `waybill` command: run the system, run the tests, tokens, traces, dead letters,
the local mail sink's messages, event catalogue."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from services.common.settings import PROJECT_ROOT, SharedSettings


def _cmd_up(args: argparse.Namespace) -> int:
    from cli.launcher import up

    return up()


def _cmd_test(args: argparse.Namespace) -> int:
    env = dict(os.environ)
    if args.postgres:
        env["WAYBILL_TEST_DB"] = "postgres"
    argv = [sys.executable, "-m", "pytest", *args.pytest_args]
    return subprocess.call(argv, cwd=PROJECT_ROOT, env=env)


def _cmd_lint(args: argparse.Namespace) -> int:
    bin_dir = Path(sys.executable).parent
    paths = ["cli", "services", "workflows", "bench", "tests"]
    steps = [
        [str(bin_dir / "ruff"), "check", *paths],
        [str(bin_dir / "ruff"), "format", "--check", *paths],
        [str(bin_dir / "mypy")],
    ]
    for step in steps:
        print("$", Path(step[0]).name, *step[1:], flush=True)
        code = subprocess.call(step, cwd=PROJECT_ROOT)
        if code:
            return code
    return 0


def _login() -> str:
    """The local user's login name (`local` where there is none, as in some containers)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "local"


def _cmd_token(args: argparse.Namespace) -> int:
    from services.common.auth import STAFF, Role, issue_token, staff_subject

    settings = SharedSettings()
    subject = args.subject
    if subject is None and Role(args.role) in STAFF:
        subject = staff_subject(args.role, args.user or _login())
    try:
        token = issue_token(
            settings.resolved_jwt_secret(),
            args.role,
            subject=subject,
            customer_id=args.customer_id,
            supplier_id=args.supplier_id,
            ttl_seconds=args.ttl,
            issuer=settings.jwt_issuer,
        )
    except (ValueError, RuntimeError) as exc:
        print(f"waybill token: {exc}", file=sys.stderr)
        return 2
    print(token)
    return 0


def _cmd_trace(args: argparse.Namespace) -> int:
    from services.common.telemetry import (
        group_traces,
        load_spans,
        render_tree,
        root_name,
        trace_dir,
        traces_about,
    )

    directory = trace_dir(SharedSettings().var_dir)
    traces = group_traces(load_spans(directory))
    if args.order:
        about = traces_about([s for t in traces.values() for s in t], args.order)
        if not about:
            print(f"no traces mention {args.order} in {directory}", file=sys.stderr)
            return 1
        for trace_id, spans in about.items():
            started = datetime.fromtimestamp(spans[0]["start_ns"] / 1e9, UTC)
            stamp = started.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
            print(f"== {stamp}  trace {trace_id}  {root_name(spans)}")
            print(render_tree(spans), end="\n\n")
        return 0
    if args.trace_id:
        wanted = args.trace_id.lower()
        found = [t for t in traces if t.startswith(wanted)]
        if not found:
            print(f"no spans for trace {args.trace_id} in {directory}", file=sys.stderr)
            return 1
        if len(found) > 1:
            print(f"{args.trace_id} is the start of {len(found)} traces:", file=sys.stderr)
            for trace_id in found:
                print(f"  {trace_id}  {root_name(traces[trace_id])}", file=sys.stderr)
            return 2
        print(render_tree(traces[found[0]]))
        return 0
    for trace_id, spans in list(traces.items())[-args.last :]:
        print(f"{trace_id}  {len(spans):>4} spans  {root_name(spans)}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    import asyncio

    from cli.demo import Api, run_demo
    from cli.launcher import endpoints_from_var

    base = SharedSettings()
    settings = SharedSettings(**endpoints_from_var(base.var_dir))

    async def go() -> None:
        api = Api.from_settings(settings)
        try:
            await run_demo(api)
        finally:
            await api.close()

    try:
        asyncio.run(go())
    except Exception as exc:
        print(f"waybill demo: {exc} (is `./waybill up` running?)", file=sys.stderr)
        return 1
    return 0


def _cmd_deadletters(args: argparse.Namespace) -> int:
    """List, show, replay or discard dead letters on the NATS of `waybill up` (from
    var/endpoints.json) or of WAYBILL_NATS_URL."""
    import asyncio

    from nats.errors import Error as NatsError

    from cli.launcher import endpoints_from_var
    from services.common.bus import Bus
    from services.common.deadletters import DeadLetter, DeadLetters
    from services.common.problems import ProblemError

    base = SharedSettings()
    settings = SharedSettings(**endpoints_from_var(base.var_dir))
    who = args.by or os.environ.get("USER") or "cli"

    def line(letter: DeadLetter) -> str:
        handled = f"  [{letter.state} by {letter.handled_by}]" if letter.state != "open" else ""
        return (
            f"{letter.id:>6}  {letter.subject:<34} {letter.consumer:<26} "
            f"{letter.attempts:>4}x  {letter.first_failure:%Y-%m-%d %H:%M:%S} .. "
            f"{letter.last_failure:%H:%M:%S}  {letter.error[:80]}{handled}"
        )

    async def go() -> int:
        bus = Bus(settings.nats_url, "waybill-cli")
        await bus.connect()
        letters = DeadLetters(bus)
        try:
            if args.action == "list":
                found = await letters.find(subject=args.subject, all_states=args.all)
                print(f"{'ID':>6}  {'SUBJECT':<34} {'CONSUMER':<26} TRIES  FIRST .. LAST  ERROR")
                for letter in found:
                    print(line(letter))
                print(f"{len(found)} dead letter(s)")
            elif args.action == "show":
                print(json.dumps(await letters.show(args.ids[0]), indent=2, default=str))
            elif args.action == "replay":
                if args.all:
                    if not args.subject:
                        print("waybill deadletters: replay --all needs --subject", file=sys.stderr)
                        return 2
                    done = await letters.replay_all(args.subject, who)
                else:
                    done = [await letters.replay(i, who) for i in args.ids]
                for letter in done:
                    print(f"replayed {letter.id} as stream message {letter.replayed_as}")
            elif args.action == "discard":
                letter = await letters.discard(args.ids[0], who, args.reason or "")
                print(f"discarded {letter.id}: {letter.reason}")
        except ProblemError as exc:
            print(f"waybill deadletters: {exc.detail or exc.title}", file=sys.stderr)
            return 1
        except NatsError as exc:
            print(f"waybill deadletters: NATS refused: {exc!r}", file=sys.stderr)
            return 1
        finally:
            await bus.close()
        return 0

    if args.action in ("show", "discard") and len(args.ids) != 1:
        print(f"waybill deadletters {args.action}: give one ID", file=sys.stderr)
        return 2
    if args.action == "replay" and not args.ids and not args.all:
        print("waybill deadletters replay: give IDs, or --all --subject S", file=sys.stderr)
        return 2
    if args.action == "discard" and not args.reason:
        print("waybill deadletters discard: --reason is required", file=sys.stderr)
        return 2
    try:
        return asyncio.run(go())
    except OSError as exc:
        print(
            f"waybill deadletters: cannot reach NATS at {settings.nats_url}: {exc}", file=sys.stderr
        )
        return 1


def _cmd_mail(args: argparse.Namespace) -> int:
    """What the local mail sink of `waybill up` received (var/mail/)."""
    from cli import mailsink

    directory = Path(SharedSettings().var_dir) / "mail"
    if args.action == "list":
        found = mailsink.messages(directory)
        for m in found[-args.last :] if args.last else found:
            print(f"{m.id}  {m.date[:19]}  {m.to[:40]:<40}  {m.subject}")
        if not found:
            print(f"no mail in {directory}")
        return 0
    if not args.id:
        print("waybill mail show: give one ID (from `waybill mail list`)", file=sys.stderr)
        return 2
    received = mailsink.message(directory, args.id)
    if received is None:
        print(f"waybill mail show: no message {args.id} in {directory}", file=sys.stderr)
        return 1
    if args.raw:
        print((directory / f"{received.id}.eml").read_text(errors="replace"))
        return 0
    print(f"Id:      {received.id}\nDate:    {received.date}\nFrom:    {received.sender}")
    print(f"To:      {received.to}\nSubject: {received.subject}\n")
    print(received.text())
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.bench_args[:1] == ["recall"]:  # `waybill bench recall [--consignees N]`
        from bench.recall_fanout import main as recall_main

        return recall_main(args.bench_args[1:])
    if args.bench_args[:1] == ["replenishment"]:  # `waybill bench replenishment [--pairs ...]`
        from bench.replenishment import main as replenishment_main

        return replenishment_main(args.bench_args[1:])
    from bench.order_pipeline import main as bench_main

    return bench_main(args.bench_args)


def _cmd_asyncapi(args: argparse.Namespace) -> int:
    from services.common.events import asyncapi_document

    print(json.dumps(asyncapi_document(), indent=2))
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="waybill", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("up", help="run the whole system (NATS, Temporal, services, worker, bridge)")

    test = sub.add_parser("test", help="run the test suite against real NATS/Temporal/DB")
    test.add_argument(
        "--postgres",
        action="store_true",
        help="use PostgreSQL (WAYBILL_TEST_PG_URL, default 127.0.0.1:5432)",
    )
    test.add_argument("pytest_args", nargs=argparse.REMAINDER, help="passed to pytest")

    sub.add_parser("lint", help="ruff and mypy")

    token = sub.add_parser("token", help="print a bearer token for local use")
    token.add_argument(
        "--role", required=True, choices=["coordinator", "customer", "supplier", "ops", "service"]
    )
    token.add_argument("--customer-id")
    token.add_argument("--supplier-id")
    token.add_argument(
        "--user", help="staff: the user the token names (subject <role>:<user>; default: login)"
    )
    token.add_argument("--subject", help="the token's subject as is (overrides --user)")
    token.add_argument("--ttl", type=int, default=12 * 3600, help="seconds")

    trace = sub.add_parser(
        "trace",
        help="print one trace's span tree, every trace of an order, or list recent traces",
    )
    trace.add_argument("trace_id", nargs="?", help="a trace id or its first characters")
    trace.add_argument(
        "--order", metavar="ORDER_ID", help="every trace that acted on this order, in order"
    )
    trace.add_argument("--last", type=int, default=20, help="how many recent traces to list")

    dead = sub.add_parser(
        "deadletters",
        help="dead letters: list | show ID | replay ID... | replay --all --subject S | "
        "discard ID --reason R",
    )
    dead.add_argument("action", choices=["list", "show", "replay", "discard"])
    dead.add_argument("ids", nargs="*", type=int, metavar="ID")
    dead.add_argument("--subject", help="original subject (NATS wildcards allowed)")
    dead.add_argument("--all", action="store_true", help="list: handled ones too; replay: all")
    dead.add_argument("--reason", help="discard: why")
    dead.add_argument("--by", help="who is acting (default $USER)")

    mail = sub.add_parser("mail", help="what the local mail sink received: list | show ID [--raw]")
    mail.add_argument("action", choices=["list", "show"])
    mail.add_argument("id", nargs="?", metavar="ID")
    mail.add_argument("--last", type=int, default=0, help="list: only the last N")
    mail.add_argument("--raw", action="store_true", help="show: the message as received")

    sub.add_parser("asyncapi", help="print the event catalogue as an AsyncAPI document")
    sub.add_parser("demo", help="push demo orders through the running system to delivered")
    sub.add_parser(
        "bench",
        add_help=False,  # `waybill bench --help` shows the benchmark's own options
        help="benchmark orders through a private system: [--orders N] [--out PATH] ...; "
        "also `bench recall`, `bench replenishment`",
    )

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["test"] and not {"-h", "--help"} & set(argv[1:2]):
        # Everything after `test` belongs to pytest (argparse would split `-p name`).
        rest = argv[1:]
        postgres = "--postgres" in rest
        sys.exit(
            _cmd_test(
                argparse.Namespace(
                    postgres=postgres, pytest_args=[a for a in rest if a != "--postgres"]
                )
            )
        )
    args, extra = parser.parse_known_args(argv)
    if args.command == "bench":
        args.bench_args = extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    handlers = {
        "up": _cmd_up,
        "test": _cmd_test,
        "lint": _cmd_lint,
        "token": _cmd_token,
        "trace": _cmd_trace,
        "asyncapi": _cmd_asyncapi,
        "demo": _cmd_demo,
        "bench": _cmd_bench,
        "deadletters": _cmd_deadletters,
        "mail": _cmd_mail,
    }
    sys.exit(handlers[args.command](args))
