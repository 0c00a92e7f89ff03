"""``dynprov notify EVENT MAC``: tell the controller what happened to a VM.

The operator (or a hypervisor hook) acting as the external management entity:
``dynprov notify migrating 00:fa:00:00:00:01 --server s21``. Needs an admin
token (``ryu_apps.cli.rest_client`` says where it is looked for).
"""

from __future__ import annotations

import sys
from typing import Any, Tuple, Union

from ryu_apps.cli import rest_client
from ryu_apps.cli.rest_client import ADMIN, ControllerError, RestTarget
from ryu_apps.core.lifecycle import Notice

PATH = "/dynprov/notifications"


def register(subparsers) -> None:
    """Add the ``notify`` subcommand."""
    parser = subparsers.add_parser(
        "notify", help="tell a running controller that a VM started, stopped, moves, ...",
        description="Send a resource change notification to a running dynprov controller "
                    "(needs an admin token).")
    parser.add_argument("event", choices=[n.value for n in Notice])
    parser.add_argument("mac", help="the VM's MAC address")
    parser.add_argument("--server", help="destination server (migrating) or server the VM "
                        "starts on (started): bridge name or datapath id")
    parser.add_argument("--template", help="new template id (template-change), e.g. 252 "
                        "or 0x00FC")
    rest_client.add_arguments(parser, None)
    parser.set_defaults(func=run)


def send(target: Union[RestTarget, str], body: dict, timeout: float = 10.0
         ) -> Tuple[int, Any]:
    """POST a notification; (HTTP status, JSON answer).

    ``target`` is a RestTarget (URL, token, CA) or a bare URL (no token).
    Raises ControllerError when the controller cannot be reached.
    """
    if isinstance(target, str):
        target = RestTarget(target.rstrip("/"))
    return rest_client.call(target, "POST", PATH, body, timeout)


def run(args) -> int:
    """Send the notification; 0 when acknowledged, 1 unreachable, 2 refused."""
    body = {"event": args.event, "mac": args.mac}
    if args.server:
        body["server"] = args.server
    if args.template:
        body["template"] = args.template
    try:
        target = rest_client.target_from_args(args, ADMIN)
        status, answer = send(target, body)
    except ControllerError as error:
        print(f"dynprov: error: {error}", file=sys.stderr)
        return 1
    if status in (401, 403):
        print(f"dynprov: error: {rest_client.refusal(target, status, PATH, answer)}",
              file=sys.stderr)
        return 2
    if status != 200:
        refusal = answer.get("error", answer) if isinstance(answer, dict) else answer
        print(f"dynprov: error: {refusal}", file=sys.stderr)
        return 2
    print(f"{args.event} {args.mac}: {answer['acknowledged']}")
    return 0
