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
