//! JSON printed the way Google's web APIs print it.
//!
//! Clients of the original service compared replies byte for byte with what Google sent, so
//! every reply (Google's, the embedded provider's, or one describing a failure) is printed in
//! Google's layout: three-space indent, `"key" : value`, `[]` and `{}` for empty containers,
//! keys in the order they came, numbers with their original text (serde_json is built with
//! `preserve_order` and `arbitrary_precision`). The layout comes from a serializer
//! [`Formatter`], never from rewriting text, so string contents can never be disturbed.
//!
//! ```text
//! {
//!    "html_attributions" : [],
//!    "results" : [
//!       {
//!          "name" : "Beverly Hills"
//!       }
//!    ],
//!    "status" : "OK"
//! }
//! ```

use std::io;

use serde::Serialize;
use serde_json::ser::{Formatter, PrettyFormatter, Serializer};

/// Prints `v` in Google's layout, without a trailing newline.
///
/// A newline is only ever written before an indented line, so the text never holds an empty
/// line (a JSON string's own newlines are escaped as `\n`).
pub(crate) fn to_google_json(v: &serde_json::Value) -> String {
    let mut out = Vec::new();
    let mut ser = Serializer::with_formatter(&mut out, GoogleFormatter::new());
    // Serializing a `Value` into a `Vec` cannot fail: every map key is a string and writing
    // to memory has no I/O error.
    if v.serialize(&mut ser).is_err() {
        return String::new();
    }
    // A reply waits in channels and queues until the client takes it: keep only its size,
    // not the doubling the buffer grew by.
    out.shrink_to_fit();
    // serde_json only ever writes UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

/// serde_json's pretty printer with a three-space indent and Google's ` : ` between a key
/// and its value. Everything but that separator is delegated, so empty containers and
/// indentation behave exactly as in [`PrettyFormatter`].
struct GoogleFormatter {
    pretty: PrettyFormatter<'static>,
}

impl GoogleFormatter {
    fn new() -> Self {
        GoogleFormatter {
            pretty: PrettyFormatter::with_indent(b"   "),
        }
    }
}

impl Formatter for GoogleFormatter {
    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pretty.begin_array(w)
    }

    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pretty.end_array(w)
    }

    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.pretty.begin_array_value(w, first)
    }

    fn end_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pretty.end_array_value(w)
    }

    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pretty.begin_object(w)
    }

    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pretty.end_object(w)
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.pretty.begin_object_key(w, first)
    }

    fn end_object_key<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pretty.end_object_key(w)
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b" : ")
    }

    fn end_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pretty.end_object_value(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> serde_json::Value {
        serde_json::from_str(text).unwrap()
    }

    /// The expected text was produced by Python's
    /// `json.dumps(obj, indent=3, separators=(",", " : "), ensure_ascii=False)`.
    #[test]
    fn nested_value_matches_pythons_indent_3_layout() {
        let v = parse(
            r#"{"html_attributions":[],"results":[{"geometry":{"location":{"lat":34.0736204,"lng":-118.4003563},"viewport":{}},"name":"Beverly Hills \"BH\"","types":["locality","political"],"rating":4.5,"open":true,"closed":null}],"status":"OK"}"#,
        );
        let expected = r#"{
   "html_attributions" : [],
   "results" : [
      {
         "geometry" : {
            "location" : {
               "lat" : 34.0736204,
               "lng" : -118.4003563
            },
            "viewport" : {}
         },
         "name" : "Beverly Hills \"BH\"",
         "types" : [
            "locality",
            "political"
         ],
         "rating" : 4.5,
         "open" : true,
         "closed" : null
      }
   ],
   "status" : "OK"
}"#;
        assert_eq!(to_google_json(&v), expected);
    }

    #[test]
    fn number_text_is_kept_exactly() {
        let v =
            parse(r#"{"a":1.50,"b":-118.4451270000001,"c":0.000012,"d":100000000000000000000001}"#);
        let text = to_google_json(&v);
        for number in [
            "1.50",
            "-118.4451270000001",
            "0.000012",
            "100000000000000000000001",
        ] {
            assert!(
                text.contains(&format!(" : {number}")),
                "{number} missing in {text}"
            );
        }
        assert!(!text.contains('e'), "exponent notation in {text}");
    }

    #[test]
    fn key_order_is_kept() {
        let v = parse(r#"{"zeta":1,"alpha":2,"mid":3}"#);
        assert_eq!(
            to_google_json(&v),
            "{\n   \"zeta\" : 1,\n   \"alpha\" : 2,\n   \"mid\" : 3\n}"
        );
    }

    #[test]
    fn empty_containers_and_scalars_stay_on_one_line() {
        assert_eq!(to_google_json(&parse("{}")), "{}");
        assert_eq!(to_google_json(&parse("[]")), "[]");
        assert_eq!(to_google_json(&parse(r#""x""#)), r#""x""#);
        assert_eq!(
            to_google_json(&parse(r#"{"a":[{}]}"#)),
            "{\n   \"a\" : [\n      {}\n   ]\n}"
        );
    }

    #[test]
    fn never_two_newlines_in_a_row_nor_a_trailing_one() {
        let v =
            parse(r#"{"text":"line one\n\nline three","nested":[[],[[]],{"a":{}}],"x":"\r\n"}"#);
        let text = to_google_json(&v);
        assert!(!text.contains("\n\n"), "{text}");
        assert!(!text.ends_with('\n'));
        assert_eq!(parse(&text), v, "the layout must not change the value");
    }

    #[test]
    fn unicode_is_written_as_utf8() {
        let v = parse(r#"{"name":"Sant Julià de Lòria"}"#);
        assert_eq!(
            to_google_json(&v),
            "{\n   \"name\" : \"Sant Julià de Lòria\"\n}"
        );
    }
}
