#!/usr/bin/env bash
# Installs the peers of the interop tests on Debian, as root:
#   - Debian's chromium (apt), for the chromedp test;
#   - Debian's openssl (apt), whose s_client the TLS tests drive;
#   - the ws npm package, pinned in node/package-lock.json, into node/node_modules.
# Go, gcc, Node.js (20 or later) and npm must be there already. Safe to run
# again: an installed chromium is left alone, and npm ci lays node_modules anew
# from the lock file.
set -euo pipefail
cd "$(dirname "$0")"

export DEBIAN_FRONTEND=noninteractive

log() { printf '== interop/install.sh: %s\n' "$*"; }

as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo --preserve-env=DEBIAN_FRONTEND "$@"
	else
		echo "interop/install.sh: need root (or sudo) for: $*" >&2
		exit 1
	fi
}

# Chromium. The browser's recommended packages (upower, udev, mesa drivers,
# fonts, a notification daemon, printer setup) are for a desktop, so they are
# left out. The tests run /usr/lib/chromium/chromium, the binary behind the
# /usr/bin/chromium launcher script.
if dpkg-query -W -f='${Status}' chromium 2>/dev/null | grep -q 'install ok installed'; then
	log "chromium is installed"
else
	log "installing chromium (apt)"
	start=$SECONDS
	as_root apt-get update -q
	as_root apt-get install -y -q --no-install-recommends chromium
	log "chromium installed in $((SECONDS - start))s"
fi

# OpenSSL's command-line tool, for s_client (usually there already).
if dpkg-query -W -f='${Status}' openssl 2>/dev/null | grep -q 'install ok installed'; then
	log "openssl is installed"
else
	log "installing openssl (apt)"
	as_root apt-get update -q
	as_root apt-get install -y -q --no-install-recommends openssl
fi

# Node.js and the ws package.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	echo "interop/install.sh: node and npm must be installed first" >&2
	exit 1
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
	echo "interop/install.sh: node $(node --version) is too old, want 20 or later" >&2
	exit 1
fi
log "npm ci in interop/node"
(cd node && npm ci --ignore-scripts --no-audit --no-fund)

log "peers: $(/usr/lib/chromium/chromium --version 2>/dev/null || chromium --version 2>/dev/null)," \
	"$(openssl version)," \
	"node $(node --version), ws $(node -p 'require("./node/node_modules/ws/package.json").version')"
