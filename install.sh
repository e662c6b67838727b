#!/usr/bin/env bash
# Installs ninlab and its data on a Debian machine: Debian's Fashion-MNIST package (when apt is
# there and we are root) and the Python package with its pinned dependencies. Asks nothing.
set -euo pipefail
cd "$(dirname "$0")"
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq dataset-fashion-mnist >/dev/null
fi
python3 -m pip install -q -e .
