use super::*;
use proptest::prelude::*;

fn parse(yaml: &str) -> RawRetry {
    serde_saphyr::from_str(yaml).unwrap()
}

fn secs(d: RetryDecision) -> f64 {
    match d {
        RetryDecision::After(d) => d.as_secs_f64(),
        other => panic!("expected a delay, got {other:?}"),
    }
}

#[test]
fn delays_are_used_in_order_and_the_last_repeats() {
    let s = parse("delays: [1, 5, 30, 300]").validate().unwrap();
    let got: Vec<f64> = (1..=6).map(|n| secs(s.decide(None, n, 7))).collect();
    assert_eq!(got, vec![1.0, 5.0, 30.0, 300.0, 300.0, 300.0]);
}

#[test]
fn exponential_doubles_from_base_up_to_max() {
    let s = parse("{strategy: exponential, base: 2, max: 20}")
        .validate()
        .unwrap();
    let got: Vec<f64> = (1..=6).map(|n| secs(s.decide(Some("X"), n, 7))).collect();
    assert_eq!(got, vec![2.0, 4.0, 8.0, 16.0, 20.0, 20.0]);
    // Huge attempt numbers stay at the cap.
    assert_eq!(secs(s.decide(None, u32::MAX, 7)), 20.0);
}

#[test]
fn codes_override_delays_and_choose_what_is_retried() {
    let s =
        parse("delays: [1]\nby_code:\n  HTTP_429: {delays: [60, 120]}\nno_retry_on: [HTTP_400]\n")
            .validate()
            .unwrap();
    assert_eq!(secs(s.decide(Some("HTTP_429"), 1, 0)), 60.0);
    assert_eq!(secs(s.decide(Some("HTTP_429"), 2, 0)), 120.0);
    assert_eq!(secs(s.decide(Some("HTTP_503"), 1, 0)), 1.0);
    assert_eq!(secs(s.decide(None, 1, 0)), 1.0);
    assert_eq!(s.decide(Some("HTTP_400"), 1, 0), RetryDecision::Stop);

    let only = parse("retry_on: [HTTP_503]").validate().unwrap();
    assert_eq!(
        only.decide(Some("HTTP_503"), 1, 0),
        RetryDecision::EngineDefault,
        "no delays given: the engine's policy"
    );
    assert_eq!(only.decide(Some("HTTP_500"), 1, 0), RetryDecision::Stop);
    assert_eq!(
        only.decide(None, 1, 0),
        RetryDecision::Stop,
        "an error without a code is not on the list"
    );
}

#[test]
fn bad_blocks_name_each_field() {
    let fields = |yaml: &str| -> Vec<String> {
        parse(yaml)
            .validate()
            .unwrap_err()
            .into_iter()
            .map(|(f, _)| f)
            .collect()
    };
    assert_eq!(fields("delays: []"), vec!["delays"]);
    assert_eq!(
        fields("delays: [1, -2, .nan]"),
        vec!["delays[1]", "delays[2]"]
    );
    assert_eq!(
        fields("{delays: [1], strategy: exponential}"),
        vec!["strategy"]
    );
    assert_eq!(fields("{delays: [1], base: 2}"), vec!["delays"]);
    assert_eq!(fields("strategy: linear"), vec!["strategy"]);
    assert_eq!(fields("strategy: exponential"), vec!["base"]);
    assert_eq!(fields("{base: 2}"), vec!["strategy"]);
    assert_eq!(
        fields("{strategy: exponential, base: 10, max: 5, jitter: 2}"),
        vec!["max", "jitter"]
    );
    assert_eq!(
        fields("by_code: {HTTP_429: {delays: [-1]}, E: {}}"),
        vec!["by_code.E", "by_code.HTTP_429.delays[0]"]
    );
    assert_eq!(fields("retry_on: []"), vec!["retry_on"]);
    assert_eq!(
        fields("{retry_on: [A], no_retry_on: [A]}"),
        vec!["no_retry_on"]
    );
    assert!(
        serde_saphyr::from_str::<RawRetry>("delay: [1]").is_err(),
        "typos are errors"
    );
}

proptest! {
    /// Exponential delays never exceed `max`, never go below zero, stay
    /// within ± jitter of the unjittered value, and are the same for the
    /// same seed.
    #[test]
    fn exponential_stays_within_bounds(
        base in 0.001f64..100.0,
        extra in 0.0f64..1000.0,
        jitter in 0.0f64..=1.0,
        n in 1u32..200,
        seed in any::<u64>(),
    ) {
        let max = base + extra;
        let b = Backoff::Exponential { base, max, jitter };
        let d = b.delay(n, seed).as_secs_f64();
        let plain = (base * 2f64.powi((n - 1).min(1023) as i32)).min(max);
        prop_assert!(d >= 0.0 && d <= max + 1e-9, "{d} > {max}");
        prop_assert!((d - plain).abs() <= plain * jitter + 1e-6);
        prop_assert_eq!(b.delay(n, seed), b.delay(n, seed));
    }

    /// Fixed delays: attempt n gets entry n-1, or the last one.
    #[test]
    fn delays_pick_their_entry(delays in prop::collection::vec(0.0f64..86_400.0, 1..8), n in 1u32..20) {
        let b = Backoff::Delays { delays: delays.clone() };
        let want = delays[(n as usize - 1).min(delays.len() - 1)];
        prop_assert!((b.delay(n, 0).as_secs_f64() - want).abs() < 1e-6);
    }
}
