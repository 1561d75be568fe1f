#!/usr/bin/env bash
# Install Debian's nginx when it is missing (for the two-node test and a fresh deployment), without starting
# the system's nginx service: the test runs its own nginx on a loopback port. Needs root and apt-get.
set -euo pipefail
if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
  echo "nginx present: $(/usr/sbin/nginx -v 2>&1)"; exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "nginx missing: install it with 'apt-get install nginx' (needs root on Debian)" >&2; exit 1
fi
# keep the package's postinst from starting a system nginx on port 80 (policy-rc.d exit 101: "not allowed")
cleanup=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && cleanup=1
fi
trap '[ -n "$cleanup" ] && rm -f /usr/sbin/policy-rc.d' EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends nginx >/dev/null 2>&1 || \
  { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends nginx >/dev/null; }
echo "installed: $(/usr/sbin/nginx -v 2>&1)"
