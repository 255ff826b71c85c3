#!/usr/bin/env python3
"""Rewrites tools/torture/expected.txt from a run's results, keeping the reasons already
written for known failures. New failures get 'fail UNEXPLAINED' and must be given a reason
by hand before committing (run.sh refuses nothing, the reviewer does)."""
import sys

path, results, suites = sys.argv[1], sys.argv[2], sys.argv[3:]
header, suite_lines, entries = [], [], {}
for line in open(path):
    s = line.rstrip('\n')
    if s.startswith('#'):
        header.append(s)
    elif s.startswith('suite '):
        suite_lines.append(s)
    elif s.strip():
        name, st, *reason = s.split(' ', 2)
        entries[name] = (st, reason[0] if reason else '')
for line in open(results):
    name, st = line.split()
    if st == 'skip':
        entries[name] = ('skip', entries.get(name, ('', 'skipped by smbtorture'))[1] or 'skipped by smbtorture')
    elif st == 'pass':
        if entries.get(name, ('', ''))[0] == 'flaky':
            continue
        entries[name] = ('pass', '')
    else:
        old = entries.get(name, ('', ''))
        if old[0] == 'flaky':
            continue
        entries[name] = ('fail', old[1] if old[0] == 'fail' and old[1] else 'UNEXPLAINED')
with open(path, 'w') as f:
    for h in header:
        f.write(h + '\n')
    for s in suite_lines:
        f.write(s + '\n')
    for name in sorted(entries):
        st, reason = entries[name]
        f.write(f'{name} {st}' + (f' {reason}' if reason and st != 'pass' else '') + '\n')
