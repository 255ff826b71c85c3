#!/usr/bin/env python3
"""Compares a torture run's results with an expected list (tools/torture/run.sh, pair.sh).

Usage: compare.py [--label NAME] [--suffix TEXT] EXPECTED RESULTS SUITE...

EXPECTED has lines "SUITE.TEST pass", "SUITE.TEST fail REASON", "SUITE.TEST skip REASON"
or "SUITE.TEST flaky REASON" (either result accepted); RESULTS has "SUITE.TEST STATUS"
(pass, fail or skip) from the run. A failure not listed as fail or flaky, and a listed
pass of a suite that ran but did not run, is a regression: exit 1. Prints the regressions,
the tests that now pass, and "LABEL: N passed, M failed, K skipped[SUFFIX]" where M counts
the regressions (known failures are counted on the line before).
"""
import os
import sys

args = sys.argv[1:]
label, suffix = 'torture', ''
while args and args[0].startswith('--'):
    opt = args.pop(0)
    if opt == '--label':
        label = args.pop(0)
    elif opt == '--suffix':
        suffix = args.pop(0)
    else:
        sys.exit(f'compare.py: unknown option {opt}')
expected_path, results_path, suites = args[0], args[1], args[2:]
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
    print(f'now passes (update {os.path.basename(expected_path)}):', f)
print(f'known failures (reasons in {expected_path}): {known}')
print(f'{label}: {passed} passed, {len(regress)} failed, {skipped} skipped{suffix}')
sys.exit(1 if regress else 0)
