//! Behaviour of `kaal_core::cron`: parsing, linting, simplifying, descriptions and
//! fire times, including daylight-saving transitions. Every instant is explicit.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use chrono::{DateTime, Datelike, Duration, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use kaal_core::cron::{self, CronExpr, CronLocale, English};

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

fn parse(expression: &str) -> CronExpr {
    CronExpr::parse(expression).unwrap_or_else(|e| panic!("{e}"))
}

fn fires(expression: &str, from: DateTime<Utc>, to: DateTime<Utc>, tz: Tz) -> Vec<DateTime<Utc>> {
    parse(expression).fire_times(from, to, tz)
}

const NEW_YORK: Tz = chrono_tz::America::New_York;
const LONDON: Tz = chrono_tz::Europe::London;

#[test]
fn parsed_expressions_can_be_shared_across_threads() {
    fn shareable<T: Send + Sync + Clone + std::fmt::Debug + 'static>(_: &T) {}
    let expr = parse("  0 9 * * mon ");
    shareable(&expr);
    assert_eq!(expr.as_str(), "  0 9 * * mon ");
    let copy = expr.clone();
    let next = std::thread::spawn(move || copy.next_after(utc(2026, 3, 4, 0, 0), Tz::UTC));
    assert_eq!(next.join().unwrap(), Some(utc(2026, 3, 9, 9, 0)));
}

// ---- macros, names, Sunday, leap day ----

#[test]
fn every_macro_fires_like_its_five_fields() {
    let after = utc(2026, 3, 4, 10, 20); // a Wednesday
    let cases = [
        ("@yearly", "0 0 1 1 *", utc(2027, 1, 1, 0, 0)),
        ("@annually", "0 0 1 1 *", utc(2027, 1, 1, 0, 0)),
        ("@monthly", "0 0 1 * *", utc(2026, 4, 1, 0, 0)),
        ("@weekly", "0 0 * * 0", utc(2026, 3, 8, 0, 0)),
        ("@daily", "0 0 * * *", utc(2026, 3, 5, 0, 0)),
        ("@midnight", "0 0 * * *", utc(2026, 3, 5, 0, 0)),
        ("@hourly", "0 * * * *", utc(2026, 3, 4, 11, 0)),
        ("@DAILY", "0 0 * * *", utc(2026, 3, 5, 0, 0)),
    ];
    let (from, to) = (utc(2026, 1, 1, 0, 0), utc(2028, 1, 1, 0, 0));
    for (name, fields, next) in cases {
        let expr = parse(name);
        assert_eq!(expr.as_str(), name);
        assert_eq!(expr.next_after(after, Tz::UTC), Some(next), "{name}");
        assert_eq!(
            expr.fire_times(from, to, NEW_YORK),
            parse(fields).fire_times(from, to, NEW_YORK),
            "{name}"
        );
    }
    assert_eq!(parse("@yearly").fire_times(from, to, Tz::UTC).len(), 3);
    assert_eq!(parse("@weekly").fire_times(from, to, Tz::UTC).len(), 104);
}

#[test]
fn month_and_weekday_names_are_case_insensitive() {
    let (from, to) = (utc(2026, 1, 1, 0, 0), utc(2027, 1, 1, 0, 0));
    let numeric = fires("0 12 * 1,7 1", from, to, Tz::UTC);
    assert_eq!(numeric.len(), 8); // four Mondays in January 2026, four in July
    assert_eq!(numeric[0], utc(2026, 1, 5, 12, 0));
    for named in [
        "0 12 * jan,jul mon",
        "0 12 * JAN,Jul MON",
        "0 12 * Jan,JUL Mon",
    ] {
        assert_eq!(fires(named, from, to, Tz::UTC), numeric, "{named}");
    }
    assert_eq!(
        fires("0 0 * mar-may wed-fri", from, to, Tz::UTC),
        fires("0 0 * 3-5 3-5", from, to, Tz::UTC)
    );
}

#[test]
fn zero_and_seven_are_both_sunday() {
    let (from, to) = (utc(2026, 3, 1, 0, 0), utc(2026, 4, 1, 0, 0));
    let sundays = vec![
        utc(2026, 3, 1, 0, 0),
        utc(2026, 3, 8, 0, 0),
        utc(2026, 3, 15, 0, 0),
        utc(2026, 3, 22, 0, 0),
        utc(2026, 3, 29, 0, 0),
    ];
    for expression in ["0 0 * * 0", "0 0 * * 7", "0 0 * * sun", "0 0 * * 0,7"] {
        assert_eq!(
            fires(expression, from, to, Tz::UTC),
            sundays,
            "{expression}"
        );
    }
    // Sunday closes a range as 7: Friday, Saturday and Sunday.
    let weekend = fires("0 0 * * fri-sun", from, to, Tz::UTC);
    assert_eq!(weekend, fires("0 0 * * 5-7", from, to, Tz::UTC));
    assert_eq!(weekend.len(), 13);
}

#[test]
fn february_29_fires_only_in_leap_years() {
    let expr = parse("0 0 29 2 *");
    let first = expr.next_after(utc(2026, 3, 1, 0, 0), Tz::UTC);
    assert_eq!(first, Some(utc(2028, 2, 29, 0, 0)));
    assert_eq!(
        expr.next_after(utc(2028, 2, 29, 0, 0), Tz::UTC),
        Some(utc(2032, 2, 29, 0, 0))
    );
}

#[test]
fn restricted_day_of_month_and_day_of_week_match_either() {
    // The 13th, and every Friday, of March 2026.
    let got = fires(
        "0 0 13 * fri",
        utc(2026, 3, 1, 0, 0),
        utc(2026, 3, 31, 0, 0),
        Tz::UTC,
    );
    let days: Vec<u32> = got.iter().map(|t| t.day()).collect();
    assert_eq!(days, [6, 13, 20, 27]);
    let got = fires(
        "0 0 1 * mon",
        utc(2026, 6, 1, 0, 0),
        utc(2026, 6, 30, 0, 0),
        Tz::UTC,
    );
    let days: Vec<u32> = got.iter().map(|t| t.day()).collect();
    assert_eq!(days, [1, 8, 15, 22, 29]); // June 1st 2026 is itself a Monday
}

#[test]
fn fire_times_bounds_are_inclusive_and_reversed_bounds_are_empty() {
    let expr = parse("*/10 * * * *");
    let got = expr.fire_times(utc(2026, 5, 1, 10, 0), utc(2026, 5, 1, 10, 30), Tz::UTC);
    assert_eq!(
        got,
        [
            utc(2026, 5, 1, 10, 0),
            utc(2026, 5, 1, 10, 10),
            utc(2026, 5, 1, 10, 20),
            utc(2026, 5, 1, 10, 30)
        ]
    );
    assert!(expr
        .fire_times(utc(2026, 5, 1, 11, 0), utc(2026, 5, 1, 10, 0), Tz::UTC)
        .is_empty());
    let mid = utc(2026, 5, 1, 10, 0) + Duration::seconds(1);
    assert_eq!(expr.next_after(mid, Tz::UTC), Some(utc(2026, 5, 1, 10, 10)));
    assert_eq!(
        expr.next_after(utc(2026, 5, 1, 10, 0), Tz::UTC),
        Some(utc(2026, 5, 1, 10, 10))
    );
    let day = expr.fire_times(utc(2026, 5, 1, 0, 0), utc(2026, 5, 1, 23, 59), Tz::UTC);
    assert_eq!(day.len(), 144);
    let minutes =
        parse("* * * * *").fire_times(utc(2026, 5, 1, 0, 0), utc(2026, 5, 1, 23, 59), NEW_YORK);
    assert_eq!(minutes.len(), 1440);
}

// ---- daylight saving: America/New_York (2026-03-08 02:00 EST -> 03:00 EDT,
// 2026-11-01 02:00 EDT -> 01:00 EST) and Europe/London (2026-03-29 01:00 GMT ->
// 02:00 BST, 2026-10-25 02:00 BST -> 01:00 GMT) ----

#[test]
fn new_york_spring_forward_fixed_time_in_the_gap_fires_once_right_after_it() {
    let got = fires(
        "30 2 * * *",
        utc(2026, 3, 7, 0, 0),
        utc(2026, 3, 9, 12, 0),
        NEW_YORK,
    );
    assert_eq!(
        got,
        [
            utc(2026, 3, 7, 7, 30), // 02:30 EST
            utc(2026, 3, 8, 7, 0),  // 02:30 does not exist: 03:00 EDT
            utc(2026, 3, 9, 6, 30), // 02:30 EDT
        ]
    );
    // Several skipped times collapse into one fire; a list is a fixed-time job.
    let got = fires(
        "0,15,30 2 * * *",
        utc(2026, 3, 8, 0, 0),
        utc(2026, 3, 8, 12, 0),
        NEW_YORK,
    );
    assert_eq!(got, [utc(2026, 3, 8, 7, 0)]);
    // A window starting exactly at the end of the gap still holds the deferred fire.
    let expr = parse("30 2 * * *");
    let end_of_gap = utc(2026, 3, 8, 7, 0);
    assert_eq!(
        expr.fire_times(end_of_gap, end_of_gap, NEW_YORK),
        [end_of_gap]
    );
    assert_eq!(
        expr.next_after(utc(2026, 3, 8, 6, 59), NEW_YORK),
        Some(end_of_gap)
    );
    assert_eq!(
        expr.next_after(end_of_gap, NEW_YORK),
        Some(utc(2026, 3, 9, 6, 30))
    );
}

#[test]
fn new_york_spring_forward_interval_job_skips_the_missing_minutes() {
    let got = fires(
        "*/30 * * * *",
        utc(2026, 3, 8, 6, 0),
        utc(2026, 3, 8, 8, 0),
        NEW_YORK,
    );
    // 01:00 EST, 01:30 EST, (02:00 and 02:30 do not exist), 03:00 EDT, 03:30, 04:00
    assert_eq!(
        got,
        [
            utc(2026, 3, 8, 6, 0),
            utc(2026, 3, 8, 6, 30),
            utc(2026, 3, 8, 7, 0),
            utc(2026, 3, 8, 7, 30),
            utc(2026, 3, 8, 8, 0)
        ]
    );
    let got = fires(
        "* 2 * * *",
        utc(2026, 3, 8, 0, 0),
        utc(2026, 3, 9, 0, 0),
        NEW_YORK,
    );
    assert!(got.is_empty(), "{got:?}");
}

#[test]
fn new_york_fall_back_fixed_time_fires_once_in_the_first_pass() {
    let got = fires(
        "30 1 * * *",
        utc(2026, 11, 1, 0, 0),
        utc(2026, 11, 2, 12, 0),
        NEW_YORK,
    );
    assert_eq!(got, [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]); // 01:30 EDT, 01:30 EST
    let got = fires(
        "0,30 1 * * *",
        utc(2026, 11, 1, 0, 0),
        utc(2026, 11, 1, 12, 0),
        NEW_YORK,
    );
    assert_eq!(got, [utc(2026, 11, 1, 5, 0), utc(2026, 11, 1, 5, 30)]);
    let expr = parse("30 1 * * *");
    assert_eq!(
        expr.next_after(utc(2026, 11, 1, 5, 30), NEW_YORK),
        Some(utc(2026, 11, 2, 6, 30))
    );
}

#[test]
fn new_york_fall_back_interval_job_keeps_firing_in_real_time() {
    let from = utc(2026, 11, 1, 4, 45); // 00:45 EDT
    let got = fires("*/15 * * * *", from, utc(2026, 11, 1, 7, 15), NEW_YORK);
    let every_15: Vec<_> = (0..11).map(|i| from + Duration::minutes(15 * i)).collect();
    assert_eq!(got, every_15); // through 01:xx EDT, 01:xx EST and on: no hole, no repeat
    let expr = parse("*/15 * * * *");
    // From the end of the first pass (01:50 EDT) the next fire is 01:00 EST.
    assert_eq!(
        expr.next_after(utc(2026, 11, 1, 5, 50), NEW_YORK),
        Some(utc(2026, 11, 1, 6, 0))
    );
    // A window inside the first pass reaches the second pass of earlier wall times.
    assert_eq!(
        expr.fire_times(utc(2026, 11, 1, 5, 50), utc(2026, 11, 1, 6, 10), NEW_YORK),
        [utc(2026, 11, 1, 6, 0)]
    );
}

#[test]
fn london_spring_forward_follows_the_same_rules() {
    let got = fires(
        "30 1 * * *",
        utc(2026, 3, 28, 0, 0),
        utc(2026, 3, 30, 12, 0),
        LONDON,
    );
    assert_eq!(
        got,
        [
            utc(2026, 3, 28, 1, 30),
            utc(2026, 3, 29, 1, 0),
            utc(2026, 3, 30, 0, 30)
        ]
    );
    let from = utc(2026, 3, 29, 0, 0);
    let got = fires("*/20 * * * *", from, utc(2026, 3, 29, 2, 0), LONDON);
    let every_20: Vec<_> = (0..7).map(|i| from + Duration::minutes(20 * i)).collect();
    assert_eq!(got, every_20); // 01:xx GMT never shows; 02:00 BST follows 00:40 GMT
}

#[test]
fn london_fall_back_follows_the_same_rules() {
    let got = fires(
        "30 1 * * *",
        utc(2026, 10, 25, 0, 0),
        utc(2026, 10, 26, 12, 0),
        LONDON,
    );
    assert_eq!(got, [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]); // 01:30 BST, 01:30 GMT
    let from = utc(2026, 10, 24, 23, 0); // 00:00 BST
    let got = fires("@hourly", from, utc(2026, 10, 25, 3, 0), LONDON);
    let hourly: Vec<_> = (0..5).map(|i| from + Duration::hours(i)).collect();
    assert_eq!(got, hourly); // 01:00 BST and 01:00 GMT both fire
    let got = fires(
        "@daily",
        utc(2026, 10, 24, 0, 0),
        utc(2026, 10, 26, 12, 0),
        LONDON,
    );
    assert_eq!(got, [utc(2026, 10, 24, 23, 0), utc(2026, 10, 26, 0, 0)]);
}

// ---- invalid input ----

#[test]
fn invalid_expressions_are_linted_and_rejected() {
    let cases: &[(&str, &[&str])] = &[
        ("*/61 * * * *", &[r#"minute: step 61 in "*/61" exceeds 59"#]),
        ("60 * * * *", &["minute: value 60 is out of range 0-59"]),
        ("* * 32 * *", &["day-of-month: value 32 is out of range 1-31"]),
        ("0 0 1 * * *", &["expected 5 fields (minute hour day-of-month month day-of-week) or a macro, got 6"]),
        ("", &["expected 5 fields (minute hour day-of-month month day-of-week) or a macro, got 0"]),
        ("   ", &["expected 5 fields (minute hour day-of-month month day-of-week) or a macro, got 0"]),
        ("@daily 5", &["expected 5 fields (minute hour day-of-month month day-of-week) or a macro, got 2"]),
        (
            "@fortnightly",
            &["unknown macro \"@fortnightly\": expected one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly"],
        ),
        (
            "60 24 0 13 8",
            &[
                "minute: value 60 is out of range 0-59",
                "hour: value 24 is out of range 0-23",
                "day-of-month: value 0 is out of range 1-31",
                "month: value 13 is out of range 1-12 or jan-dec",
                "day-of-week: value 8 is out of range 0-7 or sun-sat",
            ],
        ),
        ("1,61,70 * * * *", &["minute: value 61 is out of range 0-59", "minute: value 70 is out of range 0-59"]),
        ("*/0 * * * *", &[r#"minute: step 0 in "*/0" must be at least 1 (allowed 1-59)"#]),
        ("0 */24 * * *", &[r#"hour: step 24 in "*/24" exceeds 23"#]),
        ("5/15 * * * *", &[r#"minute: step in "5/15" needs "*" or a range before "/", e.g. "*/15" or "5-59/15""#]),
        ("30-10 * * * *", &[r#"minute: range "30-10" is reversed: 30 is after 10 (allowed 0-59)"#]),
        ("1,,2 * * * *", &[r#"minute: empty list item in "1,,2""#]),
        ("0 0 L * *", &[r#"day-of-month: "L" is not a number (allowed 1-31)"#]),
        ("0 0 15W * *", &[r#"day-of-month: "15W" is not a number (allowed 1-31)"#]),
        ("0 0 ? * *", &[r#"day-of-month: "?" is not a number (allowed 1-31)"#]),
        ("0 0 * * 5#3", &[r#"day-of-week: "5#3" is not a number or weekday name (allowed 0-7 or sun-sat)"#]),
        ("0 0 * Foo *", &[r#"month: "Foo" is not a number or month name (allowed 1-12 or jan-dec)"#]),
        ("mon * * * *", &[r#"minute: "mon" is not a number (allowed 0-59)"#]),
        ("0 0 30 feb *", &[r#"day-of-month: day 30 never occurs in month "feb" (allowed 1-29 there)"#]),
        ("0 0 31 4,6 *", &[r#"day-of-month: day 31 never occurs in month "4,6" (allowed 1-30 there)"#]),
        ("0 0 * * */8", &[r#"day-of-week: step 8 in "*/8" exceeds 7"#]),
        ("99999999999 * * * *", &["minute: value 99999999999 is out of range 0-59"]),
    ];
    for (expression, expected) in cases {
        let problems = cron::lint(expression);
        assert_eq!(problems, *expected, "lint({expression:?})");
        assert!(!cron::valid(expression), "{expression:?}");
        let error = CronExpr::parse(expression).expect_err(expression);
        assert_eq!(error.expression, *expression);
        assert_eq!(error.problems, *expected);
        assert_eq!(cron::simplify(expression).unwrap_err(), error);
    }
    let error = CronExpr::parse("60 24 * * *").unwrap_err();
    assert_eq!(
        error.to_string(),
        r#"invalid cron expression "60 24 * * *": minute: value 60 is out of range 0-59; hour: value 24 is out of range 0-23"#
    );
}

#[test]
fn valid_expressions_have_no_lint() {
    for expression in [
        "* * * * *",
        "*/15 0-4,8-12 * jan-mar,dec mon-fri",
        "1-30/5 */2 1,15 * 0-7",
        "0 0 31 * *",
        "0 0 30 feb mon", // fires on Mondays in February
        "59 23 31 12 7",
        " 0   9 * * * ",
    ] {
        assert_eq!(
            cron::lint(expression),
            Vec::<String>::new(),
            "{expression:?}"
        );
        assert!(cron::valid(expression));
    }
}

#[test]
fn garbage_never_panics() {
    let pieces = [
        "",
        "*",
        "*/",
        "/",
        "-",
        ",",
        "0",
        "7",
        "59",
        "60",
        "-1",
        "1-",
        "-5",
        "1-2-3",
        "1/2/3",
        "*/*",
        "L",
        "W",
        "#",
        "?",
        "@",
        "@daily",
        "jan",
        "sun",
        "ä",
        "٣",
        "4294967296",
        "1-4294967297/2",
    ];
    for a in pieces {
        for b in pieces {
            for expression in [
                format!("{a} {b} * * *"),
                format!("* * {a} {b} *"),
                format!("* * * {a} {b}"),
                format!("{a}{b}"),
                format!("{a},{b} {b}-{a} {a}/{b} * *"),
            ] {
                let problems = cron::lint(&expression);
                assert_eq!(CronExpr::parse(&expression).is_ok(), problems.is_empty());
                assert_eq!(
                    cron::valid(&expression),
                    problems.is_empty(),
                    "{expression:?}"
                );
                if let Ok(expr) = CronExpr::parse(&expression) {
                    let _ = expr.to_human();
                    let _ = expr.next_after(utc(2026, 1, 1, 0, 0), NEW_YORK);
                } else {
                    assert!(!problems.is_empty());
                }
            }
        }
    }
}

// ---- simplify and to_human ----

#[test]
fn simplify_prefers_the_canonical_macro() {
    let cases = [
        ("0 0 1 1 *", "@yearly"),
        ("@annually", "@yearly"),
        ("0 0 1 jan *", "@yearly"),
        ("0 0 1 * *", "@monthly"),
        ("0 0 1 1-12 *", "@monthly"),
        ("0 0 * * 0", "@weekly"),
        ("0 0 * * 7", "@weekly"),
        ("0 0 * * SUN", "@weekly"),
        ("0 0 * * *", "@daily"),
        ("@midnight", "@daily"),
        ("0 0 * * 0-6", "@daily"),
        ("0 * * * *", "@hourly"),
        ("0 0-23 * * *", "@hourly"),
        ("@HOURLY", "@hourly"),
        // Not a macro: normalised instead.
        ("0 0 1 * 1", "0 0 1 * 1"), // the 1st or Mondays
        ("0 0 1-31 * 0", "@daily"), // both restricted: either matches, so every day
        ("0 0 */1 * 0", "@daily"),
        ("  */5  9-17 *   * MON-FRI ", "*/5 9-17 * * mon-fri"),
        ("0 12 * JAN,Jul *", "0 12 * jan,jul *"),
        ("5 0 * * *", "5 0 * * *"),
    ];
    for (expression, canonical) in cases {
        assert_eq!(
            cron::simplify(expression).unwrap(),
            canonical,
            "{expression:?}"
        );
    }
}

#[test]
fn to_human_describes_in_english() {
    let cases = [
        ("* * * * *", "every minute"),
        ("*/15 * * * *", "every 15 minutes"),
        ("0 * * * *", "every hour"),
        ("@hourly", "every hour"),
        ("5 * * * *", "at minute 5 of every hour"),
        ("0 */2 * * *", "every 2 hours"),
        ("30 */6 * * *", "at minute 30 of every 6 hours"),
        ("30 9 * * 1-5", "at 09:30 on Monday through Friday"),
        ("0 0 1 * *", "at 00:00 on day 1 of the month"),
        ("@daily", "every day at 00:00"),
        ("@weekly", "at 00:00 on Sunday"),
        ("@yearly", "at 00:00 on day 1 of the month in January"),
        ("0 9,17 * * *", "every day at 09:00 and 17:00"),
        (
            "0,30 9 1,15 * *",
            "at 09:00 and 09:30 on days 1 and 15 of the month",
        ),
        (
            "0 12 * jan,jul sat,sun",
            "at 12:00 on Saturday and Sunday in January and July",
        ),
        (
            "0 0 13 * fri",
            "at 00:00 on day 13 of the month or on Friday",
        ),
        (
            "*/15 9-17 * * mon-fri",
            "every 15 minutes during hours 9 through 17 on Monday through Friday",
        ),
        ("* 9 * * *", "every minute during hour 9"),
        ("0,30 * * * *", "at minutes 0 and 30 of every hour"),
        (
            "1-30/5 9-17/2 * * *",
            "at minutes 1 through 30 in steps of 5 during hours 9 through 17 in steps of 2",
        ),
        ("0 0 * * fri-sun", "at 00:00 on Friday through Sunday"),
        ("0 0 * * 0,7", "at 00:00 on Sunday"),
    ];
    for (expression, human) in cases {
        assert_eq!(parse(expression).to_human(), human, "{expression:?}");
    }
}

#[test]
fn to_human_in_uses_the_given_locale() {
    struct Shouting;
    impl CronLocale for Shouting {
        fn every_minute(&self) -> String {
            English.every_minute().to_uppercase()
        }
        fn every_n_minutes(&self, n: u32) -> String {
            English.every_n_minutes(n)
        }
        fn every_hour(&self) -> String {
            English.every_hour()
        }
        fn every_n_hours(&self, n: u32) -> String {
            English.every_n_hours(n)
        }
        fn minute_of_every_hour(&self, m: u32) -> String {
            English.minute_of_every_hour(m)
        }
        fn minute_of_every_n_hours(&self, m: u32, n: u32) -> String {
            English.minute_of_every_n_hours(m, n)
        }
        fn at_times(&self, times: &str) -> String {
            format!("AT {times}")
        }
        fn every_day_at(&self, times: &str) -> String {
            English.every_day_at(times)
        }
        fn at_minutes(&self, m: &str, plural: bool) -> String {
            English.at_minutes(m, plural)
        }
        fn during_hours(&self, h: &str, plural: bool) -> String {
            English.during_hours(h, plural)
        }
        fn of_every_n_hours(&self, n: u32) -> String {
            English.of_every_n_hours(n)
        }
        fn on_days_of_month(&self, d: &str, plural: bool) -> String {
            English.on_days_of_month(d, plural)
        }
        fn on_weekdays(&self, w: &str) -> String {
            format!("ON {w}")
        }
        fn in_months(&self, m: &str) -> String {
            English.in_months(m)
        }
        fn either(&self, dom: &str, dow: &str) -> String {
            English.either(dom, dow)
        }
        fn weekday_name(&self, w: u32) -> String {
            English.weekday_name(w).to_uppercase()
        }
        fn month_name(&self, m: u32) -> String {
            English.month_name(m)
        }
        fn range(&self, start: &str, end: &str) -> String {
            format!("{start}..{end}")
        }
        fn stepped(&self, base: &str, step: u32) -> String {
            English.stepped(base, step)
        }
        fn list(&self, items: &[String]) -> String {
            items.join("+")
        }
        fn join(&self, phrases: &[String]) -> String {
            phrases.join(" / ")
        }
    }
    assert_eq!(parse("* * * * *").to_human_in(&Shouting), "EVERY MINUTE");
    assert_eq!(
        parse("30 9 * * 1-5,0").to_human_in(&Shouting),
        "AT 09:30 / ON MONDAY..FRIDAY+SUNDAY"
    );
    assert_eq!(
        parse("30 9 * * 1").to_human_in(&English),
        parse("30 9 * * 1").to_human()
    );
}

// ---- brute force: fire_times against a minute-by-minute scan ----

/// Test-side matcher: the fields as bit sets, matched against a wall-clock time.
struct Oracle {
    fields: [u64; 5],
    dom_star: bool,
    dow_star: bool,
    fixed_time: bool,
}

impl Oracle {
    fn new(expression: &str) -> Oracle {
        let expression = if expression == "@hourly" {
            "0 * * * *"
        } else {
            expression
        };
        let parts: Vec<&str> = expression.split_whitespace().collect();
        let months = [
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ];
        let days = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
        let value = |text: &str, names: &[&str], first: u32| -> u32 {
            match names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
                Some(i) => i as u32 + first,
                None => text.parse().unwrap(),
            }
        };
        let bits = |text: &str, min: u32, max: u32, names: &[&str], first: u32| -> u64 {
            let mut bits = 0u64;
            for part in text.split(',') {
                let (base, step) = match part.split_once('/') {
                    Some((base, step)) => (base, step.parse::<usize>().unwrap()),
                    None => (part, 1),
                };
                let (low, high) = match base.split_once('-') {
                    _ if base == "*" => (min, max),
                    Some((a, b)) => (value(a, names, first), value(b, names, first)),
                    None => (value(base, names, first), value(base, names, first)),
                };
                let high = if high == 0 && low > 0 && max == 7 {
                    7
                } else {
                    high
                };
                for v in (low..=high).step_by(step) {
                    bits |= 1 << v;
                }
            }
            if max == 7 && bits & (1 << 7) != 0 {
                bits |= 1;
            }
            bits
        };
        Oracle {
            fields: [
                bits(parts[0], 0, 59, &[], 0),
                bits(parts[1], 0, 23, &[], 0),
                bits(parts[2], 1, 31, &[], 0),
                bits(parts[3], 1, 12, &months, 1),
                bits(parts[4], 0, 7, &days, 0),
            ],
            dom_star: parts[2] == "*",
            dow_star: parts[4] == "*",
            fixed_time: !(parts[0].contains(['*', '/']) || parts[1].contains(['*', '/'])),
        }
    }

    fn matches(&self, wall: NaiveDateTime) -> bool {
        let has = |field: usize, v: u32| self.fields[field] & (1 << v) != 0;
        let dom = has(2, wall.day());
        let dow = has(4, wall.weekday().num_days_from_sunday());
        let day = if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        };
        has(0, wall.minute()) && has(1, wall.hour()) && has(3, wall.month()) && day
    }
}

/// One UTC minute seen in a zone: its wall clock, whether it is the first instant
/// of that wall clock, and the wall-clock minutes a gap skipped just before it.
struct Minute {
    at: DateTime<Utc>,
    wall: NaiveDateTime,
    first_instant: bool,
    skipped: Vec<NaiveDateTime>,
}

fn scan(tz: Tz, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Minute> {
    let mut out = Vec::new();
    let mut at = from;
    let mut previous_wall = (from - Duration::minutes(1))
        .with_timezone(&tz)
        .naive_local();
    while at <= to {
        let wall = at.with_timezone(&tz).naive_local();
        let earliest = tz.from_local_datetime(&wall).earliest().unwrap();
        let mut skipped = Vec::new();
        let mut w = previous_wall + Duration::minutes(1);
        while w < wall {
            skipped.push(w);
            w += Duration::minutes(1);
        }
        out.push(Minute {
            at,
            wall,
            first_instant: earliest == at,
            skipped,
        });
        previous_wall = wall;
        at += Duration::minutes(1);
    }
    out
}

fn expected(oracle: &Oracle, minutes: &[Minute]) -> Vec<DateTime<Utc>> {
    minutes
        .iter()
        .filter(|m| {
            let on_time = oracle.matches(m.wall) && (m.first_instant || !oracle.fixed_time);
            let deferred = oracle.fixed_time && m.skipped.iter().any(|w| oracle.matches(*w));
            on_time || deferred
        })
        .map(|m| m.at)
        .collect()
}

#[test]
fn fire_times_agree_with_a_minute_by_minute_scan() {
    let expressions = [
        "*/15 * * * *",
        "30 2 * * *",
        "0,30 1,2 * * *",
        "*/7 1-3 * * *",
        "15 9-17/2 * * mon-fri",
        "0 0 1,15 * sun",
        "45 1 * mar,apr,oct,nov *",
        "5 * * * 7",
        "0 12 */2 * *",
        "* 2 * * sun",
        "0 2 * * *",
        "@hourly",
    ];
    let zones = [
        Tz::UTC,
        NEW_YORK,
        LONDON,
        chrono_tz::Asia::Kolkata,
        chrono_tz::Australia::Lord_Howe, // shifts by 30 minutes, at 02:00
    ];
    // Spans holding every 2026 transition of these zones: New York (Mar 8, Nov 1),
    // London (Mar 29, Oct 25), Lord Howe (Apr 5 back, Oct 4 forward).
    let spans = [
        (utc(2026, 3, 1, 0, 0), utc(2026, 4, 10, 0, 0)),
        (utc(2026, 9, 30, 0, 0), utc(2026, 11, 5, 0, 0)),
    ];
    let exprs: Vec<(CronExpr, Oracle)> = expressions
        .iter()
        .map(|e| (parse(e), Oracle::new(e)))
        .collect();
    let (mut gaps, mut repeated_minutes) = (0, 0);
    for tz in zones {
        for (from, to) in spans {
            let minutes = scan(tz, from, to);
            gaps += minutes.iter().filter(|m| !m.skipped.is_empty()).count();
            repeated_minutes += minutes.iter().filter(|m| !m.first_instant).count();
            for ((expr, oracle), expression) in exprs.iter().zip(expressions) {
                let want = expected(oracle, &minutes);
                let got = expr.fire_times(from, to, tz);
                assert!(!want.is_empty(), "{expression} in {tz}");
                if got != want {
                    let missing: Vec<_> =
                        want.iter().filter(|t| !got.contains(t)).take(5).collect();
                    let extra: Vec<_> = got.iter().filter(|t| !want.contains(t)).take(5).collect();
                    panic!(
                        "{expression} in {tz} from {from}: missing {missing:?}, extra {extra:?}"
                    );
                }
                // next_after walks the same times one by one.
                let mut walked = Vec::new();
                let mut at = expr.next_after(from - Duration::seconds(1), tz);
                while let Some(t) = at.filter(|t| *t <= to) {
                    walked.push(t);
                    at = expr.next_after(t, tz);
                }
                assert_eq!(walked, want, "next_after chain: {expression} in {tz}");
            }
        }
    }
    // The spans really hold the transitions: a gap each in New York, London and
    // Lord Howe, and repeated hours of 60, 60 and 30 minutes.
    assert_eq!((gaps, repeated_minutes), (3, 150));
}

/// Two whole years (2026-2027), minute by minute, in the five zones: every expression's
/// fire times equal the scan's. About 5 million zoned minutes: run in release by `.ci/run`
/// (`cargo test --release -p kaal-core --test cron -- --ignored`).
#[test]
#[ignore = "two years minute by minute: run in release by .ci/run"]
fn fire_times_agree_with_a_two_year_minute_by_minute_scan_in_five_zones() {
    let expressions = [
        "*/15 * * * *",
        "30 2 * * *",
        "0,30 1,2 * * *",
        "15 9-17/2 * * mon-fri",
        "0 0 1,15 * sun",
        "45 1 * mar,apr,oct,nov *",
        "0 0 29 2 *",
        "@hourly",
    ];
    let zones = [
        Tz::UTC,
        NEW_YORK,
        LONDON,
        chrono_tz::Asia::Kolkata,
        chrono_tz::Australia::Lord_Howe,
    ];
    let (from, to) = (utc(2026, 1, 1, 0, 0), utc(2027, 12, 31, 23, 59));
    let mut compared = 0;
    for tz in zones {
        let minutes = scan(tz, from, to);
        for expression in expressions {
            let want = expected(&Oracle::new(expression), &minutes);
            let got = parse(expression).fire_times(from, to, tz);
            assert_eq!(
                got.len(),
                want.len(),
                "{expression} in {tz}: fire time counts differ"
            );
            assert_eq!(got, want, "{expression} in {tz}");
            compared += want.len();
        }
    }
    assert!(compared > 400_000, "only {compared} fire times compared");
    println!(
        "cron brute force: {compared} fire times over 2026-2027 in 5 zones agree with the scan"
    );
}
