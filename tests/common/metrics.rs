//! `/metrics` of a server's admin listener, read as Prometheus would.

use prometheus_parse::{Scrape, Value};

use super::http_get;

/// `/metrics` of the admin listener at `admin`, parsed as Prometheus would.
pub fn scrape(admin: std::net::SocketAddr) -> Scrape {
    let (code, body) = http_get(admin, "/metrics").expect("the admin listener answers");
    assert_eq!(code, 200, "{body}");
    Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).expect("the exposition format")
}

/// The value of the series `name{labels}` (exactly those labels); for a histogram, its
/// count. Fails if the scrape has no such series.
pub fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let sample = scrape.samples.iter().find(|s| {
        s.metric == name
            && s.labels.len() == labels.len()
            && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
    });
    let sample = sample.unwrap_or_else(|| panic!("no series {name}{labels:?}"));
    match &sample.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        Value::Histogram(buckets) => buckets
            .iter()
            .find(|b| b.less_than == f64::INFINITY)
            .map(|b| b.count)
            .expect("a +Inf bucket"),
        Value::Summary(_) => panic!("{name} is a summary"),
    }
}
