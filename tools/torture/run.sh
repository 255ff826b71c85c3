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

python3 - "$EXPECTED" "$RESULTS" "${SUITES[@]}" <<'PY'
import sys
expected_path, results_path, suites = sys.argv[1], sys.argv[2], sys.argv[3:]
expected = {}
for line in open(expected_path):
    line = line.strip()
    if not line or line.startswith('#') or line.startswith('suite '):
        continue
    name, st, *reason = line.split(' ', 2)
    expected[name] = (st, reason[0] if reason else '')
got = {}
for line in open(results_path):
    name, st = line.split()
    got[name] = st
regress, fixed, known = [], [], 0
for name, st in sorted(got.items()):
    exp = expected.get(name, ('unlisted', ''))[0]
    if st == 'fail' and exp not in ('fail', 'flaky'):
        regress.append(f'{name}: {st}, expected {exp}')
    elif st == 'fail':
        known += 1
    elif st == 'pass' and exp == 'fail':
        fixed.append(name)
for name, (st, _) in expected.items():
    if st == 'pass' and name.split('.')[0] + '.' + name.split('.')[1] in suites and name not in got:
        regress.append(f'{name}: did not run, expected pass')
passed = sum(1 for s in got.values() if s == 'pass')
skipped = sum(1 for s in got.values() if s == 'skip')
for r in regress:
    print('REGRESSION', r)
for f in fixed:
    print('now passes (update expected.txt):', f)
print(f'known failures (reasons in {expected_path}): {known}')
print(f'torture: {passed} passed, {len(regress)} failed, {skipped} skipped')
sys.exit(1 if regress else 0)
PY
