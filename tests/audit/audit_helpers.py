"""Helpers shared by the audit tests (module name unique across tests/)."""

from __future__ import annotations

from audit import events as ev


def gate_event(i: int) -> ev.GateDecision:
    return ev.GateDecision(
        gate_id="gate-07",
        card_id=f"card-{i % 97:04d}",
        decision="granted" if i % 5 else "refused",
        reason_code="match" if i % 5 else "no-match",
        security_level=1 + i % 3,
        total_ms=300 + i % 200,
    )


def run_cli(argv: list[str]) -> int:
    """`cardbound ...` restricted to the audit sub-commands: same parsing, home resolution and error handling as
    `cardbound.cli.main`, without importing the other areas' command modules (their work in progress must not
    turn these tests red). `test_cli_wiring` checks the real composition root separately."""
    import argparse

    from audit import cli as audit_cli
    from cardbound.cli import dispatch
    from cardbound.home import Home

    parser = argparse.ArgumentParser(prog="cardbound")
    parser.add_argument("--home")
    audit_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    args.home_dir = Home.resolve(args.home)
    return dispatch(args.handler, args)
