//! `herd status [--config PATH] [--watch]`: one table of the whole herd, from each
//! server's `GET /status` on its admin listener.
//!
//! ```text
//! SERVER     UP      RECORDS  LINKS  CHECK-INS/S  WHATSAT/S  PLACES HITS  LAST ERROR
//! Campbell   4m12s         5  2/2            0.0        0.0  -            -
//! Hill       -             -  -                -          -  -            no answer from 127.0.0.1:12100: Failed to connect to host: Connection refused (os error 111)
//! ```
//!
//! Every server is asked at once, each with a short time-out, by the admin listener's own
//! [`StatusClient`](herd_actors::admin::StatusClient) on an actix system. The exit status
//! says whether the whole herd is healthy: every server answers, serves, and has every link
//! up. `--watch` redraws the table every second until Ctrl-C, in place on a terminal, one
//! table after another into a pipe or a file; a reader that closes the pipe ends it.

use std::io::{ErrorKind, IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use herd_actors::admin::{Status, StatusClient};
use herd_actors::escaped;
use herd_actors::settings::Settings;

/// How long a server may take to answer.
const TIME_OUT: Duration = Duration::from_secs(1);

pub fn run(config_path: &Path, watch: bool) -> anyhow::Result<()> {
    let config = Settings::load(config_path)?;
    if config.servers.iter().all(|s| s.admin().is_none()) {
        bail!(
            "no server of {} has an admin address: add `admin = \"127.0.0.1:PORT\"` to \
             its [servers.NAME] table",
            config_path.display()
        );
    }
    let terminal = std::io::stdout().is_terminal();
    actix_rt::System::new().block_on(async {
        let client = StatusClient::new(TIME_OUT, config.admin_authorization());
        loop {
            let rows = ask_all(&config, &client).await;
            let table = render(&rows);
            let verdict = verdict(&rows);
            let said = verdict.as_deref().unwrap_or("the herd is healthy");
            let frame = match (watch, terminal) {
                (false, _) => table,
                // Home, clear, then the table: one frame per second, in place.
                (true, true) => format!("\x1b[H\x1b[2J{table}\n{said}\n"),
                // Into a pipe or a file: one frame after another, no escapes.
                (true, false) => format!("{table}{said}\n\n"),
            };
            // Once the reader is gone (`| head -1`), there is no one to show more to.
            if !print(&frame)? || !watch {
                return match verdict {
                    None => Ok(()),
                    Some(why) => bail!("{why}"),
                };
            }
            actix_rt::time::sleep(Duration::from_secs(1)).await;
        }
    })
}

/// Writes `text` to stdout: `false` if the reader has closed its end (a closed pipe is
/// the reader's way to say it has read enough, not a failure).
fn print(text: &str) -> anyhow::Result<bool> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e).context("cannot write to stdout"),
    }
}

/// One server's row: its status, or why there is none.
struct Row {
    name: String,
    status: Result<Status, String>,
}

/// Every server's status, asked at once.
async fn ask_all(config: &Settings, client: &StatusClient) -> Vec<Row> {
    let asks: Vec<_> = config
        .servers
        .iter()
        .map(|server| {
            let (client, admin) = (client.clone(), server.admin());
            actix_rt::spawn(async move {
                match admin {
                    Some(addr) => client.fetch(addr).await,
                    None => Err("no admin address in the config".into()),
                }
            })
        })
        .collect();
    let mut rows = Vec::with_capacity(asks.len());
    for (ask, server) in asks.into_iter().zip(&config.servers) {
        rows.push(Row {
            name: server.name.clone(),
            status: ask.await.unwrap_or_else(|_| Err("the query failed".into())),
        });
    }
    rows
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
    // Every cell but the header holds what a server (or whatever answers on its admin
    // port) said: it reaches the terminal escaped, and stays in its cell.
    for cell in lines.iter_mut().skip(1).flatten() {
        *cell = escaped(cell);
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
    fn durations_are_short_and_exact_enough() {
        assert_eq!(duration(5.9), "5s");
        assert_eq!(duration(73.2), "1m13s");
        assert_eq!(duration(7322.0), "2h02m");
        assert_eq!(duration(200_000.0), "2d07h");
    }

    #[test]
    fn what_a_server_says_is_escaped_and_stays_in_its_cell() {
        let rows = [Row {
            name: "Hill".into(),
            status: Err("\x1b]52;c;ZXZpbA==\x07\x1b[2J\r\nSmith  up\u{9b}1m\u{202e}\\".into()),
        }];
        let table = render(&rows);
        assert_eq!(table.lines().count(), 2, "{table}");
        assert!(
            table.ends_with(
                "\\x1b]52;c;ZXZpbA==\\x07\\x1b[2J\\r\\nSmith  up\\u{9b}1m\\u{202e}\\\\\n"
            ),
            "{table}"
        );
        assert_eq!(
            escaped("caf\u{e9} \u{a0}\u{1F600}"),
            "caf\u{e9} \u{a0}\u{1F600}"
        );
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
