"""Hostile input for the fuzzer and the storms (issue 11's targets).

- :mod:`.frames`: Ethernet frames a VM or a host on a free port may send:
  random bytes, truncated frames, group and zero MACs, unknown templates,
  802.1Q and QinQ tags, forged LLDP (unsigned, garbage-signed, mangled), beacons.
- :mod:`.packet_ins`: PACKET_IN messages, well-formed and malformed, and how
  Ryu's own parser takes each (parsed, rejected, or fatal to the connection).
- :mod:`.fuzz_driver`: emulated switches (:mod:`benchmarks.ofload`) that drive
  them at a real controller, replay the controller's own captured probes, and
  count the drop flows it sends back.
- :mod:`.controller_watch`: what the controller did: RSS, log, links.
"""
