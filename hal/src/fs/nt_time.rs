//! NT FILETIME (100 ns intervals since 1601-01-01 UTC) <-> Unix time.
//!
//! Conversions saturate: times before 1601 become 0, times past the end of
//! the FILETIME range become `u64::MAX`. Unix to FILETIME truncates to the
//! 100 ns unit.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds from 1601-01-01 to 1970-01-01.
pub const EPOCH_DIFF_SECS: i64 = 11_644_473_600;
/// 100 ns units per second.
pub const TICKS_PER_SEC: u64 = 10_000_000;
/// The FILETIME of the Unix epoch.
pub const UNIX_EPOCH_FILETIME: u64 = EPOCH_DIFF_SECS as u64 * TICKS_PER_SEC;

/// Unix time (seconds, nanoseconds) to FILETIME. `nanos` above a second
/// carries into the seconds.
pub fn from_unix(secs: i64, nanos: u32) -> u64 {
    let ticks = (i128::from(secs) + i128::from(EPOCH_DIFF_SECS)) * i128::from(TICKS_PER_SEC)
        + i128::from(nanos / 100);
    u64::try_from(ticks.max(0)).unwrap_or(u64::MAX)
}

/// FILETIME to Unix time (seconds, nanoseconds; nanoseconds < 10^9).
pub fn to_unix(ft: u64) -> (i64, u32) {
    let secs = (ft / TICKS_PER_SEC) as i64 - EPOCH_DIFF_SECS;
    let nanos = ((ft % TICKS_PER_SEC) * 100) as u32;
    (secs, nanos)
}

/// A `SystemTime` as FILETIME.
pub fn from_system_time(t: SystemTime) -> u64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => from_unix(
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            d.subsec_nanos(),
        ),
        Err(e) => {
            let d = e.duration();
            let secs = -i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            match d.subsec_nanos() {
                0 => from_unix(secs, 0),
                n => from_unix(secs - 1, 1_000_000_000 - n),
            }
        }
    }
}

/// The current time as FILETIME.
pub fn now() -> u64 {
    from_system_time(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn known_values() {
        assert_eq!(from_unix(0, 0), 116_444_736_000_000_000);
        assert_eq!(UNIX_EPOCH_FILETIME, 116_444_736_000_000_000);
        // 2009-02-13T23:31:30Z
        assert_eq!(from_unix(1_234_567_890, 0), 128_790_414_900_000_000);
        assert_eq!(to_unix(128_790_414_900_000_000), (1_234_567_890, 0));
        assert_eq!(to_unix(0), (-EPOCH_DIFF_SECS, 0));
    }

    #[test]
    fn round_trip_keeps_100ns() {
        for (s, n) in [
            (0i64, 0u32),
            (1_700_000_000, 123_456_700),
            (-1, 999_999_900),
            (-EPOCH_DIFF_SECS, 100),
        ] {
            assert_eq!(to_unix(from_unix(s, n)), (s, n));
        }
        // sub-100ns parts are truncated
        assert_eq!(to_unix(from_unix(5, 123)), (5, 100));
    }

    #[test]
    fn saturates() {
        assert_eq!(from_unix(-EPOCH_DIFF_SECS - 1, 0), 0);
        assert_eq!(from_unix(i64::MIN, 0), 0);
        assert_eq!(from_unix(i64::MAX, 999_999_999), u64::MAX);
        let (s, n) = to_unix(u64::MAX);
        assert!(s > 0 && n < 1_000_000_000);
    }

    #[test]
    fn system_time() {
        let t = UNIX_EPOCH + Duration::new(10, 500);
        assert_eq!(from_system_time(t), from_unix(10, 500));
        let before = UNIX_EPOCH - Duration::new(1, 250_000_000);
        assert_eq!(from_system_time(before), from_unix(-2, 750_000_000));
        assert!(now() > from_unix(1_600_000_000, 0));
    }
}
