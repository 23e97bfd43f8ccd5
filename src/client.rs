//! `herd client ADDR|NAME [LINE...]`: a scripted client.
//!
//! Sends one line at a time and prints its reply whole before the next: one line for AT and
//! `?` replies, and for a WHATSAT answered with an AT line, everything up to the blank line
//! that ends it. Blank lines get no reply from a server, so they are not sent. Nothing but
//! replies goes to stdout.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;

use anyhow::Context;
use herd_actors::protocol::{fields, is_space};
use herd_actors::settings::Settings;

pub fn run(target: &str, args: &[String], config_path: &Path) -> anyhow::Result<()> {
    let addr = resolve(target, config_path)?;
    let stream =
        TcpStream::connect(addr).with_context(|| format!("cannot connect to {target} ({addr})"))?;
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(
        stream
            .try_clone()
            .with_context(|| format!("cannot use the connection to {addr}"))?,
    );
    let mut writer = stream;
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let mut exchange = |line: &[u8]| -> anyhow::Result<()> {
        if line.iter().all(|&b| is_space(b)) {
            return Ok(());
        }
        let mut sent = line.to_vec();
        sent.push(b'\n');
        writer
            .write_all(&sent)
            .with_context(|| format!("cannot send to {addr}"))?;
        let reply = read_reply(&mut reader, line).with_context(|| {
            format!(
                "no reply from {addr} to {:?}",
                String::from_utf8_lossy(line)
            )
        })?;
        out.write_all(&reply)
            .and_then(|()| out.flush())
            .context("cannot write to stdout")
    };
    if args.is_empty() {
        let stdin = io::stdin();
        let mut input = stdin.lock();
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = input
                .read_until(b'\n', &mut line)
                .context("cannot read stdin")?;
            if n == 0 {
                break;
            }
            if line.last() == Some(&b'\n') {
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
            }
            exchange(&line)?;
        }
    } else {
        for arg in args {
            exchange(arg.as_bytes())?;
        }
    }
    Ok(())
}

/// An address as given, or the address of the server so named in the config file.
fn resolve(target: &str, config_path: &Path) -> anyhow::Result<SocketAddr> {
    if let Ok(addr) = target.parse() {
        return Ok(addr);
    }
    let config = Settings::load(config_path)?;
    Ok(config.server(target)?.addr)
}

/// One reply: a line, or for an answered WHATSAT, lines up to and including a blank one.
fn read_reply(reader: &mut impl BufRead, sent: &[u8]) -> io::Result<Vec<u8>> {
    let mut reply = Vec::new();
    read_line(reader, &mut reply)?;
    let is_whatsat = std::str::from_utf8(sent)
        .ok()
        .and_then(|s| fields(s).next())
        == Some("WHATSAT");
    if is_whatsat && reply.starts_with(b"AT ") {
        loop {
            let start = reply.len();
            read_line(reader, &mut reply)?;
            if reply[start..] == *b"\n" {
                break;
            }
        }
    }
    Ok(reply)
}

fn read_line(reader: &mut impl BufRead, into: &mut Vec<u8>) -> io::Result<()> {
    let n = reader.read_until(b'\n', into)?;
    if n == 0 || into.last() != Some(&b'\n') {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the server closed the connection",
        ));
    }
    Ok(())
}
