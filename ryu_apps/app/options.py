"""The app's ``[dynprov]`` options (read from ``--config-file`` by ryu-manager)."""

from __future__ import annotations

from ryu_apps.app.framework import cfg

CONF = cfg.CONF
CONF.register_opts([
    cfg.StrOpt("templates", default="templates",
               help="Template library: a directory of YAML files, or one file."),
    cfg.StrOpt("identifier_scheme", default="prefix/16",
               help="How a VM MAC selects a template: prefix/16, prefix/12, "
                    "interleave, or table:PATH."),
    cfg.FloatOpt("lldp_interval", default=2.0,
                 help="Seconds between LLDP probes on every port (link discovery)."),
    cfg.ListOpt("ovsdb", default=[],
                help="OVSDB remotes of servers to watch for VMs by "
                     "external_ids:attached-mac (e.g. unix:/var/run/openvswitch/db.sock, "
                     "tcp:IP:6640); empty: detect VMs from their packets only."),
    cfg.StrOpt("domains", default="",
               help="Mobility domains file (YAML); empty: one domain, the main library."),
    cfg.FloatOpt("reconcile_grace", default=5.0,
                 help="Seconds after start-up during which reconciliation only adds "
                      "flows; then every switch is reconciled in full."),
    cfg.StrOpt("store", default="",
               help="Shared store (OVSDB remotes, comma-separated, e.g. "
                    "tcp:127.0.0.1:6641,tcp:127.0.0.1:6642): library and bindings shared "
                    "by several controller processes; empty: embedded YAML mode."),
    cfg.StrOpt("process_name", default="",
               help="This process's name in the store (default host:OpenFlow port)."),
    cfg.StrOpt("identity_policy", default="auto",
               help="Whom to believe about which VM is on which port, where the mobility "
                    "domain does not say: ovsdb (the hypervisor only), packets (guarded "
                    "moves), auto (the hypervisor where its OVSDB names a VM, packets rules "
                    "elsewhere). See docs/security.md."),
    cfg.FloatOpt("move_hold", default=1.0,
                 help="Seconds a VM must stay silent at its bound port to the liveness "
                      "probe before its MAC seen elsewhere moves it (packets rules)."),
    cfg.StrOpt("topology_secret_file", default="",
               help="File holding the secret LLDP probes are signed with (hex; created, "
                    "mode 0600, if missing). Empty: a random secret per process (store "
                    "mode: the store's)."),
    cfg.FloatOpt("probe_max_age", default=10.0,
                 help="Seconds a signed LLDP probe stays believable (clock skew included)."),
    cfg.FloatOpt("audit_interval", default=60.0,
                 help="Seconds between two audits: every switch's dynprov flows and meters "
                      "are read back and reconciled, so one changed behind dynprov's back is "
                      "repaired; 0: no audit."),
    cfg.StrOpt("metrics_host", default="127.0.0.1",
               help="Address the Prometheus metrics listen on (loopback by default: "
                    "they are unauthenticated; docs/security.md)."),
    cfg.IntOpt("metrics_port", default=9302,
               help="Port of the Prometheus metrics (GET /metrics); 0: no metrics."),
    cfg.StrOpt("fault_injection_mac", default="",
               help="Testing only: handling the first frame from this MAC raises after the "
                    "engine handled it and before its plan is sent, so the engine holds a "
                    "binding the switches never got (proves the resynchronisation)."),
], group="dynprov")
