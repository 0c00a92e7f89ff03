"""Hostile input for the fuzzer and the storms (issue 11's targets).

- :mod:`.frames`: Ethernet frames a VM or a host on a free port may send:
  random bytes, truncated frames, group and zero MACs, unknown templates,
  802.1Q and QinQ tags, forged LLDP (unsigned, garbage-signed, mangled), beacons.
- :mod:`.packet_ins`: PACKET_IN messages, well-formed and malformed, and how
  Ryu's own parser takes each (parsed, rejected, or fatal to the connection).
- :mod:`.fuzz_messages`: what the fuzzer sends, and from where: the mix, the
  replays of the controller's own captured probes.
- :mod:`.fuzz_driver`: sending it paced, the sentinels after it, the stranger's
  connections, a reproducer when the controller raised.
- :mod:`.fuzz_switches`: the emulated switches (:mod:`benchmarks.ofload`'s,
  paced) and the drop flows they receive.
- :mod:`.storm_lab`: the storms' test bed on real OVS and Mininet.
- :mod:`.controller_watch`: what the controller did: RSS, log, links.
"""
