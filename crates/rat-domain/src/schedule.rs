//! Cron expressions, schedule time zones and the stored schedule record.

use std::str::FromStr;

use croner::parser::{CronParser, Seconds, Year};
use time::OffsetDateTime;

use crate::DomainError;
use crate::ids::{PipelineId, RunId, ScheduleId};

/// A validated cron expression: 5 fields, or 6 with leading seconds
/// (`@hourly`-style aliases are accepted too). At most 100 characters, the
/// size of `schedules.cron_expr`.
#[derive(Clone)]
pub struct CronExpr {
    text: String,
    cron: croner::Cron,
}

impl CronExpr {
    /// Longest accepted expression.
    pub const MAX_LEN: usize = 100;

    /// Parses and validates an expression.
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(DomainError::invalid("cron", "must not be empty"));
        }
        if trimmed.len() > Self::MAX_LEN {
            return Err(DomainError::invalid(
                "cron",
                format!("must be at most {} characters", Self::MAX_LEN),
            ));
        }
        let fields = trimmed.split_whitespace().count();
        if !(trimmed.starts_with('@') || fields == 5 || fields == 6) {
            return Err(DomainError::invalid(
                "cron",
                format!("expected 5 fields (or 6 with leading seconds), got {fields}"),
            ));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build()
            .parse(trimmed)
            .map_err(|e| DomainError::invalid("cron", e.to_string().to_lowercase()))?;
        Ok(CronExpr {
            text: trimmed.to_owned(),
            cron,
        })
    }

    /// `Invalid { cron }` when the expression can never fire (`0 0 30 2 *`:
    /// February has no 30th). Every expression that fires at all fires
    /// within 28 years of any instant (the cycle of weekdays and leap
    /// years), so one search from a fixed instant settles it. Applied to new
    /// expressions, not to stored ones (so a row stored before this check
    /// still reads back).
    pub fn check_fires(&self) -> Result<(), DomainError> {
        let reference = chrono::DateTime::from_timestamp(946_684_800, 0).expect("2000-01-01T00:00:00Z is valid");
        match self.cron.find_next_occurrence(&reference, true) {
            Ok(next) if next.timestamp() - reference.timestamp() <= 29 * 366 * 86_400 => Ok(()),
            _ => Err(DomainError::invalid("cron", "it can never fire (no date matches it)")),
        }
    }

    /// The expression as written (trimmed).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first slot strictly after `after`, evaluated in `zone`.
    ///
    /// Daylight-saving rules (croner's): a local time that does not exist fires
    /// at the first instant after the gap; a local time that occurs twice fires
    /// once. `None` when the expression never matches again.
    pub fn next_after(&self, after: OffsetDateTime, zone: &ScheduleTimezone) -> Option<OffsetDateTime> {
        let start =
            chrono::DateTime::from_timestamp(after.unix_timestamp(), after.nanosecond())?.with_timezone(&zone.0);
        let next = self.cron.find_next_occurrence(&start, false).ok()?;
        let nanos = i128::from(next.timestamp()) * 1_000_000_000 + i128::from(next.timestamp_subsec_nanos());
        OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()
    }
}

impl std::fmt::Debug for CronExpr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("CronExpr").field(&self.text).finish()
    }
}

impl std::fmt::Display for CronExpr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialEq for CronExpr {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for CronExpr {}

impl FromStr for CronExpr {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// An IANA time zone a schedule is evaluated in (default `UTC`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleTimezone(chrono_tz::Tz);

impl ScheduleTimezone {
    /// Coordinated Universal Time.
    pub const UTC: ScheduleTimezone = ScheduleTimezone(chrono_tz::Tz::UTC);

    /// Parses an IANA name such as `Europe/Paris`.
    pub fn parse(name: &str) -> Result<Self, DomainError> {
        chrono_tz::Tz::from_str(name)
            .map(ScheduleTimezone)
            .map_err(|_| DomainError::invalid("timezone", format!("{name:?} is not an IANA time zone name")))
    }

    /// The IANA name.
    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    /// Every name [`ScheduleTimezone::parse`] takes (for the API's document).
    pub fn names() -> impl Iterator<Item = &'static str> {
        chrono_tz::TZ_VARIANTS.iter().map(|zone| zone.name())
    }
}

impl Default for ScheduleTimezone {
    fn default() -> Self {
        Self::UTC
    }
}

impl std::fmt::Display for ScheduleTimezone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A cron schedule as stored in `schedules`.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// Primary key.
    pub id: ScheduleId,
    /// The pipeline it starts.
    pub pipeline_id: PipelineId,
    /// When it fires.
    pub cron_expr: CronExpr,
    /// Time zone the expression is evaluated in.
    pub timezone: ScheduleTimezone,
    /// Disabled schedules never fire.
    pub enabled: bool,
    /// The last run it created.
    pub last_run_id: Option<RunId>,
    /// When it last fired.
    pub last_run_at: Option<OffsetDateTime>,
    /// The next slot, pre-computed.
    pub next_run_at: Option<OffsetDateTime>,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Last modification time.
    pub updated_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {

    #[test]
    fn expressions_that_can_never_fire_are_told_apart() {
        for never in ["0 0 30 2 *", "0 0 31 4 *", "0 0 31 6,9,11 *"] {
            let err = CronExpr::parse(never).unwrap().check_fires().unwrap_err();
            assert!(err.to_string().contains("never fire"), "{never}: {err}");
        }
        for fires in [
            "0 0 29 2 *",
            "0 0 29 2 1",
            "* * * * *",
            "@yearly",
            "*/5 * * * * *",
            "0 0 31 * *",
        ] {
            CronExpr::parse(fires)
                .unwrap()
                .check_fires()
                .unwrap_or_else(|e| panic!("{fires}: {e}"));
        }
    }
    use super::*;
    use time::macros::datetime;

    #[test]
    fn accepts_five_and_six_fields() {
        assert!(CronExpr::parse("*/5 * * * *").is_ok());
        assert!(CronExpr::parse("30 */5 * * * *").is_ok());
        assert!(CronExpr::parse("@hourly").is_ok());
    }

    #[test]
    fn refuses_malformed_expressions() {
        for bad in [
            "",
            "* * * *",
            "* * * * * * *",
            "61 * * * *",
            "* * * * MONDAY-ish",
            "not a cron",
        ] {
            assert!(CronExpr::parse(bad).is_err(), "{bad:?}");
        }
        assert!(CronExpr::parse(&format!("0 0 * * {}", "1,".repeat(60))).is_err());
    }

    #[test]
    fn next_slot_is_strictly_after() {
        let every_five = CronExpr::parse("*/5 * * * *").unwrap();
        let utc = ScheduleTimezone::UTC;
        assert_eq!(
            every_five.next_after(datetime!(2026-01-01 10:00:00 UTC), &utc),
            Some(datetime!(2026-01-01 10:05:00 UTC))
        );
        assert_eq!(
            every_five.next_after(datetime!(2026-01-01 10:03:10 UTC), &utc),
            Some(datetime!(2026-01-01 10:05:00 UTC))
        );
        let every_second = CronExpr::parse("* * * * * *").unwrap();
        assert_eq!(
            every_second.next_after(datetime!(2026-01-01 10:00:00.5 UTC), &utc),
            Some(datetime!(2026-01-01 10:00:01 UTC))
        );
    }

    #[test]
    fn evaluates_in_the_schedule_time_zone() {
        let daily_nine = CronExpr::parse("0 9 * * *").unwrap();
        let paris = ScheduleTimezone::parse("Europe/Paris").unwrap();
        // 09:00 in Paris in January is 08:00 UTC.
        assert_eq!(
            daily_nine.next_after(datetime!(2026-01-15 00:00:00 UTC), &paris),
            Some(datetime!(2026-01-15 08:00:00 UTC))
        );
        assert!(ScheduleTimezone::parse("Mars/Olympus").is_err());
    }

    #[test]
    fn a_local_time_in_the_spring_gap_fires_once_after_the_gap() {
        // 2026-03-29 02:30 does not exist in Paris (02:00 -> 03:00).
        let at_two_thirty = CronExpr::parse("30 2 * * *").unwrap();
        let paris = ScheduleTimezone::parse("Europe/Paris").unwrap();
        let next = at_two_thirty
            .next_after(datetime!(2026-03-28 12:00:00 UTC), &paris)
            .unwrap();
        // First instant after the gap: 03:00 CEST = 01:00 UTC.
        assert_eq!(next, datetime!(2026-03-29 01:00:00 UTC));
    }

    #[test]
    fn a_repeated_local_time_fires_once() {
        // 2026-10-25 02:30 occurs twice in Paris.
        let at_two_thirty = CronExpr::parse("30 2 * * *").unwrap();
        let paris = ScheduleTimezone::parse("Europe/Paris").unwrap();
        let first = at_two_thirty
            .next_after(datetime!(2026-10-24 12:00:00 UTC), &paris)
            .unwrap();
        let second = at_two_thirty.next_after(first, &paris).unwrap();
        assert_eq!(second - first, time::Duration::hours(24) + time::Duration::hours(1));
    }
}
