"""The Ryu shell's edge: OpenFlow rendering, plan sending, LLDP and OVSDB I/O (the app
imports these; nothing here decides).
"""
