"""Where the Ryu app meets the store: chosen by ``[dynprov] store`` (empty: no store)."""

from __future__ import annotations

import socket
from typing import Optional

from ryu_apps.store.sync import StoreSync


def default_process_name(of_port: int) -> str:
    """A name stable across restarts of the same controller: host and OpenFlow port."""
    return f"{socket.gethostname()}:{of_port}"


def attach(app, options, of_port: int) -> Optional[StoreSync]:
    """Start the app's store sync if a store is configured; None otherwise."""
    if not options.store:
        return None
    sync = StoreSync(app, options.store, options.process_name or default_process_name(of_port),
                     app.logger, reconcile_grace=options.reconcile_grace)
    sync.start()
    return sync


def reload_refusal(options, sync: Optional[StoreSync]) -> str:
    """Why a library reload (SIGHUP or REST) reads no YAML file in store mode; what to do.

    ``sync`` is None while the process is still starting (before it attached).
    """
    generation = sync.library_generation if sync is not None else 0
    running = (f"this process runs the store's library (generation {generation})"
               if generation else
               "the store holds no library yet: this process keeps the one it read at start-up")
    return (f"library reload refused: with [dynprov] store = {options.store} a reload does not "
            f"read the YAML files ({options.templates}); {running}. Change the library with: "
            f"dynprov store load-templates <dir> --remote {options.store} [--domain NAME] "
            "(every process of the store puts it in force)")
