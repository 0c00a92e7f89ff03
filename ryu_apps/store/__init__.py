"""The distributed mode: a shared store (clustered OVSDB) that controller processes sync through."""
