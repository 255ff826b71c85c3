#!/usr/bin/env bash
# The duet two-node lab in network namespaces (root; TEST-NET-1 192.0.2.0/24 only).
#
#   tools/lab/lab.sh up       build what is missing (idempotent)
#   tools/lab/lab.sh down     remove everything the lab made (idempotent)
#   tools/lab/lab.sh status   print what exists; exit 0 complete, 1 partial, 3 absent
#
# Namespaces are named PREFIX-sw, PREFIX-a, PREFIX-b, PREFIX-client, with
# PREFIX from $DUET_LAB_PREFIX (default "duet"), so tests can build their own
# lab beside a person's. Nothing is created in the host's namespace: every
# link is made inside the lab's namespaces. See tools/lab/README.md.
set -euo pipefail

P="${DUET_LAB_PREFIX:-duet}"
if ! [[ "$P" =~ ^[a-z0-9][a-z0-9-]{0,15}$ ]]; then
    echo "lab.sh: DUET_LAB_PREFIX must be 1-16 of [a-z0-9-]" >&2
    exit 2
fi
SW="$P-sw"
A="$P-a"
B="$P-b"
C="$P-client"

NET=192.0.2
GW="$NET.1/24"       # on the switch's bridge: the gateway, the tie-breaker address
A_DATA="$NET.11/24"
B_DATA="$NET.12/24"
C_DATA="$NET.50/24"
# 02:d0:e7 is a locally administered prefix; the 4th/5th bytes name the box.
A_ETH0=02:d0:e7:00:0a:00 A_ETH1=02:d0:e7:00:0a:01
B_ETH0=02:d0:e7:00:0b:00 B_ETH1=02:d0:e7:00:0b:01
C_ETH0=02:d0:e7:00:0c:00

have_ns() { [ -e "/run/netns/$1" ]; }
have_link() { have_ns "$1" && ip -n "$1" link show "$2" >/dev/null 2>&1; }

make_ns() {
    if ! have_ns "$1"; then
        ip netns add "$1"
    fi
    ip -n "$1" link set lo up
}

# data_nic NS MAC ADDR SWITCH_PORT: eth0 in NS, its peer on the bridge.
data_nic() {
    local ns=$1 mac=$2 addr=$3 port=$4
    if ! have_link "$ns" eth0; then
        ip -n "$SW" link del "$port" 2>/dev/null || true
        ip -n "$SW" link add name "$port" type veth peer name eth0 address "$mac" netns "$ns"
    fi
    ip -n "$SW" link set "$port" master br0
    ip -n "$SW" link set "$port" up
    ip -n "$ns" addr replace "$addr" dev eth0
    ip -n "$ns" link set eth0 up
}

up() {
    for ns in "$SW" "$A" "$B" "$C"; do make_ns "$ns"; done

    if ! have_link "$SW" br0; then
        ip -n "$SW" link add br0 type bridge
    fi
    ip -n "$SW" addr replace "$GW" dev br0
    ip -n "$SW" link set br0 up

    data_nic "$A" "$A_ETH0" "$A_DATA" a-eth0
    data_nic "$B" "$B_ETH0" "$B_DATA" b-eth0
    data_nic "$C" "$C_ETH0" "$C_DATA" c-eth0

    # The heartbeat cable: eth1 <-> eth1, no IP configuration (duetd's own
    # smoltcp stack puts link-local addresses on it).
    if ! have_link "$A" eth1 || ! have_link "$B" eth1; then
        ip -n "$A" link del eth1 2>/dev/null || true
        ip -n "$B" link del eth1 2>/dev/null || true
        ip -n "$A" link add name eth1 address "$A_ETH1" type veth \
            peer name eth1 address "$B_ETH1" netns "$B"
    fi
    ip -n "$A" link set eth1 up
    ip -n "$B" link set eth1 up

    # A VIP shares the data subnet, so it is a secondary address: keep it
    # when a primary address goes.
    for ns in "$A" "$B"; do
        ip netns exec "$ns" sysctl -qw net.ipv4.conf.eth0.promote_secondaries=1
    done
    echo "lab $P is up: $SW (br0 ${GW%/*}), $A (${A_DATA%/*}), $B (${B_DATA%/*}), $C (${C_DATA%/*})"
}

down() {
    for ns in "$C" "$A" "$B" "$SW"; do
        if have_ns "$ns"; then
            ip netns del "$ns"
        fi
    done
    echo "lab $P is down"
}

status() {
    local present=0 complete=1
    for ns in "$SW" "$A" "$B" "$C"; do
        if have_ns "$ns"; then
            present=$((present + 1))
            echo "$ns:"
            ip -n "$ns" -br addr | grep -v '^lo ' | sed 's/^/  /'
        else
            echo "$ns: absent"
            complete=0
        fi
    done
    if [ "$complete" = 1 ]; then
        local l
        for l in "$SW br0" "$SW a-eth0" "$SW b-eth0" "$SW c-eth0" "$A eth0" "$A eth1" \
                 "$B eth0" "$B eth1" "$C eth0"; do
            # shellcheck disable=SC2086
            if ! have_link $l; then
                echo "missing link: $l"
                complete=0
            fi
        done
    fi
    if [ "$present" = 0 ]; then
        echo "lab $P: absent"
        return 3
    elif [ "$complete" = 1 ]; then
        echo "lab $P: up"
        return 0
    fi
    echo "lab $P: partial (run up or down)"
    return 1
}

need_root() {
    if [ "$(id -u)" -ne 0 ] || ! ip netns list >/dev/null 2>&1; then
        echo "lab.sh: needs root and iproute2 with 'ip netns'" >&2
        exit 2
    fi
}

case "${1:-}" in
    up) need_root; up ;;
    down) need_root; down ;;
    status) need_root; status ;;
    *)
        echo "usage: $0 up|down|status   (DUET_LAB_PREFIX=$P)" >&2
        exit 2
        ;;
esac
