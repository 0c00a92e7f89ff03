"""What the app is made of, from its ``[dynprov]`` options: the engine and link discovery.

Every way these cannot be built (a bad library, scheme, domains file, policy
or secret) stops the controller at start-up with the reason.
"""

from __future__ import annotations

import gc
import secrets
from typing import Dict, Tuple

from ryu_apps.app.link_discovery import LinkDiscovery, SecretError, load_or_create_secret
from ryu_apps.core.domains import DomainError
from ryu_apps.core.engine import ProvisioningEngine
from ryu_apps.core.identifiers import IdentifierError
from ryu_apps.core.identity import IdentityPolicy
from ryu_apps.core.template_validation import TemplateValidationError
from ryu_apps.loaders.domain_files import load_domains
from ryu_apps.loaders.library_check import LibraryChecker
from ryu_apps.loaders.library_keeper import LibraryKeeper
from ryu_apps.loaders.scheme_config import load_scheme
from ryu_apps.store import hook as store_hook


def build_engine(options, checker: LibraryChecker
                 ) -> Tuple[ProvisioningEngine, LibraryKeeper, Dict[str, LibraryKeeper]]:
    """The engine on the options' libraries, scheme, domains and identity policy; the
    keepers of the main library and of each domain's. SystemExit if one is wrong."""
    try:
        keeper = LibraryKeeper(options.templates, checker)
        scheme = load_scheme(options.identifier_scheme)
        domains, domain_keepers = load_domains(options.domains, checker)
    except (TemplateValidationError, IdentifierError, DomainError) as error:
        raise SystemExit(f"dynprov: cannot start: {error}") from None
    try:
        identity = IdentityPolicy.parse(options.identity_policy, "[dynprov] identity_policy")
    except ValueError as error:
        raise SystemExit(f"dynprov: cannot start: {error}") from None
    engine = ProvisioningEngine(
        keeper.current, scheme, domains,
        {name: domain_keeper.current for name, domain_keeper in domain_keepers.items()},
        identity=identity, move_hold=options.move_hold)
    return engine, keeper, domain_keepers


def build_link_discovery(options, store_sync, logger, of_port: int) -> LinkDiscovery:
    """Probe signing and checking with the deployment's secret: the store's in store
    mode, else the secret file's, else a random one (ryu_apps.app.link_discovery)."""
    process = (store_sync.name if store_sync is not None
               else store_hook.default_process_name(of_port))
    try:
        if options.topology_secret_file:
            secret = load_or_create_secret(options.topology_secret_file)
        else:
            secret = secrets.token_bytes(32)
    except (OSError, SecretError) as error:
        raise SystemExit(f"dynprov: cannot start: {error}") from None
    if store_sync is not None:
        secret = store_sync.topology_secret(secret)
    return LinkDiscovery(secret, process, logger, options.probe_max_age, store_sync)


def settle_heap() -> None:
    """Collect what is garbage now, then move every object that survived (the
    library, the bindings and flows learnt so far) out of the collector's reach
    (``gc.freeze``): a later full collection walks only what is newer, so its
    pause no longer grows with the bindings held. Called after the library is
    loaded, when the warm start ends, and at every audit; frozen objects are
    still freed by reference counting when the engine drops them."""
    gc.collect()
    gc.freeze()
