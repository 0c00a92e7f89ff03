"""The pure core: identifiers, templates, topology, compilation into flows and the engine's
decisions (no framework, socket, clock, file or subprocess).
"""
