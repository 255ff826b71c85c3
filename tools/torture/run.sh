#!/usr/bin/env bash
# Runs smbtorture suites against a real duetd and compares every subtest with
# tools/torture/expected.txt ("SUITE.TEST pass" or "SUITE.TEST fail REASON").
# A listed pass that fails, or an unlisted test that fails, is a regression: exit 1.
# Usage: tools/torture/run.sh [DUETD_BINARY] [SUITE...]
#   env TORTURE_UPDATE=1 rewrites the expected file from this run (keeps reasons).
set -uo pipefail
cd "$(dirname "$0")/../.."
DUETD=${1:-target/release/duetd}
shift || true
EXPECTED=tools/torture/expected.txt
DUETCTL=$(dirname "$DUETD")/duetctl
[ -x "$DUETD" ] || { echo "run.sh: $DUETD not built" >&2; exit 2; }
[ -x "$DUETCTL" ] || { echo "run.sh: $DUETCTL not built" >&2; exit 2; }
command -v smbtorture >/dev/null || { echo "run.sh: smbtorture missing (apt-get install samba-testsuite)" >&2; exit 2; }

if [ $# -gt 0 ]; then
    SUITES=("$@")
else
    mapfile -t SUITES < <(sed -n 's/^suite \([^ ]*\).*/\1/p' "$EXPECTED")
fi

WORK=$(mktemp -d /tmp/duet-torture.XXXXXX)
chmod 755 "$WORK"
mkdir -p "$WORK/share" "$WORK/state"
PASS=Torture-Pass1
printf '%s\n' "$PASS" | "$DUETCTL" --state "$WORK/state" user add torture >/dev/null
"$DUETCTL" --state "$WORK/state" share add share "$WORK/share" >/dev/null
# As the reference smbd runs (SMB-FACTS.md): signing offered, not required. With signing
# required smbtorture's own client refuses the unsigned USER_SESSION_DELETED answers some
# tests expect; the smbclient integration tests cover signing-required.
"$DUETCTL" --state "$WORK/state" set smb.signing_required false >/dev/null
# Samba's test-only controls, as the reference smbd has them (smbd:FSCTL_SMBTORTURE = yes).
"$DUETCTL" --state "$WORK/state" set smb.torture_fsctls true >/dev/null
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
RUST_LOG=${RUST_LOG:-warn} "$DUETD" run --board board-configs/lab.toml --state "$WORK/state" \
    --listen "127.0.0.1:$PORT" 2>"$WORK/duetd.log" &
DPID=$!
cleanup() { kill -9 "$DPID" 2>/dev/null; wait "$DPID" 2>/dev/null; if [ -n "${TORTURE_KEEP:-}" ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi; }
trap cleanup EXIT
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done

RESULTS=$WORK/results.txt
: > "$RESULTS"
for suite in "${SUITES[@]}"; do
    start=$(date +%s)
    # Each suite gets a fresh share directory so one suite's leftovers cannot fail another.
    find "$WORK/share" -mindepth 1 -delete 2>/dev/null
    timeout 900 smbtorture "//127.0.0.1/share" -p "$PORT" -U "torture%$PASS" --target=samba3 \
        --option=torture:sharedelay=100000 "$suite" > "$WORK/out.txt" 2>&1
    rc=$?
    # smbtorture prints "success: NAME", "failure: NAME [...]", "error: NAME", "skip: NAME".
    awk -v s="$suite" '
        /^(success|failure|error|skip|xfail): / {
            st=$1; sub(":","",st); name=$2;
            if (st=="skip") st="skip"; else if (st=="success") st="pass"; else st="fail";
            print s "." name " " st
        }' "$WORK/out.txt" | sort -u -k1,1 >> "$RESULTS"
    n=$(grep -c "^$suite\." "$RESULTS")
    echo "   $suite: $(grep "^$suite\." "$RESULTS" | grep -c ' pass$') of $n pass ($(( $(date +%s) - start )) s, rc $rc)"
    if ! kill -0 "$DPID" 2>/dev/null; then
        echo "duetd died during $suite:"; tail -n 30 "$WORK/duetd.log"; exit 1
    fi
    [ -n "${TORTURE_VERBOSE:-}" ] && cat "$WORK/out.txt"
done

if [ -n "${TORTURE_UPDATE:-}" ]; then
    python3 tools/torture/update_expected.py "$EXPECTED" "$RESULTS" "${SUITES[@]}"
    echo "updated $EXPECTED"
fi

python3 tools/torture/compare.py "$EXPECTED" "$RESULTS" "${SUITES[@]}"
