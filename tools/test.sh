#!/usr/bin/env bash
# duet's one test command: installs what the tests need (Debian packages, Rust components),
# then runs every test: unit, property and integration tests (cargo; among them the
# durable-handle acceptance test, tests/durable_restart.rs, which kills duetd with SIGKILL
# and drives it with Python smbprotocol), and smbtorture against the real duetd, compared
# with tools/torture/expected.txt.
# Usage: tools/test.sh [--no-install] [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."

INSTALL=1
for a in "$@"; do
    case "$a" in
        --no-install) INSTALL=0 ;;
        *) echo "tools/test.sh: unknown option $a" >&2; exit 2 ;;
    esac
done

if [ "$INSTALL" = 1 ]; then
    need=()
    # python3-venv: the durable-handle acceptance test (firmware/duetd/tests/durable_restart.py)
    # installs Python smbprotocol from PyPI into a venv under target/.
    # iproute2: the two-node tests build a network-namespace lab (tools/lab/lab.sh).
    for p in smbclient samba-testsuite python3-venv iproute2; do
        dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
    done
    if [ ${#need[@]} -gt 0 ]; then
        echo "== installing ${need[*]}"
        SUDO=""
        [ "$(id -u)" -eq 0 ] || SUDO=sudo
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
    rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi

echo "== cargo build"
cargo build --release --bins --quiet

echo "== cargo test"
if command -v cargo-nextest >/dev/null 2>&1; then
    cargo nextest run --workspace --release --no-fail-fast
else
    cargo test --workspace --release --no-fail-fast
fi

echo "== smbtorture against duetd"
tools/torture/run.sh target/release/duetd

# Two boxes in network namespaces (root): kill -9 of the serving node with durable handles
# reconnecting on the partner, then switchover, cable cut, forged frames, mirrored admin
# changes (tools/drill/drill.py --scenarios).
echo "== smbtorture's durable suites through a pair, every reconnect on the other node"
tools/torture/pair.sh target/release/duetd target/release/duetctl

echo "== pair: failover drill and scenarios"
python3 tools/drill/drill.py --duetd target/release/duetd --duetctl target/release/duetctl \
    --handles 8 --rounds 2 --scenarios --prefix ci-drill --venv target/drill-venv
