//! `herd status [--config PATH] [--watch]`: one table of the whole herd, from each
//! server's `GET /status` on its admin listener.
//!
//! ```text
//! SERVER     UP      RECORDS  LINKS  CHECK-INS/S  WHATSAT/S  PLACES HITS  LAST ERROR
//! Campbell   4m12s         5  2/2            0.0        0.0  -            -
//! Hill       -             -  -                -          -  -            no answer from 127.0.0.1:12100: connection refused
//! ```
//!
//! Every server is asked at once, each with a short time-out, over a plain HTTP/1.1 GET
//! on a `std` socket. The exit status says whether the whole herd is healthy: every
//! server answers, serves, and has every link up. `--watch` redraws the table every
//! second until Ctrl-C.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use herd_actors::admin::Status;
use herd_actors::settings::Settings;

/// How long a server may take to connect, and then to answer.
const TIME_OUT: Duration = Duration::from_secs(1);
/// A status is a few kilobytes; anything far larger is not one.
const MAX_ANSWER: u64 = 1 << 20;

pub fn run(config_path: &Path, watch: bool) -> anyhow::Result<()> {
    let config = Settings::load(config_path)?;
    if config.servers.iter().all(|s| s.admin().is_none()) {
        bail!(
            "no server of {} has an admin address: add `admin = \"127.0.0.1:PORT\"` to \
             its [servers.NAME] table",
            config_path.display()
        );
    }
    let authorization = config.admin_authorization();
    loop {
        let rows = ask_all(&config, authorization.as_deref());
        let table = render(&rows);
        let verdict = verdict(&rows);
        if !watch {
            print!("{table}");
            return match verdict {
                None => Ok(()),
                Some(why) => bail!("{why}"),
            };
        }
        // Home, clear, then the table: one frame per second.
        print!(
            "\x1b[H\x1b[2J{table}\n{}\n",
            verdict.as_deref().unwrap_or("the herd is healthy")
        );
        std::io::stdout()
            .flush()
            .context("cannot write to stdout")?;
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// One server's row: its status, or why there is none.
struct Row {
    name: String,
    status: Result<Status, String>,
}

/// Every server's status, asked at once.
fn ask_all(config: &Settings, authorization: Option<&str>) -> Vec<Row> {
    std::thread::scope(|scope| {
        let asks: Vec<_> = config
            .servers
            .iter()
            .map(|server| {
                scope.spawn(move || Row {
                    name: server.name.clone(),
                    status: match server.admin() {
                        Some(addr) => fetch(addr, authorization),
                        None => Err("no admin address in the config".into()),
                    },
                })
            })
            .collect();
        asks.into_iter()
            .zip(&config.servers)
            .map(|(ask, server)| {
                ask.join().unwrap_or_else(|_| Row {
                    name: server.name.clone(),
                    status: Err("the query failed".into()),
                })
            })
            .collect()
    })
}

/// `GET http://ADDR/status`.
fn fetch(addr: SocketAddr, authorization: Option<&str>) -> Result<Status, String> {
    let no_answer = |e: std::io::Error| format!("no answer from {addr}: {e}");
    let mut stream = TcpStream::connect_timeout(&addr, TIME_OUT).map_err(no_answer)?;
    stream.set_read_timeout(Some(TIME_OUT)).map_err(no_answer)?;
    stream
        .set_write_timeout(Some(TIME_OUT))
        .map_err(no_answer)?;
    let auth = authorization.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    let request =
        format!("GET /status HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(no_answer)?;
    let mut answer = Vec::new();
    stream
        .take(MAX_ANSWER)
        .read_to_end(&mut answer)
        .map_err(no_answer)?;
    let (code, body) =
        parse_answer(&answer).ok_or_else(|| format!("{addr} did not answer HTTP"))?;
    if code != 200 {
        return Err(format!("{addr} answered HTTP {code}"));
    }
    serde_json::from_slice(&body).map_err(|e| format!("{addr} sent no status: {e}"))
}

/// The status code and the body of an HTTP/1.1 answer read to its end.
fn parse_answer(answer: &[u8]) -> Option<(u16, Vec<u8>)> {
    let end = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&answer[..end]).ok()?;
    let body = &answer[end + 4..];
    let code = head.strip_prefix("HTTP/1.")?.get(2..5)?.parse().ok()?;
    let chunked = head.lines().any(|line| {
        let line = line.to_ascii_lowercase();
        line.starts_with("transfer-encoding:") && line.contains("chunked")
    });
    let body = if chunked {
        unchunk(body)?
    } else {
        body.to_vec()
    };
    Some((code, body))
}

/// A chunked body, joined.
fn unchunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&body[..line_end]).ok()?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

/// Why the herd is not healthy, or `None` if it is.
fn verdict(rows: &[Row]) -> Option<String> {
    let silent = rows.iter().filter(|r| r.status.is_err()).count();
    let unwell = rows
        .iter()
        .filter(|r| r.status.as_ref().is_ok_and(|s| !s.is_healthy()))
        .count();
    match (silent, unwell) {
        (0, 0) => None,
        _ => Some(format!(
            "the herd is not healthy: of {} servers, {silent} did not answer and {unwell} \
             answered but are not serving or have a link down",
            rows.len()
        )),
    }
}

/// The table, one line per server, columns padded to fit.
fn render(rows: &[Row]) -> String {
    let mut lines = vec![[
        "SERVER",
        "UP",
        "RECORDS",
        "LINKS",
        "CHECK-INS/S",
        "WHATSAT/S",
        "PLACES HITS",
        "LAST ERROR",
    ]
    .map(String::from)];
    for row in rows {
        lines.push(match &row.status {
            Ok(s) => {
                let (up, all) = s.links_up();
                let last_error = s.last_error.as_ref().map_or("-".into(), |e| {
                    format!("{} ({} ago)", e.what, duration(e.ago_s))
                });
                [
                    row.name.clone(),
                    if s.state == "serving" {
                        duration(s.uptime_s)
                    } else {
                        s.state.clone()
                    },
                    s.records.map_or("-".into(), |r| r.to_string()),
                    format!("{up}/{all}"),
                    format!("{:.1}", s.rates.check_ins_per_s),
                    format!("{:.1}", s.rates.whatsats_per_s),
                    s.places_hit_rate()
                        .map_or("-".into(), |r| format!("{:.0}%", 100.0 * r)),
                    match &s.reason {
                        Some(reason) if s.state == "serving" => reason.clone(),
                        _ => last_error,
                    },
                ]
            }
            Err(e) => {
                let mut line = ["-"; 8].map(String::from);
                line[0] = row.name.clone();
                line[7] = e.clone();
                line
            }
        });
    }
    let mut widths = [0; 8];
    for line in &lines {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    // Numbers are right-aligned; the last column is not padded.
    let right = [false, false, true, false, true, true, false, false];
    let mut out = String::new();
    for line in &lines {
        let mut cells = Vec::with_capacity(8);
        for (i, cell) in line.iter().enumerate() {
            let w = widths[i];
            cells.push(match (i, right[i]) {
                (7, _) => cell.clone(),
                (_, true) => format!("{cell:>w$}"),
                (_, false) => format!("{cell:<w$}"),
            });
        }
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `73.2` -> `1m13s`.
fn duration(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_split_into_its_code_and_body_chunked_or_not() {
        let plain = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(parse_answer(plain), Some((200, b"{}".to_vec())));
        let chunked =
            b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_answer(chunked), Some((503, b"abcde".to_vec())));
        assert_eq!(parse_answer(b"SSH-2.0-OpenSSH\r\n"), None);
    }

    #[test]
    fn durations_are_short_and_exact_enough() {
        assert_eq!(duration(5.9), "5s");
        assert_eq!(duration(73.2), "1m13s");
        assert_eq!(duration(7322.0), "2h02m");
        assert_eq!(duration(200_000.0), "2d07h");
    }

    #[test]
    fn a_server_that_does_not_answer_is_a_row_that_says_so() {
        let rows = [Row {
            name: "Hill".into(),
            status: Err("no answer from 127.0.0.1:12100: connection refused".into()),
        }];
        let table = render(&rows);
        let lines: Vec<&str> = table.lines().collect();
        assert!(
            lines[0].starts_with("SERVER  UP  RECORDS  LINKS  CHECK-INS/S"),
            "{table}"
        );
        assert!(lines[1].starts_with("Hill    -   "), "{table}");
        assert!(lines[1].ends_with("connection refused"), "{table}");
        assert!(verdict(&rows).is_some_and(|v| v.contains("1 did not answer")));
    }
}
