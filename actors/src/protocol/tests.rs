use super::*;
use proptest::prelude::*;

fn iamat(line: &str) -> IAmAt<'_> {
    match parse_line(line.as_bytes()) {
        Ok(Some(Command::IAmAt(c))) => c,
        other => panic!("{line:?} parsed as {other:?}"),
    }
}

fn whatsat(line: &str) -> WhatsAt<'_> {
    match parse_line(line.as_bytes()) {
        Ok(Some(Command::WhatsAt(c))) => c,
        other => panic!("{line:?} parsed as {other:?}"),
    }
}

fn error(line: &[u8]) -> ParseError {
    match parse_line(line) {
        Err(e) => e,
        other => panic!("{line:?} parsed as {other:?}"),
    }
}

#[test]
fn iamat_from_the_spec_parses() {
    let c = iamat("IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 1621464827.959498503");
    assert_eq!(c.client, "kiwi.cs.ucla.edu");
    assert_eq!(c.coordinates, "+34.068930-118.445127");
    assert_eq!(c.location.lat, 34.06893);
    assert_eq!(c.location.lng, -118.445127);
    assert_eq!(c.time.nanos(), 1_621_464_827_959_498_503);
    assert_eq!(c.time_text, "1621464827.959498503");
}

#[test]
fn at_line_carries_exact_nanosecond_difference() {
    let c = iamat("IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 1621464827.959498503");
    let received = Timestamp::from_nanos(1_621_464_828_223_371_889);
    let r = Record::check_in("Hill", received, &c);
    assert_eq!(
        r.at_line(),
        "AT Hill +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 1621464827.959498503"
    );
    assert_eq!(r.coordinates(), "+34.068930-118.445127");
}

#[test]
fn client_time_in_the_future_gives_negative_difference() {
    let c = iamat("IAMAT a +0-0 100.5");
    let r = Record::check_in("S", Timestamp::from_nanos(99_000_000_001), &c);
    assert_eq!(r.at_line(), "AT S -1.499999999 a +0-0 100.5");
}

#[test]
fn difference_formatting_is_fixed_notation() {
    for (n, text) in [
        (0, "+0.000000000"),
        (1, "+0.000000001"),
        (-1, "-0.000000001"),
        (12_000_000_000, "+12.000000000"),
        (i64::MAX, "+9223372036.854775807"),
        (-i64::MAX, "-9223372036.854775807"),
    ] {
        let mut s = String::new();
        format_difference(n, &mut s);
        assert_eq!(s, text);
    }
}

#[test]
fn fields_split_on_the_six_space_bytes_only() {
    let c = iamat(" \t\x0b\x0cIAMAT\t\ta\u{a0}b \x0b+1-1\x0c 5 \r");
    assert_eq!(c.client, "a\u{a0}b");
    assert_eq!(c.time.nanos(), 5_000_000_000);
}

#[test]
fn blank_lines_are_not_commands() {
    for line in [&b""[..], b"   ", b"\t\r\x0b\x0c "] {
        assert_eq!(parse_line(line), Ok(None));
    }
}

#[test]
fn command_names_are_case_sensitive_and_known() {
    assert_eq!(error(b"iamat a +1+1 1"), ParseError::UnknownCommand);
    assert_eq!(error(b"Whatsat a 1 1"), ParseError::UnknownCommand);
    assert_eq!(error(b"HELLO"), ParseError::UnknownCommand);
    assert_eq!(error(b"AT Hill +0.1 a +1+1 1"), ParseError::UnknownCommand);
}

#[test]
fn wrong_field_counts_are_invalid() {
    assert_eq!(error(b"IAMAT a +1+1"), ParseError::FieldCount);
    assert_eq!(error(b"IAMAT a +1+1 1 extra"), ParseError::FieldCount);
    assert_eq!(error(b"WHATSAT a 1"), ParseError::FieldCount);
    assert_eq!(error(b"WHATSAT"), ParseError::FieldCount);
}

#[test]
fn non_utf8_lines_are_invalid() {
    assert_eq!(error(b"IAMAT \xff +1+1 1"), ParseError::NotUtf8);
}

#[test]
fn control_and_invisible_characters_are_not_part_of_client_ids() {
    assert_eq!(error(b"IAMAT a\x01b +1+1 1"), ParseError::ClientId);
    assert_eq!(error(b"IAMAT a\x7fb +1+1 1"), ParseError::ClientId);
    // C1 controls (U+0085 is NEL, U+009B a CSI), the line and paragraph separators, the
    // bidirectional embeddings, overrides and isolates; in a WHATSAT too.
    for c in [
        '\u{80}', '\u{85}', '\u{9b}', '\u{9f}', '\u{2028}', '\u{2029}', '\u{202a}', '\u{202e}',
        '\u{2066}', '\u{2069}',
    ] {
        let line = format!("IAMAT a{c}b +1+1 1");
        assert_eq!(error(line.as_bytes()), ParseError::ClientId, "{c:?}");
        let line = format!("WHATSAT a{c}b 1 1");
        assert_eq!(error(line.as_bytes()), ParseError::ClientId, "{c:?}");
    }
    // Their neighbours are ordinary characters: U+00A0, U+00A1, U+2027, U+202F, U+2065,
    // U+206A, and an emoji.
    let id = "\u{a0}\u{a1}\u{2027}\u{202f}\u{2065}\u{206a}\u{1F600}";
    assert_eq!(iamat(&format!("IAMAT {id} +1+1 1")).client, id);
}

#[test]
fn a_record_from_a_neighbour_with_an_invisible_character_in_its_id_is_refused() {
    assert_eq!(
        Record::parse_at_line("AT Hill +0.000000001 a\u{202e}b +1+1 1").err(),
        Some(ParseError::ClientId)
    );
}

#[test]
fn coordinates_follow_iso_6709_exactly() {
    for ok in [
        "+34.068930-118.445127",
        "-34.06894+119.445127",
        "+90-180",
        "-90.000+180.0000",
        "+0+0",
        "-0.0-0.0",
        "+00090.0+00180",
    ] {
        assert!(Location::parse(ok).is_some(), "{ok}");
    }
    for bad in [
        "34.068930-118.445127",
        "+34.068930118.445127",
        "+34.-118",
        "+.5-118",
        "+34-.5",
        "+1e1+1",
        "+90.0000000000000000001+0",
        "+0-180.0000000000000000001",
        "+91+0",
        "+0+181",
        "+34.0+-118",
        "+34.0-118-1",
        "++34-118",
        "+",
        "+1",
        "+1+",
        "+1 +1",
        "+１+1",
    ] {
        assert!(Location::parse(bad).is_none(), "{bad}");
    }
}

#[test]
fn location_query_param_drops_plus_signs_and_keeps_digits() {
    let text = "+34.068930-118.445127";
    let loc = Location::parse(text).unwrap();
    assert_eq!(loc.query_param(text), "34.068930,-118.445127");
    let text = "-1.50+002.0";
    assert_eq!(
        Location::parse(text).unwrap().query_param(text),
        "-1.50,002.0"
    );
}

#[test]
fn time_follows_its_grammar_and_range() {
    for (text, nanos) in [
        ("0", 0),
        ("1646300000.5", 1_646_300_000_500_000_000),
        ("1.000000001", 1_000_000_001),
        ("0009223372036.854775807", i64::MAX),
        ("9223372036", 9_223_372_036_000_000_000),
    ] {
        assert_eq!(
            Timestamp::parse(text),
            Some(Timestamp::from_nanos(nanos)),
            "{text}"
        );
    }
    for bad in [
        "",
        "+10",
        "-1",
        ".5",
        "10.",
        "1e1",
        "1.0000000001",
        "9223372036.854775808",
        "9223372037",
        "99999999999999999999999",
        "1.5.5",
        "1,5",
        "0x10",
    ] {
        assert_eq!(Timestamp::parse(bad), None, "{bad}");
    }
}

#[test]
fn radius_is_checked_exactly_and_shifted_to_metres_exactly() {
    for (text, metres) in [
        ("10", "10000"),
        ("50", "50000"),
        ("50.000", "50000"),
        ("0.0005", "0.5"),
        ("1.23456", "1234.56"),
        ("0.001", "1"),
        ("007.5", "7500"),
        ("0.0000001", "0.0001"),
    ] {
        let r = Radius::parse(text).unwrap_or_else(|| panic!("{text}"));
        assert_eq!(r.metres_text, metres, "{text}");
        assert_eq!(r.metres, metres.parse::<f64>().unwrap());
    }
    for bad in [
        "0",
        "0.000",
        "50.0000001",
        "51",
        "-1",
        "+1",
        ".5",
        "5.",
        "1e1",
        "",
        "abc",
    ] {
        assert_eq!(Radius::parse(bad), None, "{bad}");
    }
}

#[test]
fn bound_is_an_integer_from_1_to_20() {
    assert_eq!(whatsat("WHATSAT a 10 1").bound, 1);
    assert_eq!(whatsat("WHATSAT a 10 20").bound, 20);
    assert_eq!(whatsat("WHATSAT a 10 0005").bound, 5);
    for bad in [
        "0",
        "21",
        "-1",
        "+5",
        "5.0",
        "1e1",
        "100000000000000000000005",
    ] {
        let line = format!("WHATSAT a 10 {bad}");
        assert_eq!(error(line.as_bytes()), ParseError::Bound, "{bad}");
    }
    assert_eq!(error(b"WHATSAT a 51 5"), ParseError::Radius);
}

#[test]
fn invalid_reply_echoes_the_line_byte_for_byte() {
    assert_eq!(
        invalid_reply(b"  IAMAT \xff x"),
        b"?   IAMAT \xff x\n".to_vec()
    );
}

#[test]
fn newer_is_client_time_then_at_line() {
    let a = Record::check_in("A", Timestamp::from_nanos(0), &iamat("IAMAT c +1+1 10"));
    let b = Record::check_in("B", Timestamp::from_nanos(0), &iamat("IAMAT c +1+1 10"));
    let later = Record::check_in("A", Timestamp::from_nanos(0), &iamat("IAMAT c +1+1 11"));
    assert!(b.newer_than(&a) && !a.newer_than(&b));
    assert!(later.newer_than(&b) && !b.newer_than(&later));
    assert!(!a.newer_than(&a));
}

#[test]
fn at_lines_parse_back_into_the_same_record() {
    let r = Record::check_in(
        "Hill",
        Timestamp::from_nanos(1_621_464_828_223_371_889),
        &iamat("IAMAT kiwi +34.068930-118.445127 1621464827.959498503"),
    );
    assert_eq!(Record::parse_at_line(r.at_line()), Ok(r));
}

#[test]
fn at_lines_are_stored_with_single_spaces_whatever_the_spacing() {
    let canonical = "AT Hill +0.100000000 kiwi +1+1 5";
    for spaced in [
        canonical,
        "AT\tHill +0.100000000 kiwi +1+1 5",
        "  AT Hill  +0.100000000 kiwi +1+1\t5 ",
    ] {
        let r = Record::parse_at_line(spaced).unwrap();
        assert_eq!(r.at_line(), canonical, "{spaced:?}");
        assert_eq!(r.coordinates(), "+1+1");
    }
}

#[test]
fn malformed_at_lines_are_refused() {
    for bad in [
        "AT Hill 0.1 a +1+1 1",
        "AT Hill +0.1 a +1+1 1",
        "AT Hill +0.100000000 a +1+1",
        "AT Hill +0.100000000 a 1+1 1",
        "AT Hill +0.100000000 a +1+1 x",
        "AT H\x01 +0.100000000 a +1+1 1",
        "IAMAT a +1+1 1",
    ] {
        assert!(Record::parse_at_line(bad).is_err(), "{bad}");
    }
}

fn decimal(int_max: u32) -> impl Strategy<Value = String> {
    (0..=int_max, proptest::option::of("[0-9]{1,12}")).prop_map(|(i, f)| match f {
        Some(f) => format!("{i}.{f}"),
        None => i.to_string(),
    })
}

proptest! {
    #[test]
    fn no_input_makes_the_parser_panic(line in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse_line(&line);
        if let Ok(s) = std::str::from_utf8(&line) {
            let _ = Record::parse_at_line(s);
        }
    }

    #[test]
    fn structured_noise_never_panics(
        parts in proptest::collection::vec("[-+.0-9eE ]{0,12}|IAMAT|WHATSAT|AT", 0..7)
    ) {
        let _ = parse_line(parts.join(" ").as_bytes());
        let _ = Record::parse_at_line(&parts.join(" "));
    }

    #[test]
    fn check_ins_round_trip_through_at_lines(
        client in "[!-~\u{a0}-\u{2ff}]{1,20}",
        lat in decimal(89), lng in decimal(179),
        lat_neg in any::<bool>(), lng_neg in any::<bool>(),
        secs in 0i64..9_000_000_000, frac in proptest::option::of("[0-9]{1,9}"),
        received in 0i64..i64::MAX,
    ) {
        let coords = format!(
            "{}{lat}{}{lng}",
            if lat_neg { '-' } else { '+' },
            if lng_neg { '-' } else { '+' },
        );
        let time = match frac { Some(f) => format!("{secs}.{f}"), None => secs.to_string() };
        let line = format!("IAMAT {client} {coords} {time}");
        let cmd = iamat(&line);
        prop_assert_eq!(cmd.client, client.as_str());
        let r = Record::check_in("Hill", Timestamp::from_nanos(received), &cmd);
        prop_assert_eq!(r.coordinates(), coords.as_str());
        let back = Record::parse_at_line(r.at_line());
        prop_assert_eq!(back, Ok(r.clone()));
        // The difference printed is received minus the client's time, exactly.
        let diff = r.at_line().split(' ').nth(2).unwrap_or_default();
        let (s, n) = diff[1..].split_once('.').unwrap_or_default();
        let magnitude: i128 = s.parse::<i128>().unwrap_or(-1) * 1_000_000_000 + n.parse::<i128>().unwrap_or(-1);
        let signed = if diff.starts_with('-') { -magnitude } else { magnitude };
        prop_assert_eq!(signed, i128::from(received) - i128::from(cmd.time.nanos()));
    }

    #[test]
    fn radius_metres_text_is_the_kilometres_times_1000(int in 0u32..50, frac in "[0-9]{0,8}") {
        let text = if frac.is_empty() { int.to_string() } else { format!("{int}.{frac}") };
        let km: f64 = text.parse().unwrap_or(0.0);
        match Radius::parse(&text) {
            Some(r) => prop_assert!((r.metres - km * 1000.0).abs() < 1e-6),
            None => prop_assert_eq!(km, 0.0),
        }
    }
}

#[test]
fn a_record_hash_is_the_same_whichever_server_parses_its_at_line() {
    let taken = Record::check_in(
        "Hill",
        Timestamp::from_nanos(0),
        &iamat("IAMAT kiwi +1+1 10"),
    );
    let parsed = Record::parse_at_line(taken.at_line()).unwrap();
    assert_eq!(taken.hash(), parsed.hash());
    // Pinned: XXH3-64 of the AT line, which servers of other builds compute too.
    assert_eq!(
        (taken.at_line(), taken.hash()),
        (
            "AT Hill -10.000000000 kiwi +1+1 10",
            1_540_515_328_768_455_293
        )
    );
    let other = Record::check_in(
        "Hill",
        Timestamp::from_nanos(1),
        &iamat("IAMAT kiwi +1+1 10"),
    );
    assert_ne!(taken.hash(), other.hash());
}
