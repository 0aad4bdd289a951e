//! The guest's clock, which the host sets: nothing in the guest can check it,
//! so the provenance says its timestamps are host-provided and unverified
//! ([`CLOCK_PROVENANCE`]), and a clock earlier than this binary's own build
//! date ([`BUILD_EPOCH`]) is refused outright: it is certainly wrong.
//!
//! The build date is reproducible: `SOURCE_DATE_EPOCH` at compile time (the
//! image build sets it to the time of the last commit that changed kettle-init's
//! inputs, scripts/guest-epoch.sh), never the wall clock of the
//! machine that compiled it, and never earlier than [`FALLBACK_BUILD_EPOCH`],
//! the date this check was written (no build of this code can be older).

use std::time::{SystemTime, UNIX_EPOCH};

use kettle_provenance::timestamp::format_rfc3339_utc;
use thiserror::Error;

/// 2026-12-01T00:00:00Z: the floor of [`BUILD_EPOCH`] (when this code was written).
pub const FALLBACK_BUILD_EPOCH: i64 = 1_796_083_200;

/// This kettle-init's build date (Unix seconds): the larger of `SOURCE_DATE_EPOCH` at
/// compile time and [`FALLBACK_BUILD_EPOCH`].
pub const BUILD_EPOCH: i64 = {
    let from_env = parse_epoch(option_env!("SOURCE_DATE_EPOCH"));
    if from_env > FALLBACK_BUILD_EPOCH {
        from_env
    } else {
        FALLBACK_BUILD_EPOCH
    }
};

/// The value of internalParameters `kettle_clock`: what the timestamps are worth.
pub const CLOCK_PROVENANCE: &str = "host-provided, unverified";

/// Unix seconds from a decimal `SOURCE_DATE_EPOCH`; absent or empty is 0. A malformed
/// value fails the build (a const panic), rather than silently weakening the clock check.
const fn parse_epoch(value: Option<&str>) -> i64 {
    let Some(text) = value else { return 0 };
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut n: i64 = 0;
    while i < bytes.len() {
        let b = bytes[i];
        assert!(
            b.is_ascii_digit() && i < 18,
            "SOURCE_DATE_EPOCH must be decimal Unix seconds"
        );
        n = n * 10 + (b - b'0') as i64;
        i += 1;
    }
    n
}

/// Where "now" comes from: the system clock, or (tests) a fixed instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Clock {
    /// The system clock (in the guest: whatever the host set).
    #[default]
    System,
    /// Always this many Unix seconds (tests inject a clock without touching the system's).
    Fixed(i64),
}

/// A clock that cannot be honest.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ClockError {
    /// Earlier than this binary's build date.
    #[error("the clock reads {} ({now}), before this kettle-init was built ({} = {floor}); the host sets the guest's clock, and one this far behind cannot give honest timestamps: fix the host's clock (e.g. NTP) and build again", format_rfc3339_utc(*.now), format_rfc3339_utc(*.floor))]
    BeforeBuild {
        /// What the clock said (Unix seconds).
        now: i64,
        /// [`BUILD_EPOCH`].
        floor: i64,
    },
    /// The finish time is earlier than the start time.
    #[error("the clock went backwards during the build (started {}, finished {}); the host changed the guest's clock: fix the host's clock and build again", format_rfc3339_utc(*.started), format_rfc3339_utc(*.finished))]
    WentBackwards {
        /// Start (Unix seconds).
        started: i64,
        /// Finish (Unix seconds).
        finished: i64,
    },
}

impl Clock {
    /// Now, in Unix seconds (a clock before 1970 reads as a negative number).
    pub fn now(self) -> i64 {
        match self {
            Clock::Fixed(t) => t,
            Clock::System => match SystemTime::now().duration_since(UNIX_EPOCH) {
                Ok(d) => d.as_secs() as i64,
                Err(e) => -(e.duration().as_secs() as i64),
            },
        }
    }

    /// Now, refused when it is before [`BUILD_EPOCH`].
    pub fn checked_now(self) -> Result<i64, ClockError> {
        check_not_before_build(self.now())
    }
}

/// Refuses a time (Unix seconds) before [`BUILD_EPOCH`].
pub fn check_not_before_build(now: i64) -> Result<i64, ClockError> {
    if now < BUILD_EPOCH {
        return Err(ClockError::BeforeBuild {
            now,
            floor: BUILD_EPOCH,
        });
    }
    Ok(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fallback_is_2026_12_01_and_the_floor_never_below_it() {
        assert_eq!(
            format_rfc3339_utc(FALLBACK_BUILD_EPOCH),
            "2026-12-01T00:00:00Z"
        );
        const { assert!(BUILD_EPOCH >= FALLBACK_BUILD_EPOCH) };
        assert_eq!(parse_epoch(None), 0);
        assert_eq!(parse_epoch(Some("")), 0);
        assert_eq!(parse_epoch(Some("1796163331")), 1_796_163_331);
    }

    #[test]
    fn a_clock_before_the_build_date_is_refused() {
        let before = Clock::Fixed(BUILD_EPOCH - 1);
        let err = before.checked_now().unwrap_err();
        assert!(matches!(err, ClockError::BeforeBuild { .. }));
        assert!(err.to_string().contains("fix the host's clock"), "{err}");
        assert_eq!(Clock::Fixed(BUILD_EPOCH).checked_now(), Ok(BUILD_EPOCH));
        assert!(
            Clock::System.checked_now().is_ok(),
            "this machine's clock is sane"
        );
    }
}
