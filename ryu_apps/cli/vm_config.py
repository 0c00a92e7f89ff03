"""``dynprov vm-config``: libvirt ``<interface>`` elements for VMs of a template.

Each VM gets a MAC that encodes its template (the identifier scheme), an
interface id (a UUID: libvirt writes it to the OVS port's
``external_ids:iface-id``, beside ``attached-mac``) and the bridge, as::

    <interface type='bridge'>
      <mac address='00:fa:5c:19:0e:73'/>
      <source bridge='s11'/>
      <virtualport type='openvswitch'>
        <parameters interfaceid='5b1c...'/>
      </virtualport>
      <model type='virtio'/>
    </interface>

A MAC is never one that is bound now (asked of the controller's REST API when
it answers; ``--offline`` skips it) or listed in ``--inventory`` (any text: every
MAC in it counts); ``--record`` appends the new MACs to that inventory.
docs/hypervisors.md shows it with ``virsh attach-device`` and etc/libvirt/.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import uuid
from pathlib import Path
from typing import Iterable, List, Optional, Set
from xml.etree import ElementTree

from ryu_apps.cli import rest_client
from ryu_apps.cli.mac import DEFAULT_SCHEME, SCHEME_HELP, _number
from ryu_apps.cli.rest_client import READER, ControllerError, fetch_json
from ryu_apps.core.identifiers import IdentifierError, normalise_mac
from ryu_apps.loaders.scheme_config import load_scheme

EXIT_OK, EXIT_BAD_INPUT, EXIT_UNREACHABLE = 0, 2, 3
#: Random unique ids tried per VM before giving up (the template's space is full).
ATTEMPTS = 1000
MAX_VMS = 4096
_MAC_TEXT = re.compile(r"\b[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}\b")


def register(subparsers) -> None:
    """Add the ``vm-config`` subcommand."""
    parser = subparsers.add_parser(
        "vm-config", help="write libvirt <interface> elements for VMs of a template",
        description="Print (or write to --output-dir, one NAME.xml per VM) the libvirt "
                    "<interface> element of one or N VMs of TEMPLATE on an Open vSwitch "
                    "bridge: a MAC encoding the template, never one bound now or in the "
                    "inventory, and an interface id (OVSDB external_ids:iface-id).")
    parser.add_argument("--template", required=True, type=_number, metavar="N",
                        help="template id (decimal or 0x hex)")
    parser.add_argument("--bridge", required=True, metavar="BRIDGE",
                        help="the server's Open vSwitch bridge (source bridge)")
    parser.add_argument("--count", type=int, default=1, metavar="N",
                        help=f"how many VMs (1..{MAX_VMS}, default 1)")
    parser.add_argument("--name", default="vm", metavar="PREFIX",
                        help="VM name prefix for --output-dir files (default vm)")
    parser.add_argument("--scheme", default=DEFAULT_SCHEME, metavar="SPEC", help=SCHEME_HELP)
    parser.add_argument("--model", default="virtio", help="NIC model (default virtio)")
    parser.add_argument("--inventory", metavar="FILE",
                        help="MACs already handed out (any text; every MAC in it counts)")
    parser.add_argument("--record", action="store_true",
                        help="append the new MACs to --inventory")
    parser.add_argument("--offline", action="store_true",
                        help="do not ask the controller which MACs are bound")
    parser.add_argument("--output-dir", metavar="DIR",
                        help="write NAME-K.xml files there instead of printing")
    parser.add_argument("--seed", type=_number, metavar="N",
                        help="seed of the random MACs and ids (repeatable output)")
    rest_client.add_arguments(parser, None)
    parser.set_defaults(func=run)


def interface_xml(bridge: str, mac: str, interface_id: str, model: str = "virtio") -> str:
    """One libvirt ``<interface>`` element (escaped, indented)."""
    interface = ElementTree.Element("interface", type="bridge")
    ElementTree.SubElement(interface, "mac", address=mac)
    ElementTree.SubElement(interface, "source", bridge=bridge)
    port = ElementTree.SubElement(interface, "virtualport", type="openvswitch")
    ElementTree.SubElement(port, "parameters", interfaceid=interface_id)
    ElementTree.SubElement(interface, "model", type=model)
    ElementTree.indent(interface, space="  ")
    return ElementTree.tostring(interface, encoding="unicode")


def macs_in(text: str) -> Set[str]:
    """Every MAC written in ``text``, canonical (lower case, colons)."""
    return {normalise_mac(found) for found in _MAC_TEXT.findall(text)}


def new_macs(scheme, template: int, count: int, taken: Set[str],
             rng: random.Random) -> List[str]:
    """``count`` MACs of ``template``, none in ``taken`` nor repeated.

    Raises IdentifierError when the template's unique ids run out.
    """
    chosen: List[str] = []
    seen = set(taken)
    for _ in range(count):
        for _attempt in range(ATTEMPTS):
            mac = scheme.encode(template, scheme.random_unique_id(rng, template))
            if mac not in seen:
                break
        else:
            raise IdentifierError(f"template {template}: no free MAC found in {ATTEMPTS} "
                                  f"tries ({len(seen)} taken): its unique ids run out")
        seen.add(mac)
        chosen.append(mac)
    return chosen


def run(args: argparse.Namespace) -> int:
    """``dynprov vm-config``."""
    if not 1 <= args.count <= MAX_VMS:
        return _fail(f"--count: expected 1..{MAX_VMS}, got {args.count}")
    if args.record and not args.inventory:
        return _fail("--record needs --inventory FILE (where to record the MACs)")
    try:
        scheme = load_scheme(args.scheme)
        taken = _inventory(args.inventory) | (set() if args.offline else _bound(args))
        rng = random.Random(args.seed)
        macs = new_macs(scheme, args.template, args.count, taken, rng)
    except IdentifierError as error:
        return _fail(error)
    except (OSError, ControllerError) as error:
        return _fail(error, EXIT_UNREACHABLE if isinstance(error, ControllerError)
                     else EXIT_BAD_INPUT)
    elements = [interface_xml(args.bridge, mac, str(uuid.UUID(int=rng.getrandbits(128),
                                                                 version=4)), args.model)
                for mac in macs]
    _emit(args, macs, elements)
    return EXIT_OK


def _emit(args: argparse.Namespace, macs: List[str], elements: List[str]) -> None:
    if args.output_dir:
        directory = Path(args.output_dir)
        directory.mkdir(parents=True, exist_ok=True)
        for index, element in enumerate(elements, 1):
            (directory / f"{args.name}-{index}.xml").write_text(element + "\n")
        print(f"wrote {len(elements)} interface file(s) to {directory}", file=sys.stderr)
    else:
        print("\n".join(elements))
    if args.record:
        with open(args.inventory, "a", encoding="utf-8") as inventory:
            inventory.writelines(f"{mac} template {args.template} bridge {args.bridge}\n"
                                 for mac in macs)


def _inventory(path: Optional[str]) -> Set[str]:
    if not path or not Path(path).exists():
        return set()
    return macs_in(Path(path).read_text(encoding="utf-8", errors="replace"))


def _bound(args: argparse.Namespace) -> Set[str]:
    """MACs the controller has bound; a warning and none when it does not answer."""
    target = rest_client.target_from_args(args, READER)
    try:
        bindings = fetch_json(target, "/dynprov/bindings?counters=false", timeout=5.0)
    except ControllerError as error:
        print(f"dynprov: warning: {error}; bound MACs not checked (--offline to silence)",
              file=sys.stderr)
        return set()
    return _macs_of(bindings)


def _macs_of(bindings: Iterable) -> Set[str]:
    return {b["mac"].lower() for b in bindings if isinstance(b, dict) and "mac" in b}


def _fail(error: object, status: int = EXIT_BAD_INPUT) -> int:
    print(f"dynprov: error: {error}", file=sys.stderr)
    return status
