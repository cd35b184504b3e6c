#!/usr/bin/env bash
# Install what netlab's real mode needs on Debian or Ubuntu (run as root):
#
#   scripts/provision.sh                 # the kernel tools, br_netfilter, a venv with netlab
#   scripts/provision.sh --test          # and what the test suite uses (pytest, chromium, tshark, CNI plugins)
#   scripts/provision.sh --test --vagrant    # and vagrant (+ vagrant-libvirt), to validate the Vagrantfile (CI)
#
# Options: --venv DIR (default /opt/netlab/venv), --src DIR (the netlab source; default:
# this script's repository), --bin DIR (where a `netlab` link goes; default /usr/local/bin;
# --bin '' for none).
#
# Idempotent: it installs only packages dpkg does not list as installed, rebuilds the
# venv only when pyproject.toml, the extras or the source directory changed (a stamp
# in the venv), and ends with one line: `provision: no changes` or
# `provision: changed: <what>`. Used by the Vagrantfile and by .ci/run.
set -euo pipefail

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }

SRC="$(cd "$(dirname "$0")/.." && pwd)"
VENV=/opt/netlab/venv
BIN=/usr/local/bin
TEST=0
VAGRANT=0
while [ $# -gt 0 ]; do
  case "$1" in
    --test) TEST=1 ;;
    --vagrant) VAGRANT=1 ;;
    --venv) VENV="${2:?--venv needs a directory}"; shift ;;
    --src) SRC="${2:?--src needs a directory}"; shift ;;
    --bin) BIN="${2-}"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "provision: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

if [ "$(id -u)" != 0 ]; then
  echo "provision: run it as root (sudo $0 $*): it installs system packages" >&2
  exit 2
fi
if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-query >/dev/null 2>&1; then
  echo "provision: needs apt-get and dpkg (Debian or Ubuntu)" >&2
  exit 2
fi
if [ ! -f "$SRC/pyproject.toml" ]; then
  echo "provision: $SRC/pyproject.toml not found: --src must be netlab's source directory" >&2
  exit 2
fi

# Real mode: namespaces, links, routes (iproute2), netfilter (iptables, ipset, conntrack),
# probes (ping, nc, traceroute), `netlab draw` (graphviz), the venv (python3-venv).
PACKAGES=(iproute2 iptables ipset conntrack iputils-ping netcat-openbsd traceroute
          kmod procps util-linux python3-venv python3-pip graphviz)
# The test suite: CNI reference plugins (and nft for macspoofchk), the browser test, the pcap test.
TEST_PACKAGES=(containernetworking-plugins nftables chromium chromium-driver tshark)
[ "$TEST" = 1 ] && PACKAGES+=("${TEST_PACKAGES[@]}")
# `vagrant validate` of the Vagrantfile, with the libvirt provider's settings checked too.
[ "$VAGRANT" = 1 ] && PACKAGES+=(vagrant vagrant-libvirt)

CHANGED=()

installed() {   # dpkg knows it as installed
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

# --- system packages ------------------------------------------------------------------
missing=()
for pkg in "${PACKAGES[@]}"; do
  installed "$pkg" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "provision: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture: no (the default), without asking.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  for pkg in "${missing[@]}"; do
    installed "$pkg" || { echo "provision: $pkg did not install" >&2; exit 1; }
  done
  CHANGED+=("packages(${missing[*]})")
fi

# --- br_netfilter: bridged traffic through iptables, as on every Kubernetes node -----------
# (netlab's model assumes net.bridge.bridge-nf-call-iptables=1 in a node's namespace.)
MODULES_FILE=/etc/modules-load.d/netlab.conf
if [ ! -e /proc/sys/net/bridge/bridge-nf-call-iptables ]; then
  if modprobe br_netfilter 2>/dev/null; then
    CHANGED+=("module(br_netfilter)")
  else
    echo "provision: warning: cannot load br_netfilter here; bridged traffic will not" \
         "cross iptables in real mode" >&2
  fi
fi
if [ -d /etc/modules-load.d ] && [ "$(cat "$MODULES_FILE" 2>/dev/null)" != "br_netfilter" ]; then
  echo "br_netfilter" > "$MODULES_FILE"
  CHANGED+=("$MODULES_FILE")
fi

# --- the venv with netlab (editable: a changed source tree needs no new install) -----------
EXTRAS=""
[ "$TEST" = 1 ] && EXTRAS="[test]"
python_version="$(python3 -c 'import sys; print(sys.version.split()[0])')"
stamp_want="$( { cat "$SRC/pyproject.toml"; echo "extras=$EXTRAS src=$SRC python=$python_version"; } \
               | sha256sum | cut -d' ' -f1)"
STAMP="$VENV/.netlab-provision"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$stamp_want" ] || [ ! -x "$VENV/bin/netlab" ] \
   || ! "$VENV/bin/python" -c "import netlab" 2>/dev/null; then
  echo "provision: installing netlab$EXTRAS from $SRC into $VENV"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -e "$SRC$EXTRAS"
  echo "$stamp_want" > "$STAMP"
  CHANGED+=("venv($VENV)")
fi
if [ -n "$BIN" ] && [ "$(readlink "$BIN/netlab" 2>/dev/null)" != "$VENV/bin/netlab" ]; then
  mkdir -p "$BIN"
  ln -sfn "$VENV/bin/netlab" "$BIN/netlab"
  CHANGED+=("$BIN/netlab")
fi

if [ "${#CHANGED[@]}" -eq 0 ]; then
  echo "provision: no changes"
else
  echo "provision: changed: ${CHANGED[*]}"
fi
