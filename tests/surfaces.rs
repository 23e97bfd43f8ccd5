//! What an operator sees must not be written by others: text from outside the server (a
//! client's id, a neighbour's words, another server's `/status`) reaches the event log and
//! the terminal escaped, and the admin listener answers only those it is meant for.

mod common;

use common::*;

/// The characters no client id may hold besides C0 controls: C1 controls (U+0085 is a line
/// break to some programs, U+009B a CSI to some terminals), the line and paragraph
/// separators, the bidirectional embeddings, overrides and isolates.
const HIDDEN: [char; 10] = [
    '\u{80}', '\u{85}', '\u{9b}', '\u{9f}', '\u{2028}', '\u{2029}', '\u{202a}', '\u{202e}',
    '\u{2066}', '\u{2069}',
];

#[test]
fn client_ids_with_c1_bidirectional_or_separator_characters_are_refused_and_logged_escaped() {
    let files = HerdFiles::single("");
    let _server = files.serve("Hill");
    let mut conn = Conn::open(files.addr("Hill"));
    let me = conn.0.local_addr().expect("the client's address");
    for c in HIDDEN {
        let line = format!("IAMAT pay{c}fdp.exe +1+1 1");
        assert_eq!(conn.line(&line), format!("? {line}\n"), "{c:?}");
    }
    // Ids with their neighbours in Unicode are ids like any other.
    let at = conn.line("IAMAT n\u{a0}\u{2027}\u{202f}\u{2065}\u{206a}b +1+1 1");
    assert!(at.starts_with("AT Hill "), "{at}");
    drop(conn);
    let log = wait_for("the connection's end logged", || {
        let log = files.log("Hill");
        log.contains(&format!("closed {me}")).then_some(log)
    });
    assert!(!log.chars().any(hidden), "{log}");
    for c in HIDDEN {
        let escaped = format!("IAMAT pay\\u{{{:x}}}fdp.exe +1+1 1", u32::from(c));
        assert!(
            log.contains(&format!(" in {me} {escaped}\n")),
            "{escaped}:\n{log}"
        );
        assert!(
            log.contains(&format!(" out {me} ? {escaped}\n")),
            "{escaped}:\n{log}"
        );
    }
}

/// Whether `c` is a control character or one of [`HIDDEN`], but for the newline that ends
/// each line of a log.
fn hidden(c: char) -> bool {
    (c.is_control() && c != '\n') || HIDDEN.contains(&c)
}
