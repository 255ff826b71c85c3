#!/usr/bin/env bash
# smbtorture's durable suites against a duet pair, through a forwarder that moves the
# service to the other node before every new connection (tools/torture/forwarder.py), so
# every reconnect of a durable handle lands on the partner. Compares every subtest with
# tools/torture/expected-pair.txt (the format of expected.txt); exit 1 on a regression.
#
# Usage: tools/torture/pair.sh [DUETD [DUETCTL [SUITE...]]]
#   defaults: target/release/duetd, its sibling duetctl, the suites in expected-pair.txt.
#   env DUET_LAB_PREFIX (default tpair): the lab's namespaces (tools/lab/lab.sh).
#   env RUST_LOG (default info): duetd's logs, in the work directory.
#   env TORTURE_KEEP=1 keeps the work directory (logs, smbtorture output) and the lab;
#   env TORTURE_VERBOSE=1 prints smbtorture's output (and the forwarder logs every
#   connection it does not switch for); TORTURE_UPDATE=1 rewrites the
#   expected file from this run (keeps reasons; see update_expected.py).
#   env TORTURE_NO_SWITCH=1 forwards without switching (a comparison run on one node).
# Needs root (network namespaces, the VIP), smbtorture and python3.
set -euo pipefail
cd "$(dirname "$0")/../.."
DUETD=$(realpath "${1:-target/release/duetd}")
DUETCTL=$(realpath "${2:-$(dirname "$DUETD")/duetctl}")
shift 2 || shift $# || true
EXPECTED=tools/torture/expected-pair.txt
P=${DUET_LAB_PREFIX:-tpair}
VIP=192.0.2.100
PORT=4445
TPASS=Torture-Pass1
[ -x "$DUETD" ] || { echo "pair.sh: $DUETD not built" >&2; exit 2; }
[ -x "$DUETCTL" ] || { echo "pair.sh: $DUETCTL not built" >&2; exit 2; }
command -v smbtorture >/dev/null || { echo "pair.sh: smbtorture missing (apt-get install samba-testsuite)" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "pair.sh: needs root (network namespaces)" >&2; exit 2; }

if [ $# -gt 0 ]; then
    SUITES=("$@")
else
    mapfile -t SUITES < <(sed -n 's/^suite \([^ ]*\).*/\1/p' "$EXPECTED")
fi

lab_rc=0
DUET_LAB_PREFIX=$P tools/lab/lab.sh status >/dev/null 2>&1 || lab_rc=$?
if [ "$lab_rc" != 3 ]; then
    echo "pair.sh: lab $P exists already (another run?): DUET_LAB_PREFIX=$P tools/lab/lab.sh down" >&2
    exit 2
fi

T0=$(date +%s)
WORK=$(mktemp -d /tmp/duet-torture-pair.XXXXXX)
chmod 755 "$WORK"
A_PID="" B_PID="" F_PID=""
lab() { DUET_LAB_PREFIX=$P tools/lab/lab.sh "$@" >/dev/null; }

stop_pid() { # PID: SIGTERM, then SIGKILL after 3 s
    local pid=$1
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_pid "$F_PID"
    if [ -n "$F_PID" ]; then tail -n 1 "$WORK/forwarder.log" | sed 's/^/   /'; fi
    # duetd is killed outright: the pair is thrown away with the lab.
    for pid in $A_PID $B_PID; do kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    if [ -n "${TORTURE_KEEP:-}" ]; then
        echo "kept $WORK and lab $P (DUET_LAB_PREFIX=$P tools/lab/lab.sh down)"
    else
        lab down || true
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

lab up

# ---- the pair: like tools/drill/drill.py, plus run.sh's torture user and settings.
mkdir -p "$WORK/share" "$WORK/storage"
for n in a b; do
    if [ $n = a ]; then me=192.0.2.11 partner=192.0.2.12; else me=192.0.2.12 partner=192.0.2.11; fi
    cat > "$WORK/$n.toml" <<EOF
[board]
name = "torture-$n"
[smb]
listen = ["0.0.0.0:445"]
signing_required = false
[network]
data_nic = "eth0"
heartbeat_nic = "eth1"
[cluster]
node = "$n"
data_addr = "$me"
partner_data_addr = "$partner"
vip = "$VIP/24"
tiebreaker = "192.0.2.1"
[cluster.storage]
driver = "shared-dir"
dir = "$WORK/storage"
EOF
done
SA=$WORK/state-a SB=$WORK/state-b
JOIN=$("$DUETCTL" --state "$SA" pair init | grep -o 'duet-pair-1.*' | head -n 1)
[ -n "$JOIN" ] || { echo "pair.sh: no join line from 'pair init'" >&2; exit 1; }
printf '%s\n' "$TPASS" | "$DUETCTL" --state "$SA" user add torture >/dev/null
"$DUETCTL" --state "$SA" share add share "$WORK/share" >/dev/null
# As run.sh (see there): signing offered, not required; Samba's test-only FSCTLs on.
"$DUETCTL" --state "$SA" set smb.signing_required false >/dev/null
"$DUETCTL" --state "$SA" set smb.torture_fsctls true >/dev/null
# shellcheck disable=SC2086 # the join line is several words
"$DUETCTL" --state "$SB" pair join $JOIN >/dev/null

start_node() { # NODE: starts duetd in the node's namespace, sets A_PID/B_PID
    local n=$1 st
    if [ "$n" = a ]; then st=$SA; else st=$SB; fi
    # `ip netns exec` execs duetd: $! is duetd's own pid.
    RUST_LOG=${RUST_LOG:-info} ip netns exec "$P-$n" "$DUETD" run --board "$WORK/$n.toml" \
        --state "$st" >/dev/null 2>>"$WORK/duetd-$n.log" &
    if [ "$n" = a ]; then A_PID=$!; else B_PID=$!; fi
}
alive() {
    local ok=0
    kill -0 "$A_PID" 2>/dev/null || { echo "duetd a died:"; tail -n 30 "$WORK/duetd-a.log"; ok=1; }
    kill -0 "$B_PID" 2>/dev/null || { echo "duetd b died:"; tail -n 30 "$WORK/duetd-b.log"; ok=1; }
    return $ok
}
field() { # STATE KEY: one line of `cluster status`
    "$DUETCTL" --state "$1" cluster status 2>/dev/null | sed -n "s/^$2: //p"
}
start_node a
sleep 0.3
start_node b
synced=""
for _ in $(seq 300); do
    alive || exit 1
    if [ "$(field "$SA" serving)" = true ] && [ "$(field "$SA" mirror)" = Synchronous ] \
        && [ "$(field "$SB" in_sync)" = true ]; then
        synced=1
        break
    fi
    sleep 0.1
done
[ -n "$synced" ] || { echo "pair.sh: the pair did not become synchronous"; "$DUETCTL" --state "$SA" cluster status; exit 1; }
echo "   pair up and synchronous after $(( $(date +%s) - T0 )) s (a serves)"

# ---- the forwarder, in the client namespace.
FWD_ARGS=()
[ -n "${TORTURE_NO_SWITCH:-}" ] && FWD_ARGS+=(--no-switch)
[ -n "${TORTURE_VERBOSE:-}" ] && FWD_ARGS+=(--verbose)
ip netns exec "$P-client" python3 tools/torture/forwarder.py --listen "127.0.0.1:$PORT" \
    --target "$VIP:445" --duetctl "$DUETCTL" --node "a=$SA" --node "b=$SB" \
    --count-file "$WORK/switches" "${FWD_ARGS[@]}" 2>"$WORK/forwarder.log" &
F_PID=$!
for _ in $(seq 100); do grep -q listening "$WORK/forwarder.log" 2>/dev/null && break; sleep 0.1; done
grep -q listening "$WORK/forwarder.log" || { echo "pair.sh: the forwarder did not start:"; cat "$WORK/forwarder.log"; exit 1; }

# ---- the suites.
RESULTS=$WORK/results.txt
: > "$RESULTS"
for suite in "${SUITES[@]}"; do
    start=$(date +%s)
    sw0=$(cut -d' ' -f1 "$WORK/switches")
    # Each suite gets a fresh share directory so one suite's leftovers cannot fail another.
    find "$WORK/share" -mindepth 1 -delete 2>/dev/null || true
    rc=0
    # smbtorture makes its temporary directory in its working directory: the work dir.
    (cd "$WORK" && timeout 600 ip netns exec "$P-client" smbtorture "//127.0.0.1/share" -p "$PORT" \
        -U "torture%$TPASS" --target=samba3 --option=torture:sharedelay=100000 "$suite") \
        > "$WORK/out-$suite.txt" 2>&1 || rc=$?
    # smbtorture prints "success: NAME", "failure: NAME [...]", "error: NAME", "skip: NAME".
    awk -v s="$suite" '
        /^(success|failure|error|skip|xfail): / {
            st=$1; sub(":","",st); name=$2;
            if (st=="skip") st="skip"; else if (st=="success") st="pass"; else st="fail";
            print s "." name " " st
        }' "$WORK/out-$suite.txt" | sort -u -k1,1 >> "$RESULTS"
    n=$(grep -c "^$suite\." "$RESULTS" || true)
    np=$(grep "^$suite\." "$RESULTS" | grep -c ' pass$' || true)
    sw1=$(cut -d' ' -f1 "$WORK/switches")
    echo "   $suite: $np of $n pass, $((sw1 - sw0)) switchovers ($(( $(date +%s) - start )) s, rc $rc)"
    [ -n "${TORTURE_VERBOSE:-}" ] && cat "$WORK/out-$suite.txt"
    alive || exit 1
done

if [ -n "${TORTURE_UPDATE:-}" ]; then
    python3 tools/torture/update_expected.py "$EXPECTED" "$RESULTS" "${SUITES[@]}"
    echo "updated $EXPECTED"
fi

read -r SW FAILED_SW ABANDONED < "$WORK/switches"
if [ "$FAILED_SW" != 0 ] || [ "$ABANDONED" != 0 ]; then
    echo "   $FAILED_SW switchovers failed, $ABANDONED handovers abandoned and asked again (forwarder's log):"
    grep -E 'refused|cannot switch|does not serve|abandoned' "$WORK/forwarder.log" | head -n 5 || true
fi
rc=0
python3 tools/torture/compare.py --label torture-pair --suffix ", $SW switchovers" \
    "$EXPECTED" "$RESULTS" "${SUITES[@]}" || rc=$?
if [ -z "${TORTURE_NO_SWITCH:-}" ] && [ "$SW" = 0 ]; then
    echo "pair.sh: no switchover happened: the run proves nothing about the partner"
    rc=1
fi
echo "   $(( $(date +%s) - T0 )) s in all"
exit "$rc"
