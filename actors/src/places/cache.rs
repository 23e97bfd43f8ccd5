//! The reply cache of the Google providers: Google bills every call, and clients near one
//! another ask the same question again and again.
//!
//! - Keyed by the location rounded to `precision` decimal places of a degree (4 places:
//!   about 11 m of latitude, and 11 m × cos(latitude) of longitude), the radius and the
//!   provider, so clients in the same cell share one answer. The question sent upstream
//!   still carries the client's exact location: a miss is answered exactly, and a hit is an
//!   answer for a point at most one cell away.
//! - An entry covers every bound up to the one it was fetched for (`covers`): a smaller
//!   bound is a hit, cut by the caller; a larger one is a miss, whose answer replaces it.
//! - Entries expire `ttl` after they were stored; the least recently used go first when
//!   there are more than `entries` of them or their text passes `max_bytes`.
//! - Callers pass the time (`now`), so tests step the clock instead of sleeping.
//!
//! Entries hold the reply as compact JSON text rather than a parsed value: that size is
//! what `max_bytes` counts, so the bound means what it says (a parsed value takes several
//! times its text), and parsing one reply on a hit costs microseconds.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{NearbyQuery, Provider};

/// Memory per entry besides its text (two map slots, the key's radius, the clock): an
/// estimate, so that a cache of tiny replies is still bounded.
const ENTRY_OVERHEAD: usize = 128;

/// The most decimal places `precision` may have: 7 places is about a centimetre, finer
/// than any client's fix, so more would only make a cache that never hits.
pub(crate) const MAX_PRECISION: u8 = 7;

/// How the cache of one fetcher behaves, validated by `config`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CacheSettings {
    /// How long an answer is served; zero turns the cache off.
    pub(crate) ttl: Duration,
    /// The most answers kept.
    pub(crate) entries: usize,
    /// The most bytes of answer text kept.
    pub(crate) max_bytes: usize,
    /// Decimal places of latitude and longitude kept in the key, 0..=[`MAX_PRECISION`].
    pub(crate) precision: u8,
}

impl Default for CacheSettings {
    /// Five minutes, 10 000 answers, 64 MiB, 4 decimal places (about 11 m).
    fn default() -> Self {
        CacheSettings {
            ttl: Duration::from_secs(300),
            entries: 10_000,
            max_bytes: 64 << 20,
            precision: 4,
        }
    }
}

/// Which question an answer belongs to; also what concurrent questions must share to be
/// answered by one upstream call.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct CacheKey {
    /// Latitude and longitude in units of 10^-precision degrees.
    lat: i64,
    lng: i64,
    /// The radius in metres, as exact decimal text (`10000`, `0.5`).
    radius: String,
    provider: Provider,
}

impl CacheKey {
    pub(crate) fn new(q: &NearbyQuery, precision: u8, provider: Provider) -> Self {
        let scale = 10f64.powi(i32::from(precision.min(MAX_PRECISION)));
        // |lat|, |lng| <= 180 and scale <= 1e7: far inside i64, so the cast never clamps.
        let cell = |degrees: f64| (degrees * scale).round() as i64;
        CacheKey {
            lat: cell(q.lat),
            lng: cell(q.lng),
            radius: q.radius_param.clone(),
            provider,
        }
    }
}

struct Entry {
    text: String,
    /// The reply last served from this entry, rendered for its bound: most questions for a
    /// place ask the same bound, and rendering 20 places is most of the cost of a hit.
    rendered: Option<(usize, Arc<str>)>,
    covers: usize,
    expires: Instant,
    /// Position in `ReplyCache::order`: larger is more recently used.
    used: u64,
    size: usize,
}

/// An LRU map of answers with a time to live; see the module doc.
pub(crate) struct ReplyCache {
    settings: CacheSettings,
    entries: HashMap<CacheKey, Entry>,
    /// Keys by last use, oldest first.
    order: BTreeMap<u64, CacheKey>,
    clock: u64,
    bytes: usize,
}

impl ReplyCache {
    pub(crate) fn new(settings: CacheSettings) -> Self {
        ReplyCache {
            settings,
            entries: HashMap::new(),
            order: BTreeMap::new(),
            clock: 0,
            bytes: 0,
        }
    }

    /// Whether answers are kept at all.
    pub(crate) fn is_on(&self) -> bool {
        !self.settings.ttl.is_zero()
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The reply for `key` cut to `bound`, if a fresh answer covers it; marks it used.
    /// `render` turns the kept answer into the reply for a bound not rendered last time.
    pub(crate) fn get(
        &mut self,
        key: &CacheKey,
        bound: usize,
        now: Instant,
        render: impl FnOnce(&str) -> Option<String>,
    ) -> Option<Arc<str>> {
        let entry = self.entries.get(key)?;
        if entry.expires <= now {
            self.remove(key);
            return None;
        }
        if entry.covers < bound {
            return None;
        }
        self.clock += 1;
        let entry = self.entries.get_mut(key)?;
        self.order.remove(&entry.used);
        entry.used = self.clock;
        self.order.insert(self.clock, key.clone());
        if let Some((rendered_bound, text)) = &entry.rendered {
            if *rendered_bound == bound {
                return Some(Arc::clone(text));
            }
        }
        let text: Arc<str> = Arc::from(render(&entry.text)?);
        let old = entry.rendered.replace((bound, Arc::clone(&text)));
        let old_len = old.map_or(0, |(_, t)| t.len());
        entry.size = entry.size - old_len + text.len();
        self.bytes = self.bytes - old_len + text.len();
        self.evict_beyond_bounds(Some(key));
        Some(text)
    }

    /// Keeps `text`, the answer to `key` with all results up to `covers`, unless a fresh
    /// entry already covers more (a smaller answer that lands late must not shrink it).
    pub(crate) fn insert(&mut self, key: CacheKey, text: String, covers: usize, now: Instant) {
        if !self.is_on() {
            return;
        }
        if let Some(old) = self.entries.get(&key) {
            if old.expires > now && old.covers > covers {
                return;
            }
            self.remove(&key);
        }
        let size = text.len() + key.radius.len() + ENTRY_OVERHEAD;
        if size > self.settings.max_bytes {
            return;
        }
        self.clock += 1;
        self.bytes += size;
        self.order.insert(self.clock, key.clone());
        let entry = Entry {
            text,
            rendered: None,
            covers,
            expires: now + self.settings.ttl,
            used: self.clock,
            size,
        };
        self.entries.insert(key, entry);
        self.evict_beyond_bounds(None);
    }

    /// Drops least recently used entries until the cache is within its bounds, sparing
    /// `keep` (the entry being served).
    fn evict_beyond_bounds(&mut self, keep: Option<&CacheKey>) {
        while self.entries.len() > self.settings.entries || self.bytes > self.settings.max_bytes {
            let Some(oldest) = self.order.values().find(|k| Some(*k) != keep).cloned() else {
                break;
            };
            self.remove(&oldest);
        }
    }

    fn remove(&mut self, key: &CacheKey) {
        if let Some(entry) = self.entries.remove(key) {
            self.order.remove(&entry.used);
            self.bytes -= entry.size;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `get` serves, rendered as the kept text itself.
    fn read(c: &mut ReplyCache, key: &CacheKey, bound: usize, now: Instant) -> Option<String> {
        c.get(key, bound, now, |text| Some(text.to_owned()))
            .map(|text| text.to_string())
    }

    const TTL: Duration = Duration::from_secs(300);

    fn cache(entries: usize, max_bytes: usize) -> ReplyCache {
        ReplyCache::new(CacheSettings {
            ttl: TTL,
            entries,
            max_bytes,
            precision: 4,
        })
    }

    fn query(lat: f64, lng: f64, radius: &str) -> NearbyQuery {
        NearbyQuery {
            lat,
            lng,
            location_param: format!("{lat},{lng}"),
            radius_m: radius.parse().unwrap(),
            radius_param: radius.into(),
            bound: 5,
        }
    }

    fn key(lat: f64, lng: f64) -> CacheKey {
        CacheKey::new(&query(lat, lng, "10000"), 4, Provider::GoogleNew)
    }

    #[test]
    fn clients_in_one_cell_share_a_key_and_others_do_not() {
        assert_eq!(key(34.06893, -118.445127), key(34.068949, -118.44508));
        assert_ne!(key(34.06893, -118.445127), key(34.06896, -118.445127));
        assert_ne!(key(34.06893, -118.445127), key(34.06893, 118.445127));
        let q = query(34.06893, -118.445127, "10000");
        let other_radius = query(34.06893, -118.445127, "10000.5");
        assert_ne!(
            CacheKey::new(&q, 4, Provider::GoogleNew),
            CacheKey::new(&other_radius, 4, Provider::GoogleNew)
        );
        assert_ne!(
            CacheKey::new(&q, 4, Provider::GoogleNew),
            CacheKey::new(&q, 4, Provider::Google)
        );
        // Two decimal places: about a kilometre.
        assert_eq!(
            CacheKey::new(&q, 2, Provider::Google),
            CacheKey::new(&query(34.07, -118.449, "10000"), 2, Provider::Google)
        );
    }

    #[test]
    fn extreme_coordinates_make_keys_at_the_finest_precision() {
        let q = query(-90.0, 180.0, "50000");
        let k = CacheKey::new(&q, MAX_PRECISION, Provider::Google);
        assert_eq!((k.lat, k.lng), (-900_000_000, 1_800_000_000));
        // Out-of-range precision is held to the maximum rather than overflowing.
        assert_eq!(CacheKey::new(&q, 200, Provider::Google), k);
    }

    #[test]
    fn an_entry_serves_every_bound_it_covers_until_it_expires() {
        let mut c = cache(10, 1 << 20);
        let t0 = Instant::now();
        c.insert(key(1.0, 1.0), "five".into(), 5, t0);
        assert_eq!(read(&mut c, &key(1.0, 1.0), 1, t0), Some("five".into()));
        assert_eq!(
            read(&mut c, &key(1.0, 1.0), 5, t0 + TTL / 2),
            Some("five".into())
        );
        assert_eq!(read(&mut c, &key(1.0, 1.0), 6, t0), None);
        assert_eq!(read(&mut c, &key(2.0, 1.0), 1, t0), None);
        assert_eq!(read(&mut c, &key(1.0, 1.0), 1, t0 + TTL), None);
        assert_eq!(c.len(), 0, "the expired entry is gone");
    }

    #[test]
    fn a_larger_answer_replaces_a_smaller_one_but_not_the_reverse() {
        let mut c = cache(10, 1 << 20);
        let t0 = Instant::now();
        c.insert(key(1.0, 1.0), "five".into(), 5, t0);
        c.insert(key(1.0, 1.0), "ten".into(), 10, t0);
        c.insert(key(1.0, 1.0), "late three".into(), 3, t0);
        assert_eq!(read(&mut c, &key(1.0, 1.0), 10, t0), Some("ten".into()));
        // Once the big one has expired, a smaller answer is better than none.
        c.insert(key(1.0, 1.0), "fresh three".into(), 3, t0 + TTL);
        assert_eq!(
            read(&mut c, &key(1.0, 1.0), 3, t0 + TTL),
            Some("fresh three".into())
        );
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn the_least_recently_used_entry_goes_first() {
        let mut c = cache(2, 1 << 20);
        let t0 = Instant::now();
        c.insert(key(1.0, 1.0), "a".into(), 5, t0);
        c.insert(key(2.0, 1.0), "b".into(), 5, t0);
        assert!(read(&mut c, &key(1.0, 1.0), 5, t0).is_some());
        c.insert(key(3.0, 1.0), "c".into(), 5, t0);
        assert_eq!(c.len(), 2);
        assert!(
            read(&mut c, &key(2.0, 1.0), 5, t0).is_none(),
            "b was least recent"
        );
        assert!(read(&mut c, &key(1.0, 1.0), 5, t0).is_some());
        assert!(read(&mut c, &key(3.0, 1.0), 5, t0).is_some());
    }

    #[test]
    fn text_beyond_the_byte_bound_evicts_and_an_oversized_answer_is_not_kept() {
        let size = |text: &str| text.len() + "10000".len() + ENTRY_OVERHEAD;
        let text = "x".repeat(1000);
        let mut c = cache(100, 2 * size(&text) + 10);
        let t0 = Instant::now();
        for lat in [1.0, 2.0, 3.0] {
            c.insert(key(lat, 1.0), text.clone(), 5, t0);
        }
        assert_eq!(c.len(), 2);
        assert!(read(&mut c, &key(1.0, 1.0), 5, t0).is_none());
        c.insert(key(4.0, 1.0), "x".repeat(3000), 5, t0);
        assert!(read(&mut c, &key(4.0, 1.0), 5, t0).is_none());
        assert_eq!(c.len(), 2);
        assert_eq!(c.bytes, 2 * size(&text));
    }

    #[test]
    fn a_zero_ttl_keeps_nothing() {
        let mut c = ReplyCache::new(CacheSettings {
            ttl: Duration::ZERO,
            ..CacheSettings::default()
        });
        assert!(!c.is_on());
        let t0 = Instant::now();
        c.insert(key(1.0, 1.0), "a".into(), 5, t0);
        assert_eq!(read(&mut c, &key(1.0, 1.0), 1, t0), None);
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn a_hit_renders_once_per_bound_and_the_rendering_counts_against_the_bytes() {
        let mut c = cache(10, 1 << 20);
        let t0 = Instant::now();
        c.insert(key(1.0, 1.0), "answer".into(), 20, t0);
        let before = c.bytes;
        let renders = std::cell::Cell::new(0);
        let render = |text: &str| {
            renders.set(renders.get() + 1);
            Some(format!("{text} rendered"))
        };
        let first = c.get(&key(1.0, 1.0), 20, t0, render);
        assert_eq!(first.as_deref(), Some("answer rendered"));
        assert_eq!(c.get(&key(1.0, 1.0), 20, t0, render), first);
        assert_eq!(renders.get(), 1);
        assert_eq!(c.bytes, before + "answer rendered".len());
        c.get(&key(1.0, 1.0), 5, t0, render);
        assert_eq!(renders.get(), 2);
        assert_eq!(c.bytes, before + "answer rendered".len());
    }
}
