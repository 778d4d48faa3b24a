//! Generated bad (and good) input: 100,000 cron expressions and 20,000 configurations, from
//! a fixed seed. Never a panic; every rejection names its problem.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use kaal_core::chrono::{TimeZone, Utc};
use kaal_core::chrono_tz::Tz;
use kaal_core::{cron, Config, CronExpr};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const TOKENS: &[&str] = &[
    "*",
    "*/",
    "/",
    "-",
    ",",
    "0",
    "1",
    "5",
    "7",
    "12",
    "15",
    "23",
    "24",
    "29",
    "31",
    "32",
    "59",
    "60",
    "61",
    "99",
    "-1",
    "jan",
    "DEC",
    "foo",
    "sun",
    "Sat",
    "mon-fri",
    "?",
    "L",
    "W",
    "#",
    "@daily",
    "@hourly",
    "@fortnightly",
    "@",
    " ",
    "  ",
    "\t",
    "é",
    "\u{0}",
    "1-",
    "-5",
    "5-1",
    "*/0",
    "0/5",
    "1,,2",
    "9999999999999999999999",
];

/// A well-formed field for a range `min..=max`: a value, range, step or list.
fn field(rng: &mut StdRng, min: u32, max: u32) -> String {
    let value = |rng: &mut StdRng| rng.gen_range(min..=max);
    match rng.gen_range(0..6) {
        0 => "*".into(),
        1 => value(rng).to_string(),
        2 => {
            let (a, b) = (value(rng), value(rng));
            format!("{}-{}", a.min(b), a.max(b))
        }
        3 => format!("*/{}", rng.gen_range(1..=max.max(1))),
        4 => format!("{},{}", value(rng), value(rng)),
        _ => {
            let a = value(rng);
            format!("{a}-{max}/{}", rng.gen_range(1..=max.max(1)))
        }
    }
}

fn generated(rng: &mut StdRng) -> String {
    match rng.gen_range(0..14) {
        // Well-formed five fields, one of them corrupted a third of the time.
        10..=13 => {
            let mut fields = [
                field(rng, 0, 59),
                field(rng, 0, 23),
                field(rng, 1, 31),
                field(rng, 1, 12),
                field(rng, 0, 7),
            ];
            if rng.gen_bool(0.33) {
                let i = rng.gen_range(0..5);
                fields[i] = TOKENS[rng.gen_range(0..TOKENS.len())].to_string();
            }
            fields.join(" ")
        }
        // Random bytes (lossy UTF-8).
        0 => String::from_utf8_lossy(
            &(0..rng.gen_range(0..24))
                .map(|_| rng.gen::<u8>())
                .collect::<Vec<_>>(),
        )
        .into_owned(),
        // Five-ish fields of plausible tokens.
        1..=7 => {
            let fields = rng.gen_range(3..8);
            (0..fields)
                .map(|_| {
                    (0..rng.gen_range(1..4))
                        .map(|_| TOKENS[rng.gen_range(0..TOKENS.len())])
                        .collect::<String>()
                })
                .collect::<Vec<_>>()
                .join(" ")
        }
        // Token soup.
        _ => (0..rng.gen_range(0..12))
            .map(|_| TOKENS[rng.gen_range(0..TOKENS.len())])
            .collect(),
    }
}

#[test]
fn a_hundred_thousand_generated_cron_expressions_never_panic_and_errors_name_the_problem() {
    let mut rng = StdRng::seed_from_u64(0x6b61616c);
    let (mut valid, mut invalid) = (0, 0);
    let from = Utc.with_ymd_and_hms(2026, 3, 7, 0, 0, 0).unwrap();
    let to = Utc.with_ymd_and_hms(2026, 3, 9, 0, 0, 0).unwrap();
    for _ in 0..100_000 {
        let expression = generated(&mut rng);
        let lint = cron::lint(&expression);
        match CronExpr::parse(&expression) {
            Ok(expr) => {
                valid += 1;
                assert!(
                    lint.is_empty(),
                    "{expression:?} parsed but lint says {lint:?}"
                );
                assert!(cron::valid(&expression));
                assert!(!expr.to_human().is_empty());
                let _ = expr.fire_times(from, to, Tz::America__New_York);
                assert!(cron::simplify(&expression).is_ok());
            }
            Err(err) => {
                invalid += 1;
                assert_eq!(
                    err.problems, lint,
                    "{expression:?}: parse and lint disagree"
                );
                assert!(!lint.is_empty(), "{expression:?} rejected without a reason");
                for problem in &lint {
                    let names_it = [
                        "minute",
                        "hour",
                        "day-of-month",
                        "month",
                        "day-of-week",
                        "expected 5 fields",
                        "macro",
                    ]
                    .iter()
                    .any(|w| problem.contains(w));
                    assert!(
                        names_it,
                        "{expression:?}: problem {problem:?} names no field"
                    );
                }
                assert!(err.to_string().contains("invalid cron expression"));
            }
        }
    }
    println!("cron fuzz: 100000 inputs, {valid} valid, {invalid} rejected, 0 panics");
    assert!(
        valid > 10_000 && invalid > 50_000,
        "the generator lost its spread: {valid} valid, {invalid} invalid"
    );
}

#[test]
fn twenty_thousand_generated_configurations_report_every_problem_without_panicking() {
    let mut rng = StdRng::seed_from_u64(7);
    let zones = [
        "UTC",
        "Europe/London",
        "Mars/Base",
        "",
        "utc",
        "America/New_York",
        "GMT+5",
    ];
    let namespaces = ["kaal", "", " ", "a:dispatch:b", "ns with space", "x"];
    for _ in 0..20_000 {
        let secs = |rng: &mut StdRng| Duration::from_secs(rng.gen_range(0..400));
        let config = Config {
            tick_interval: secs(&mut rng),
            window_lookback: secs(&mut rng),
            lease_ttl: secs(&mut rng),
            recovery_window: secs(&mut rng),
            time_zone: zones[rng.gen_range(0..zones.len())].into(),
            namespace: namespaces[rng.gen_range(0..namespaces.len())].into(),
            enable_log_dispatch_registry: rng.gen(),
            enable_dispatch_recovery: rng.gen(),
            node_id: if rng.gen_bool(0.1) {
                String::new()
            } else {
                "n".into()
            },
            ..Config::default()
        };
        let needs_ttl = config.lease_ttl < config.window_lookback + config.tick_interval;
        let bad_zone = config.time_zone.parse::<Tz>().is_err();
        match config.validate() {
            Ok(()) => assert!(
                !needs_ttl && !bad_zone && !config.tick_interval.is_zero(),
                "{config:?} passed"
            ),
            Err(errors) => {
                let fields: Vec<&str> = errors.problems.iter().map(|p| p.field).collect();
                assert_eq!(
                    fields.contains(&"lease_ttl"),
                    needs_ttl,
                    "{config:?}: {errors}"
                );
                assert_eq!(
                    fields.contains(&"time_zone"),
                    bad_zone,
                    "{config:?}: {errors}"
                );
                assert!(errors.problems.iter().all(|p| !p.message.is_empty()));
            }
        }
    }
}
