//! After-hours windows as a schedule (atlas.toml's `[targets.T.windows]`): when a target's work
//! may run. A daily window opens at `open` and closes at `close` (local times in `timezone`,
//! UTC by default; a window that closes earlier in the day than it opens runs overnight into
//! the next day) on the `days` it opens (default: every day); `dates` adds windows of their
//! own (`{open = "2026-12-24T18:00", close = "2026-12-27T08:00"}`, in the same time zone).
//! [`Schedule::is_open`] says whether the target may run at an instant: a state, not an edge,
//! so a clock that jumps, or a controller that was down, lands in the right state at its next
//! look. Each day's window is turned into instants in its time zone, so it keeps its local
//! hours across daylight saving time, and a night when the clocks go back does not open it
//! twice.

use jiff::civil::{DateTime, Time};
use jiff::tz::TimeZone;
pub use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The most explicit windows (`dates`) a target may list.
pub const MAX_DATES: usize = 64;

/// `[targets.T.windows]` as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSchedule {
    /// The daily opening, `HH:MM`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open: Option<String>,
    /// The daily closing, `HH:MM` (earlier than `open`: the next day).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close: Option<String>,
    /// The days the daily window opens (`mon` … `sun`); every day when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<String>,
    /// An IANA time zone (`Europe/Berlin`); UTC when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Windows of their own, from a date and time to another.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dates: Vec<DateWindow>,
}

/// One explicit window: `YYYY-MM-DDTHH:MM` to `YYYY-MM-DDTHH:MM`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DateWindow {
    pub open: String,
    pub close: String,
}

/// A schedule checked and ready to ask.
#[derive(Debug, Clone)]
pub struct Schedule {
    daily: Option<(Time, Time, [bool; 7])>,
    dates: Vec<(Timestamp, Timestamp)>,
    tz: TimeZone,
    text: String,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn time_of_day(field: &str, text: &str) -> Result<Time, String> {
    let two_digits = |t: &str| t.len() == 2 && t.bytes().all(|b| b.is_ascii_digit());
    let parsed = text.split_once(':').and_then(|(h, m)| {
        if !two_digits(h) || !two_digits(m) {
            return None;
        }
        let (h, m) = (h.parse::<i8>().ok()?, m.parse::<i8>().ok()?);
        Time::new(h, m, 0, 0).ok()
    });
    parsed
        .ok_or_else(|| format!("`{field}`: {text:?} is not a time of day (HH:MM, 00:00 to 23:59)"))
}

fn days(names: &[String]) -> Result<[bool; 7], String> {
    if names.is_empty() {
        return Ok([true; 7]);
    }
    let mut set = [false; 7];
    for name in names {
        let index = DAYS
            .iter()
            .position(|d| name.eq_ignore_ascii_case(d))
            .ok_or_else(|| format!("`days`: {name:?} is not one of {}", DAYS.join(", ")))?;
        set[index] = true;
    }
    Ok(set)
}

impl WindowSchedule {
    /// Checks the schedule: times, days, the time zone, and windows that are empty or overlap.
    pub fn parse(&self) -> Result<Schedule, String> {
        let tz = match &self.timezone {
            None => TimeZone::UTC,
            Some(name) => TimeZone::get(name)
                .map_err(|_| format!("`timezone`: {name:?} is not a time zone this machine knows (IANA names: Europe/Berlin, America/New_York, UTC)"))?,
        };
        let daily = match (&self.open, &self.close) {
            (None, None) => None,
            (Some(open), Some(close)) => {
                let (open, close) = (time_of_day("open", open)?, time_of_day("close", close)?);
                if open == close {
                    return Err(
                        "`open` and `close` are the same time: the window would be empty".into(),
                    );
                }
                Some((open, close, days(&self.days)?))
            }
            _ => return Err("a daily window needs both `open` and `close`".into()),
        };
        if self.dates.len() > MAX_DATES {
            return Err(format!("`dates`: at most {MAX_DATES} windows"));
        }
        let mut dates = Vec::new();
        for (i, d) in self.dates.iter().enumerate() {
            let at = |field: &str, text: &str| -> Result<Timestamp, String> {
                text.parse::<DateTime>()
                    .ok()
                    .and_then(|dt| dt.to_zoned(tz.clone()).ok())
                    .map(|z| z.timestamp())
                    .ok_or_else(|| format!("`dates[{i}].{field}`: {text:?} is not a date and time (YYYY-MM-DDTHH:MM)"))
            };
            let (open, close) = (at("open", &d.open)?, at("close", &d.close)?);
            if close <= open {
                return Err(format!("`dates[{i}]`: it closes before it opens (empty)"));
            }
            dates.push((open, close));
        }
        dates.sort();
        if let Some(w) = dates.windows(2).find(|w| w[1].0 < w[0].1) {
            return Err(format!(
                "`dates`: the windows opening at {} and {} overlap",
                w[0].0, w[1].0
            ));
        }
        if daily.is_none() && dates.is_empty() {
            return Err("no window at all: give `open` and `close`, or `dates`".into());
        }
        let text = serde_json::to_string(self).unwrap_or_default();
        Ok(Schedule {
            daily,
            dates,
            tz,
            text,
        })
    }
}

/// A daily window as two cron schedules (minute hour * * days), for CronJobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crons {
    pub open: String,
    pub close: String,
    /// The IANA time zone the hours are in (a CronJob's `timeZone`), when not UTC.
    pub time_zone: Option<String>,
}

impl WindowSchedule {
    /// The daily window as cron schedules; date windows have no cron form (an error says so).
    pub fn crons(&self) -> Result<Crons, String> {
        let schedule = self.parse()?;
        if !self.dates.is_empty() {
            return Err("`dates` windows have no cron form: a CronJob opens and closes daily windows only (use `atlas windows run` for them)".into());
        }
        let (open, close, days) = schedule
            .daily
            .ok_or("no daily window (`open` and `close`)")?;
        // cron's days: 0 = Sunday; ours: 0 = Monday.
        let list = |shift: usize| -> String {
            if days.iter().all(|d| *d) {
                return "*".into();
            }
            let mut numbers: Vec<usize> = (0..7)
                .filter(|d| days[*d])
                .map(|d| (d + 1 + shift) % 7)
                .collect();
            numbers.sort_unstable();
            numbers
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        let cron = |t: Time, shift| format!("{} {} * * {}", t.minute(), t.hour(), list(shift));
        // A window that closes earlier in the day than it opens closes on the next day.
        let overnight = usize::from(close < open);
        Ok(Crons {
            open: cron(open, 0),
            close: cron(close, overnight),
            time_zone: self.timezone.clone().filter(|tz| tz != "UTC"),
        })
    }
}

impl Schedule {
    /// Whether the target's work may run at `at`.
    pub fn is_open(&self, at: Timestamp) -> bool {
        if self.dates.iter().any(|(o, c)| *o <= at && at < *c) {
            return true;
        }
        let Some((open, close, days)) = self.daily else {
            return false;
        };
        // The window that opened last, on today's or yesterday's date, as instants: a night
        // when the clocks go back (a wall-clock hour twice) cannot open it a second time.
        let today = at.to_zoned(self.tz.clone()).date();
        [today.yesterday(), Ok(today)]
            .into_iter()
            .filter_map(Result::ok)
            .filter(|day| days[day.weekday().to_monday_zero_offset() as usize])
            .any(|day| {
                let close_day = if open < close { Ok(day) } else { day.tomorrow() };
                let opened = day.to_datetime(open).to_zoned(self.tz.clone());
                let closes = close_day.and_then(|d| d.to_datetime(close).to_zoned(self.tz.clone()));
                matches!((opened, closes), (Ok(o), Ok(c)) if o.timestamp() <= at && at < c.timestamp())
            })
    }

    /// The schedule as written (for messages).
    pub fn describe(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(toml_text: &str) -> Result<Schedule, String> {
        toml::from_str::<WindowSchedule>(toml_text).unwrap().parse()
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn a_daily_window_becomes_two_cron_schedules() {
        let weekdays: WindowSchedule = toml::from_str(
            "open = \"19:30\"\nclose = \"07:00\"\ndays = [\"mon\", \"fri\"]\ntimezone = \"Europe/Berlin\"\n",
        )
        .unwrap();
        let crons = weekdays.crons().unwrap();
        // Opens Monday and Friday evenings; closes Tuesday and Saturday mornings.
        assert_eq!(crons.open, "30 19 * * 1,5");
        assert_eq!(crons.close, "0 7 * * 2,6");
        assert_eq!(crons.time_zone.as_deref(), Some("Europe/Berlin"));
        let daily: WindowSchedule =
            toml::from_str("open = \"08:00\"\nclose = \"18:15\"\n").unwrap();
        let crons = daily.crons().unwrap();
        assert_eq!(
            (crons.open.as_str(), crons.close.as_str()),
            ("0 8 * * *", "15 18 * * *")
        );
        assert_eq!(crons.time_zone, None);
        let sunday: WindowSchedule =
            toml::from_str("open = \"22:00\"\nclose = \"06:00\"\ndays = [\"sun\"]\n").unwrap();
        assert_eq!(sunday.crons().unwrap().close, "0 6 * * 1");
        let dated: WindowSchedule = toml::from_str(
            "[[dates]]\nopen = \"2026-12-24T18:00\"\nclose = \"2026-12-27T08:00\"\n",
        )
        .unwrap();
        assert!(dated.crons().unwrap_err().contains("no cron form"));
    }

    #[test]
    fn an_overnight_window_on_weekdays_is_open_at_night_and_closed_by_day() {
        let s = schedule("open = \"19:00\"\nclose = \"07:00\"\ndays = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\"]\ntimezone = \"Europe/Berlin\"").unwrap();
        // 2026-12-02 is a Wednesday; Berlin is UTC+1 in December.
        assert!(!s.is_open(at("2026-12-02T08:00:00Z")), "09:00 Berlin");
        assert!(s.is_open(at("2026-12-02T18:30:00Z")), "19:30 Berlin");
        assert!(
            s.is_open(at("2026-12-03T05:59:00Z")),
            "06:59 the next morning"
        );
        assert!(!s.is_open(at("2026-12-03T06:00:00Z")), "07:00: closed");
        // Friday night runs into Saturday morning; Saturday night does not open.
        assert!(s.is_open(at("2026-12-05T05:00:00Z")), "Saturday 06:00");
        assert!(!s.is_open(at("2026-12-05T20:00:00Z")), "Saturday 21:00");
        // In summer (UTC+2) the window keeps its local hours.
        assert!(
            s.is_open(at("2026-07-01T17:30:00Z")),
            "19:30 Berlin in July"
        );
        assert!(
            !s.is_open(at("2026-07-01T16:30:00Z")),
            "18:30 Berlin in July"
        );
    }

    #[test]
    fn the_night_the_clocks_go_back_does_not_open_the_window_twice() {
        // Berlin goes from 03:00 CEST back to 02:00 CET on 2026-10-25: 02:00-02:59 twice.
        let s =
            schedule("open = \"19:00\"\nclose = \"02:30\"\ntimezone = \"Europe/Berlin\"").unwrap();
        assert!(s.is_open(at("2026-10-25T00:29:00Z")), "02:29 CEST");
        assert!(!s.is_open(at("2026-10-25T00:31:00Z")), "02:31 CEST: closed");
        assert!(
            !s.is_open(at("2026-10-25T01:00:00Z")),
            "02:00 CET, the second time"
        );
        assert!(
            !s.is_open(at("2026-10-25T01:29:00Z")),
            "02:29 CET, the second time"
        );
        // The night the clocks go forward (02:00 CET to 03:00 CEST), it still closes.
        assert!(s.is_open(at("2026-03-29T00:59:00Z")), "01:59 CET");
        assert!(!s.is_open(at("2026-03-29T01:30:00Z")), "03:30 CEST");
    }

    #[test]
    fn explicit_dates_open_outside_the_daily_window() {
        let s = schedule("open = \"09:00\"\nclose = \"17:00\"\n[[dates]]\nopen = \"2026-12-24T18:00\"\nclose = \"2026-12-27T08:00\"").unwrap();
        assert!(s.is_open(at("2026-12-02T10:00:00Z")));
        assert!(!s.is_open(at("2026-12-02T18:00:00Z")));
        assert!(s.is_open(at("2026-12-25T23:00:00Z")), "Christmas");
        assert!(
            !s.is_open(at("2026-12-27T08:00:00Z")),
            "closed at its close"
        );
    }

    #[test]
    fn empty_overlapping_and_malformed_windows_are_refused() {
        for (text, why) in [
            ("open = \"19:00\"\nclose = \"19:00\"", "empty"),
            ("open = \"19:00\"", "both `open` and `close`"),
            ("open = \"25:00\"\nclose = \"07:00\"", "not a time of day"),
            ("open = \"7:0\"\nclose = \"07:00\"", "not a time of day"),
            ("open = \"19:00\"\nclose = \"07:00\"\ndays = [\"someday\"]", "not one of"),
            ("open = \"19:00\"\nclose = \"07:00\"\ntimezone = \"Mars/Olympus\"", "time zone"),
            ("", "no window at all"),
            ("[[dates]]\nopen = \"2026-12-24T18:00\"\nclose = \"2026-12-24T08:00\"", "closes before it opens"),
            ("[[dates]]\nopen = \"2026-12-24T18:00\"\nclose = \"2026-12-26T08:00\"\n[[dates]]\nopen = \"2026-12-25T18:00\"\nclose = \"2026-12-27T08:00\"", "overlap"),
            ("[[dates]]\nopen = \"christmas\"\nclose = \"2026-12-24T08:00\"", "not a date and time"),
        ] {
            let err = schedule(text).unwrap_err();
            assert!(err.contains(why), "{text:?}: {err}");
        }
    }
}
