//! Statistics of repeated runs: the median and how sure it is, the same for the ratio of two
//! targets' medians, and a direction-aware verdict. The method depends on the number of runs,
//! and every estimate carries it ([`Method`]):
//! - 1 run: the value alone, no interval, and no verdict (`too few runs`);
//! - 2–4 runs: the range of the values (for a ratio: lowest over highest to highest over
//!   lowest), not called a confidence interval;
//! - 5 runs or more: a 95 % percentile bootstrap interval of the median, 2,000 resamples from
//!   a fixed-seed generator, so a report is reproducible from the same data.

use serde::Serialize;

/// Resamples per bootstrap.
const RESAMPLES: usize = 2000;

/// Whether a smaller or a larger value of a figure is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Lower,
    Higher,
    /// Neither (a count, a descriptive figure): no verdict.
    Neither,
}

/// The fewest runs for a bootstrap interval; fewer give the range of the values.
pub const BOOTSTRAP_FROM: usize = 5;

/// How an estimate's interval was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Method {
    /// One run: the value, no interval (`ci_low` = `ci_high` = the value).
    Value,
    /// 2–4 runs: the lowest and highest values.
    Range,
    /// 5 runs or more: a 95 % percentile bootstrap interval of the median.
    Bootstrap95,
}

impl Method {
    /// The interval as it reads in a table (empty for one value).
    pub fn interval(self, low: &str, high: &str) -> String {
        match self {
            Method::Value => String::new(),
            Method::Range => format!("range {low} – {high}"),
            Method::Bootstrap95 => format!("95 % CI {low} – {high}"),
        }
    }
}

/// A median with how sure it is: the interval and the method that made it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Estimate {
    pub median: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    /// The number of values (for a ratio: the smaller of the two).
    pub n: usize,
    /// How the interval was made.
    pub method: Method,
}

/// The verdict on a target against the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Better,
    Worse,
    /// The ratio's interval includes 1.0.
    NoClearDifference,
    /// The figure has no direction.
    NotJudged,
    /// One run on this target or the baseline: no verdict.
    TooFewRuns,
    /// This is the baseline the others are compared with.
    Baseline,
}

impl Verdict {
    /// How the verdict reads in a table.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Better => "better",
            Verdict::Worse => "worse",
            Verdict::NoClearDifference => "no clear difference",
            Verdict::NotJudged => "-",
            Verdict::TooFewRuns => "too few runs",
            Verdict::Baseline => "baseline",
        }
    }
}

/// A small, fast, seeded generator (xorshift64*), enough for resampling.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    }
}

/// The median of `values` (the mean of the middle two for an even count); NaN when empty.
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    }
}

/// The `q` quantile (0..1) of sorted values, by linear interpolation.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

fn resample_median(values: &[f64], rng: &mut Rng, buf: &mut Vec<f64>) -> f64 {
    buf.clear();
    buf.extend((0..values.len()).map(|_| values[rng.below(values.len())]));
    median(buf)
}

fn interval(mut statistics: Vec<f64>, point: f64, n: usize) -> Estimate {
    statistics.sort_by(f64::total_cmp);
    Estimate {
        median: point,
        ci_low: quantile(&statistics, 0.025),
        ci_high: quantile(&statistics, 0.975),
        n,
        method: Method::Bootstrap95,
    }
}

fn lowest(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::INFINITY, f64::min)
}

fn highest(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

/// The median of `values` and how sure it is (see the module's rules); `None` when there are
/// no values.
pub fn estimate(values: &[f64]) -> Option<Estimate> {
    let (n, point) = (values.len(), median(values));
    let method = match n {
        0 => return None,
        1 => Method::Value,
        n if n < BOOTSTRAP_FROM => Method::Range,
        _ => Method::Bootstrap95,
    };
    if method != Method::Bootstrap95 {
        let (ci_low, ci_high) = (lowest(values), highest(values));
        return Some(Estimate {
            median: point,
            ci_low,
            ci_high,
            n,
            method,
        });
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut buf = Vec::with_capacity(values.len());
    let statistics = (0..RESAMPLES)
        .map(|_| resample_median(values, &mut rng, &mut buf))
        .collect();
    Some(interval(statistics, point, n))
}

/// The ratio `median(target) / median(baseline)` with a 95 % bootstrap interval (both samples
/// resampled independently); `None` when either is empty or the baseline's median is zero.
pub fn ratio(target: &[f64], baseline: &[f64]) -> Option<Estimate> {
    let base = median(baseline);
    if target.is_empty() || baseline.is_empty() || base == 0.0 {
        return None;
    }
    let n = target.len().min(baseline.len());
    let point = median(target) / base;
    if n < BOOTSTRAP_FROM {
        let (low, high) = (
            lowest(target) / highest(baseline),
            highest(target) / lowest(baseline),
        );
        let (ci_low, ci_high, method) = match n {
            1 => (point, point, Method::Value),
            _ => (low.min(high), low.max(high), Method::Range),
        };
        return Some(Estimate {
            median: point,
            ci_low,
            ci_high,
            n,
            method,
        });
    }
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let mut buf = Vec::with_capacity(target.len().max(baseline.len()));
    let statistics = (0..RESAMPLES)
        .filter_map(|_| {
            let t = resample_median(target, &mut rng, &mut buf);
            let b = resample_median(baseline, &mut rng, &mut buf);
            (b != 0.0).then(|| t / b)
        })
        .collect();
    Some(interval(statistics, point, n))
}

/// The verdict for a target whose ratio to the baseline is `ratio`.
pub fn verdict(ratio: &Estimate, better: Better) -> Verdict {
    if better == Better::Neither {
        return Verdict::NotJudged;
    }
    if ratio.method == Method::Value {
        return Verdict::TooFewRuns;
    }
    if ratio.ci_low <= 1.0 && ratio.ci_high >= 1.0 {
        return Verdict::NoClearDifference;
    }
    let larger = ratio.ci_low > 1.0;
    match (better, larger) {
        (Better::Higher, true) | (Better::Lower, false) => Verdict::Better,
        _ => Verdict::Worse,
    }
}

/// How many runs per group it takes to tell apart two groups whose medians differ by
/// `difference` (0.02: 2 %), for figures that vary as the most varied group's do: a two-sided
/// test at 5 % with 80 % power, n = 2 (1.96 + 0.84)² CV² / difference² (normal approximation).
/// Returns it with that coefficient of variation; none without a group of 2 or more values, or
/// when the values do not vary.
pub fn runs_to_detect(groups: &[&[f64]], difference: f64) -> Option<(usize, f64)> {
    let cv = groups
        .iter()
        .filter(|v| v.len() >= 2)
        .filter_map(|v| {
            let n = v.len() as f64;
            let mean = v.iter().sum::<f64>() / n;
            let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
            (mean > 0.0).then(|| var.sqrt() / mean)
        })
        .reduce(f64::max)?;
    if !(cv > 0.0 && difference > 0.0) {
        return None;
    }
    let n = 2.0 * (1.96f64 + 0.84).powi(2) * cv * cv / (difference * difference);
    Some(((n.ceil() as usize).max(2), cv))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runs_needed_follow_the_spread() {
        // Values 98, 100, 102: sd 2, mean 100, CV 2 %; 2 % apart needs 2 · 2.8² · 1 = 15.68 → 16.
        let (n, cv) = runs_to_detect(&[&[98.0, 100.0, 102.0], &[50.0]], 0.02).unwrap();
        assert_eq!(n, 16);
        assert!((cv - 0.02).abs() < 1e-12);
        assert_eq!(
            runs_to_detect(&[&[1.0]], 0.02),
            None,
            "one value has no spread"
        );
        assert_eq!(runs_to_detect(&[&[5.0, 5.0]], 0.02), None, "no variation");
    }

    #[test]
    fn medians_by_hand() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn quantiles_interpolate_like_numpy_linear() {
        // numpy.quantile([1, 2, 3, 4, 5], 0.025) = 1.1, 0.975 -> 4.9
        let sorted = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert!((quantile(&sorted, 0.025) - 1.1).abs() < 1e-12);
        assert!((quantile(&sorted, 0.975) - 4.9).abs() < 1e-12);
    }

    /// The documented small data set (docs/compare.md): wall times of 5 runs per target.
    const LOCAL: [f64; 5] = [31.5, 32.0, 31.8, 32.4, 31.9];
    const PODMAN: [f64; 5] = [33.0, 33.4, 32.9, 33.8, 33.1];

    #[test]
    fn the_interval_holds_the_median_within_the_data_range() {
        let e = estimate(&LOCAL).unwrap();
        assert_eq!(e.median, 31.9);
        // A median of 5 resampled values is always one of the data points.
        assert!(e.ci_low >= 31.5 && e.ci_high <= 32.4, "{e:?}");
        assert!(e.ci_low <= 31.8 && e.ci_high >= 32.0, "{e:?}");
        assert_eq!(e.method, Method::Bootstrap95);
        let one = estimate(&[7.0]).unwrap();
        assert_eq!((one.median, one.ci_low, one.ci_high), (7.0, 7.0, 7.0));
        assert_eq!(one.method, Method::Value);
        assert_eq!(estimate(&[]), None);
    }

    #[test]
    fn the_ratio_and_its_verdict_follow_the_direction() {
        let r = ratio(&PODMAN, &LOCAL).unwrap();
        assert!((r.median - 33.1 / 31.9).abs() < 1e-12);
        // Every resampled podman median (>= 32.9) is above every local one (<= 32.4).
        assert!(r.ci_low > 1.0, "{r:?}");
        assert_eq!(verdict(&r, Better::Lower), Verdict::Worse);
        assert_eq!(verdict(&r, Better::Higher), Verdict::Better);
        assert_eq!(verdict(&r, Better::Neither), Verdict::NotJudged);
        let same = ratio(&LOCAL, &LOCAL).unwrap();
        assert_eq!(verdict(&same, Better::Lower), Verdict::NoClearDifference);
        assert_eq!(ratio(&LOCAL, &[0.0]), None);
    }

    #[test]
    fn the_bootstrap_is_reproducible() {
        assert_eq!(estimate(&PODMAN), estimate(&PODMAN));
    }

    /// Hand-computed small samples: 1 run is a value, 2–4 a range, 5 a bootstrap interval.
    #[test]
    fn small_samples_are_not_given_confidence_intervals() {
        let two = estimate(&[10.0, 12.0]).unwrap();
        assert_eq!(
            (two.median, two.ci_low, two.ci_high, two.method),
            (11.0, 10.0, 12.0, Method::Range)
        );
        let three = estimate(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!(
            (three.median, three.ci_low, three.ci_high, three.method),
            (2.0, 1.0, 3.0, Method::Range)
        );
        assert_eq!(estimate(&LOCAL).unwrap().method, Method::Bootstrap95);
        // Ratio of 2 runs each: [10/4, 12/2] around 11/3.
        let r = ratio(&[10.0, 12.0], &[2.0, 4.0]).unwrap();
        assert_eq!(
            (r.ci_low, r.ci_high, r.method, r.n),
            (2.5, 6.0, Method::Range, 2)
        );
        assert!((r.median - 11.0 / 3.0).abs() < 1e-12);
        assert_eq!(verdict(&r, Better::Lower), Verdict::Worse);
        let single = ratio(&[10.0], &[2.0, 4.0]).unwrap();
        assert_eq!(single.method, Method::Value);
        assert_eq!(verdict(&single, Better::Lower), Verdict::TooFewRuns);
        assert_eq!(Method::Range.interval("1", "3"), "range 1 – 3");
        assert_eq!(Method::Value.interval("7", "7"), "");
    }
}
