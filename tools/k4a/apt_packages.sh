#!/usr/bin/env bash
# Install the system packages the SDK's depth→colour needs on a machine without a GPU:
# Xvfb + Mesa (llvmpipe) for its OpenGL path. Idempotent; a no-op when all are present.
set -euo pipefail
PKGS=(xvfb libgl1-mesa-dri libegl1 libgl1)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    echo "sdk-env: missing apt packages ${missing[*]}: install them as root (apt-get install ${missing[*]})" >&2
    exit 1
fi
"${SUDO[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
