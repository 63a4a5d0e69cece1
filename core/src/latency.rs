//! Latency histograms: HDR histograms of nanoseconds with 3 significant digits (every value is
//! kept to within 0.1%), their percentile summaries, and their exact, mergeable serialization
//! (HdrHistogram V2 compressed encoding, base64 — the format of HdrHistogram interval logs).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use serde::{Deserialize, Serialize};

/// Largest recordable value: one hour in nanoseconds. Larger values are clamped to it.
pub const MAX_NANOS: u64 = 3_600_000_000_000;

/// Significant digits kept by every histogram.
pub const SIGNIFICANT_DIGITS: u8 = 3;

/// A new empty latency histogram (1 ns to 1 h, 3 significant digits).
#[allow(clippy::expect_used)] // constant arguments, checked by a unit test: it cannot fail
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_NANOS, SIGNIFICANT_DIGITS)
        .expect("1 ns to 1 h at 3 significant digits is a valid histogram")
}

/// Records a duration in nanoseconds, clamped to the histogram's range (a 0 ns reading, which
/// a coarse clock can produce, counts as 1 ns).
pub fn record(histogram: &mut Histogram<u64>, nanos: u64) {
    histogram.saturating_record(nanos.clamp(1, MAX_NANOS));
}

/// Merges `from` into `into`. Both come from [`histogram`], so they share bounds and the
/// addition cannot fail; a failure would mean a bug, and is logged rather than panicking.
pub fn add(into: &mut Histogram<u64>, from: &Histogram<u64>) {
    if let Err(err) = into.add(from) {
        tracing::error!(?err, "histogram merge failed");
    }
}

/// Nanoseconds of a duration, saturating at `u64::MAX` (584 years).
pub fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The summary of a histogram that reports and tables show, in nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Number of samples.
    pub count: u64,
    /// Smallest sample.
    pub min: u64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Standard deviation.
    pub stdev: f64,
    /// 50th percentile.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// 99.99th percentile.
    pub p9999: u64,
    /// Largest sample.
    pub max: u64,
}

impl Percentiles {
    /// Reads the summary off `histogram` (all zero when it is empty).
    pub fn of(histogram: &Histogram<u64>) -> Percentiles {
        if histogram.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: histogram.len(),
            min: histogram.min(),
            mean: histogram.mean(),
            stdev: histogram.stdev(),
            p50: histogram.value_at_quantile(0.50),
            p90: histogram.value_at_quantile(0.90),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            p9999: histogram.value_at_quantile(0.9999),
            max: histogram.max(),
        }
    }
}

/// Failure to encode or decode a histogram.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The histogram could not be serialized.
    #[error("cannot encode histogram: {0}")]
    Encode(String),
    /// The text is not base64.
    #[error("histogram is not valid base64: {0}")]
    Base64(#[from] base64::DecodeError),
    /// The bytes are not an HdrHistogram V2 encoding.
    #[error("histogram is not a valid HdrHistogram V2 encoding: {0}")]
    Decode(String),
}

/// Encodes `histogram` as base64 of its V2 compressed encoding.
pub fn encode(histogram: &Histogram<u64>) -> Result<String, CodecError> {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(histogram, &mut bytes)
        .map_err(|err| CodecError::Encode(format!("{err:?}")))?;
    Ok(BASE64.encode(bytes))
}

/// Decodes what [`encode`] produced (or any HdrHistogram V2 encoding, compressed or not).
pub fn decode(text: &str) -> Result<Histogram<u64>, CodecError> {
    let bytes = BASE64.decode(text.trim())?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|err| CodecError::Decode(format!("{err:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Percentiles of 1..=1000 µs are what a hand count says, to 3 significant digits.
    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut h = histogram();
        for micros in 1..=1000u64 {
            record(&mut h, micros * 1000);
        }
        let p = Percentiles::of(&h);
        assert_eq!(p.count, 1000);
        assert_eq!(p.min, 1000);
        // 500th of 1000 samples is 500 µs; HDR rounds up within the 0.1% bucket.
        assert!((500_000..=500_500).contains(&p.p50), "{}", p.p50);
        assert!((990_000..=991_000).contains(&p.p99), "{}", p.p99);
        assert!((1_000_000..=1_001_000).contains(&p.max), "{}", p.max);
        assert!((p.mean - 500_500.0).abs() < 500.0, "{}", p.mean);
        assert_eq!(Percentiles::of(&histogram()), Percentiles::default());
    }

    /// Encoding then decoding gives back the same histogram, so merges stay exact.
    #[test]
    fn encoding_round_trips() {
        let mut h = histogram();
        for value in [1, 7, 999, 1_000_000, 5_000_000_000, MAX_NANOS, u64::MAX] {
            record(&mut h, value);
        }
        let text = encode(&h).unwrap();
        // The V2 compressed cookie 0x1c849314 reads "HISTF" in base64, as in Java HdrHistogram logs.
        assert!(text.starts_with("HISTF"), "{text}");
        let back = decode(&text).unwrap();
        assert_eq!(back, h);
        assert!(decode("not base64!").is_err());
        assert!(decode("aGVsbG8=").is_err());
    }
}
