"""Read a switch's flows and their counters through Ryu's ofctl service, with a timeout."""

from __future__ import annotations

import logging
from typing import Dict, List, Optional, Tuple

from ryu_apps.app.framework import hub, ofctl_api, ofctl_exception

from ryu_apps.app import openflow
from ryu_apps.rest.guard import INTERNAL_ERROR
from ryu_apps.rest.views import FlowStat

#: Seconds to wait for one switch's flow stats before reporting it as silent.
STATS_TIMEOUT = 2.0


class SwitchSilent(Exception):
    """A switch did not answer a stats request (disconnected, error or timeout)."""


def read_flows(app, dpid: int, cookie: int, mask: int,
               timeout: float = STATS_TIMEOUT) -> List[FlowStat]:
    """The flows of one switch whose cookie matches ``cookie`` under ``mask``.

    Raises SwitchSilent when the switch is not connected, refuses the request
    or does not answer within ``timeout`` seconds.
    """
    datapath = app.datapaths.get(dpid)
    if datapath is None:
        raise SwitchSilent("switch not connected")
    parser, ofp = datapath.ofproto_parser, datapath.ofproto
    request = parser.OFPFlowStatsRequest(datapath, 0, ofp.OFPTT_ALL, ofp.OFPP_ANY,
                                         ofp.OFPG_ANY, cookie, mask, parser.OFPMatch())
    silent = SwitchSilent(f"no flow stats reply within {timeout:g} s")
    try:
        with hub.Timeout(timeout, silent):
            replies = ofctl_api.send_msg(app, request, reply_cls=parser.OFPFlowStatsReply,
                                         reply_multi=True)
    except ofctl_exception.InvalidDatapath:
        raise SwitchSilent("switch disconnected") from None
    except ofctl_exception.OFError as error:
        raise SwitchSilent(f"switch refused the flow stats request: {error}") from None
    return [_flow_stat(dpid, entry) for reply in replies for entry in reply.body]


def _flow_stat(dpid: int, entry) -> FlowStat:
    return FlowStat(openflow.spec_from_stats(dpid, entry), entry.packet_count,
                    entry.byte_count, entry.duration_sec + entry.duration_nsec / 1e9)


def read_many(app, requests: Dict[int, Tuple[int, int]], timeout: float = STATS_TIMEOUT
              ) -> Dict[int, Tuple[Optional[List[FlowStat]], Optional[str]]]:
    """``read_flows`` on several switches at once: dpid -> (flows, None) or (None, why)."""
    def one(dpid: int, cookie: int, mask: int):
        try:
            return read_flows(app, dpid, cookie, mask, timeout), None
        except SwitchSilent as why:
            return None, str(why)
        except Exception:  # a bug must not cost the other switches' answers
            app.logger.exception("reading the flows of switch %016x failed", dpid)
            return None, INTERNAL_ERROR

    threads = {dpid: hub.spawn(one, dpid, *request) for dpid, request in requests.items()}
    return {dpid: thread.wait() for dpid, thread in threads.items()}


#: What the ofctl service says of replies to the app's own barriers and flow-mods.
_OFCTL_NOISE = ("unknown barrier xid", "unknown error xid")


def quiet_ofctl_service() -> None:
    """Keep the ofctl service from logging replies meant for the app itself.

    The service sees every barrier reply and error of the switch; those that
    answer dynprov's own barriers and flow-mods are not its business (the app
    logs switch errors itself). Dropped before a log record is made: one per
    barrier reply would cost more than the reply's own handling.
    """
    logger = logging.getLogger("OfctlService")
    if getattr(logger, "dynprov_quiet", False):
        return

    def error(msg, *args, **kwargs) -> None:
        if not (isinstance(msg, str) and msg.startswith(_OFCTL_NOISE)):
            logging.Logger.error(logger, msg, *args, **kwargs)

    vars(logger).update(error=error, dynprov_quiet=True)   # this logger only
