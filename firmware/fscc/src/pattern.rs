//! File name matching against QUERY_DIRECTORY search patterns
//! (MS-FSA 2.1.4.4, wildcards of MS-FSA 2.1.4.3).

/// DOS_STAR: zero or more characters, never reaching past the final '.'
/// of the name (it may end right before that '.' or right after it).
const DOS_STAR: char = '<';
/// DOS_QM: any single character; at a '.' or the end of the name it
/// matches nothing and moves on.
const DOS_QM: char = '>';
/// DOS_DOT: a '.' or, at the end of the name, nothing.
const DOS_DOT: char = '"';

fn is_wildcard(c: char) -> bool {
    matches!(c, '*' | '?' | DOS_STAR | DOS_QM | DOS_DOT)
}

/// Simple uppercase of one character: the single-character mapping of
/// `char::to_uppercase`, or `c` itself when the mapping is several
/// characters (such as 'ß').
fn fold(c: char) -> char {
    let mut up = c.to_uppercase();
    match (up.next(), up.next()) {
        (Some(u), None) => u,
        _ => c,
    }
}

/// MS-FSA 2.1.4.4: does file name `name` match the expression `pattern`?
/// Case-insensitive (simple per-character uppercase).
///
/// Wildcards (MS-FSA 2.1.4.3): '*' any run of characters; '?' exactly one
/// character; '<' (DOS_STAR) any run of characters that does not go past
/// the final '.' of the name ("until encountering and matching the final
/// ."), so "<.txt" and "<txt" both match "a.b.txt"; '>' (DOS_QM) one character, or nothing at a '.' or at the end
/// of the name; '"' (DOS_DOT) a '.', or nothing at the end of the name.
///
/// Part 1 of the algorithm is applied first: an empty pattern matches only
/// an empty name and an empty name only an empty pattern; "*" and "*.*"
/// match every name. Part 2 is evaluated like Windows'
/// FsRtlIsNameInExpression: the set of expression positions reachable
/// after each name character, where reaching the end of the expression
/// through wildcards that match nothing counts as having consumed the
/// character being examined (so "a>" matches "a.", as on Windows).
pub fn name_matches(pattern: &str, name: &str) -> bool {
    // Part 1 -- special cases.
    if pattern.is_empty() || name.is_empty() {
        return pattern.is_empty() && name.is_empty();
    }
    if pattern == "*" || pattern == "*.*" {
        return true;
    }

    let expr: Vec<char> = pattern.chars().map(fold).collect();
    let name: Vec<char> = name.chars().map(fold).collect();
    if expr[0] == '*' && !expr[1..].iter().copied().any(is_wildcard) {
        let tail = &expr[1..];
        return name.len() >= tail.len() && name[name.len() - tail.len()..] == *tail;
    }

    // Part 2. `states[p]`: the expression has matched up to position p
    // (0..=n, n meaning the whole expression) for the name so far.
    let n = expr.len();
    let mut states = vec![false; n + 1];
    let mut next = vec![false; n + 1];
    states[0] = true;

    // For DOS_STAR: the index of the name's final '.'.
    let last_dot = name.iter().rposition(|&c| c == '.');

    let mut i = 0;
    loop {
        let finished = i == name.len();
        if finished && states[n] {
            return true;
        }
        let c = name.get(i).copied().unwrap_or('\0');
        let later_dot = last_dot.is_some_and(|d| d > i);

        next.iter_mut().for_each(|s| *s = false);
        // Highest expression position examined for this character: a chain
        // starting at or below it is a suffix of one already followed, so
        // every position is examined at most once per name character.
        let mut explored: Option<usize> = None;
        for (p, &on) in states[..n].iter().enumerate() {
            if !on || explored.is_some_and(|e| p <= e) {
                continue;
            }
            // Follow the expression from p for the current character (or
            // the end of the name), through wildcards that match nothing.
            let mut q = p;
            while q < n {
                let e = expr[q];
                let zero_width = match e {
                    '*' => {
                        if !finished {
                            next[q] = true; // consume c, stay on '*'
                        }
                        true
                    }
                    DOS_STAR => {
                        if !finished {
                            if c != '.' || later_dot {
                                next[q] = true; // consume c, stay on '<'
                            } else {
                                next[q + 1] = true; // consume the final '.', end '<'
                            }
                        }
                        true
                    }
                    DOS_QM => {
                        if finished || c == '.' {
                            true
                        } else {
                            next[q + 1] = true;
                            false
                        }
                    }
                    DOS_DOT => {
                        if finished {
                            true
                        } else {
                            if c == '.' {
                                next[q + 1] = true;
                            }
                            false
                        }
                    }
                    '?' => {
                        if !finished {
                            next[q + 1] = true;
                        }
                        false
                    }
                    literal => {
                        if !finished && literal == c {
                            next[q + 1] = true;
                        }
                        false
                    }
                };
                if !zero_width {
                    break;
                }
                q += 1;
                if q == n {
                    next[n] = true;
                }
            }
            explored = Some(q);
        }
        std::mem::swap(&mut states, &mut next);
        if finished {
            return states[n];
        }
        if !states.iter().any(|&s| s) {
            return false;
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_is_single_char() {
        assert_eq!(fold('a'), 'A');
        assert_eq!(fold('ä'), 'Ä');
        assert_eq!(fold('ß'), 'ß');
        assert_eq!(fold('1'), '1');
    }
}
