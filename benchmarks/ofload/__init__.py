"""ofload: a cbench-style OpenFlow 1.3 load generator that emulates many switches.

- :mod:`.wire`: just enough of the OpenFlow 1.3 wire format, pre-encoded.
- :mod:`.frames`: the Ethernet/IPv4/ARP frames fresh VMs send.
- :mod:`.topology`: the emulated data center (fabric, access, servers, links).
- :mod:`.switch`: one emulated switch speaking to the controller over TCP.
- :mod:`.driver`: the load: fresh VMs under a window, what counts as provisioned.
- :mod:`.workers`: several generator processes against one controller.
"""
