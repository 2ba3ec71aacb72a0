#!/bin/sh
# The Debian packages of the serving stack: orthanc (the DICOMweb server's binary, `Orthanc`),
# orthanc-dicomweb (its plugin, /usr/share/orthanc/plugins/libOrthancDicomWeb.so), and chromium +
# chromium-driver (headless Chromium, for the OHIF viewer test and scripts/ohif_screenshot.py), and
# nodejs + npm when npm is absent (npm fetches the OHIF viewer: shared/orthogen/serving/ohif_viewer.py; a
# node/npm already installed, e.g. NodeSource's, is kept).
#
# Idempotent: does nothing when both are there. Otherwise installs them with apt-get when run as root
# on a system with apt-get, and disables the packages' own system service (OrthoGen runs its own
# Orthanc with its own config, see shared/orthogen/serving/orthanc_server.py). Anywhere else it prints
# exactly what to install and exits 1.
set -eu

PACKAGES="orthanc orthanc-dicomweb chromium chromium-driver"
command -v npm >/dev/null 2>&1 || PACKAGES="$PACKAGES nodejs npm"
PLUGIN=/usr/share/orthanc/plugins/libOrthancDicomWeb.so

# Debian puts the binary in /usr/sbin, which is not on every user's PATH.
orthanc_binary() {
    command -v Orthanc 2>/dev/null || { [ -x /usr/sbin/Orthanc ] && echo /usr/sbin/Orthanc; }
}

installed() {
    orthanc_binary >/dev/null && [ -f "$PLUGIN" ] && command -v chromium >/dev/null && [ -x /usr/bin/chromedriver ] \
        && command -v npm >/dev/null
}

if installed; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "serving dependencies missing (need the Orthanc binary, $PLUGIN, chromium, /usr/bin/chromedriver and npm): install the Debian packages" \
         "'$PACKAGES' as root, e.g. 'sudo apt-get install -y $PACKAGES' (Debian bookworm: orthanc 1.10.1," \
         "orthanc-dicomweb 1.7), then run this script again" >&2
    exit 1
fi

echo "installing the Debian packages $PACKAGES with apt-get"
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q $PACKAGES

# The packages enable an `orthanc` system service (port 8042, /var/lib/orthanc): ours uses the same
# port, so stop it if the install started it, and keep it from starting at boot.
if command -v service >/dev/null 2>&1; then
    service orthanc stop >/dev/null 2>&1 || true
fi
if command -v systemctl >/dev/null 2>&1; then
    systemctl disable orthanc.service >/dev/null 2>&1 || true
fi
if command -v update-rc.d >/dev/null 2>&1; then
    update-rc.d orthanc disable >/dev/null 2>&1 || true
fi

if ! installed; then
    echo "apt-get installed '$PACKAGES' but the Orthanc binary, $PLUGIN, chromium, chromedriver or npm is still missing" >&2
    exit 1
fi
echo "installed: $("$(orthanc_binary)" --version | head -n 1), plugin $PLUGIN, $(chromium --version 2>/dev/null), npm $(npm --version)"
