"""``dynprov notify EVENT MAC``: tell the controller what happened to a VM.

The operator (or a hypervisor hook) acting as the external management entity:
``dynprov notify migrating 00:fa:00:00:00:01 --server s21``.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request

from ryu_apps.core.lifecycle import Notice

DEFAULT_CONTROLLER = "http://127.0.0.1:8080"


def register(subparsers) -> None:
    """Add the ``notify`` subcommand."""
    parser = subparsers.add_parser(
        "notify", help="tell a running controller that a VM started, stopped, moves, ...",
        description="Send a resource change notification to a running dynprov controller.")
    parser.add_argument("event", choices=[n.value for n in Notice])
    parser.add_argument("mac", help="the VM's MAC address")
    parser.add_argument("--server", help="destination server (migrating) or server the VM "
                        "starts on (started): bridge name or datapath id")
    parser.add_argument("--template", help="new template id (template-change), e.g. 252 "
                        "or 0x00FC")
    parser.add_argument("--controller", default=DEFAULT_CONTROLLER, metavar="URL",
                        help=f"the controller's REST API (default {DEFAULT_CONTROLLER})")
    parser.set_defaults(func=run)


def send(controller: str, body: dict, timeout: float = 10.0) -> tuple[int, dict]:
    """POST a notification; (HTTP status, JSON answer). OSError if unreachable."""
    request = urllib.request.Request(
        controller.rstrip("/") + "/dynprov/notifications", method="POST",
        data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def run(args) -> int:
    """Send the notification; 0 when acknowledged."""
    body = {"event": args.event, "mac": args.mac}
    if args.server:
        body["server"] = args.server
    if args.template:
        body["template"] = args.template
    try:
        status, answer = send(args.controller, body)
    except (OSError, ValueError) as error:
        print(f"dynprov: error: cannot reach the dynprov controller at {args.controller}: "
              f"{error}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"dynprov: error: {answer.get('error', answer)}", file=sys.stderr)
        return 2
    print(f"{args.event} {args.mac}: {answer['acknowledged']}")
    return 0
