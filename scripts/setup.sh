#!/usr/bin/env bash
# Install everything dynprov needs on a fresh Debian 12 machine (run as root).
# Idempotent: each step checks whether it is already done, so a second run
# takes a few seconds.
#   1. Debian packages: Open vSwitch, Mininet, ping, ethtool, iperf3, arping, chromium
#      (headless, for the live view's browser test).
#   2. Open vSwitch daemons, started without systemd.
#   3. A virtual environment (.venv) that sees Debian's Mininet.
#   4. Ryu, built with setuptools<58 (its setup.py needs an old setuptools), and
#      os-ken, its maintained fork, beside it (dynprov controller --framework os-ken).
#   5. dynprov itself, with the start-up hook that lets ryu-manager run on
#      current eventlet (see dynprov_ryu_compat.py); reinstalled only when
#      the sources changed.
#   6. The PKI for TLS on the control channels (dynprov pki init: a controller
#      CA, a switch CA and their certificates, in $DYNPROV_PKI_DIR or
#      /var/lib/dynprov/pki, one per host like Open vSwitch's SSL settings).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
VENV="$REPO/.venv"
say() { printf '[setup] %s\n' "$*"; }

APT_PACKAGES=(openvswitch-switch python3-openvswitch mininet iputils-ping ethtool iperf3 arping tcpdump chromium
              python3-venv python3-pip)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
else
  say "Debian packages present"
fi

if ovs-vsctl --timeout=2 show >/dev/null 2>&1 && ovs-appctl -t ovs-vswitchd version >/dev/null 2>&1; then
  say "Open vSwitch running"
else
  say "starting Open vSwitch (userspace datapath; the kernel module warnings are harmless)"
  /usr/share/openvswitch/scripts/ovs-ctl start --system-id=random >/dev/null 2>&1 || true
  ovs-vsctl --timeout=10 show >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV (sees Debian's Mininet)"
  /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
PIP=("$VENV/bin/python" -m pip -q --disable-pip-version-check)

if ! "$VENV/bin/python" -c "import ryu, eventlet" >/dev/null 2>&1; then
  say "installing Ryu (built with setuptools<58)"
  PIP_CONSTRAINT="$REPO/scripts/ryu-build-constraints.txt" "${PIP[@]}" install ryu
fi
# os-ken shares Ryu's dependencies (eventlet, oslo.config, ovs, Routes, WebOb) and adds
# ncclient; both frameworks live in one venv, the launcher picks one per process.
OSKEN_VERSION=4.2.2
if ! "$VENV/bin/python" -c "import sys, importlib.metadata as m
sys.exit(m.version('os-ken') != '$OSKEN_VERSION')" >/dev/null 2>&1; then
  say "installing os-ken $OSKEN_VERSION (dynprov controller --framework os-ken)"
  "${PIP[@]}" install "os-ken==$OSKEN_VERSION"
fi
if ! "$VENV/bin/python" -c "import yaml, netaddr, prometheus_client, pytest, xdist, hypothesis, matplotlib" >/dev/null 2>&1; then
  say "installing Python runtime, test and benchmark-plot dependencies"
  "${PIP[@]}" install pyyaml netaddr prometheus_client pytest pytest-xdist hypothesis matplotlib
fi

stamp=$(cat setup.py setup.cfg dynprov_ryu_compat.py dynprov_ryu_compat.pth \
        $(find ryu_apps -name '*.py' -o -name '*.ovsschema' | sort) | sha1sum | cut -d' ' -f1)
if [ "$(cat "$VENV/.dynprov-installed" 2>/dev/null)" != "$stamp" ]; then
  say "installing dynprov into $VENV"
  "${PIP[@]}" install --no-deps --no-build-isolation --force-reinstall . >/dev/null
  rm -rf build ./*.egg-info
  echo "$stamp" > "$VENV/.dynprov-installed"
else
  say "dynprov up to date in $VENV"
fi
if "$VENV/bin/python" -c "import sys; from ryu_apps.tls import pki
sys.exit(1 if pki.Pki(pki.default_dir()).missing() else 0)" 2>/dev/null; then
  say "PKI present"
else
  say "making the PKI for TLS (dynprov pki init)"
  "$VENV/bin/dynprov" pki init >/dev/null
fi
say "ready: $VENV/bin/dynprov (dynprov controller [--framework ryu|os-ken]), $VENV/bin/ryu-manager"
