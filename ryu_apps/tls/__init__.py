"""TLS for every control channel: OpenFlow, OVSDB, the store, and the certificates."""
