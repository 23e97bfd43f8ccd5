//! `herd client ADDR|NAME [LINE...]`: a scripted client.
//!
//! Sends one line at a time and prints its reply whole before the next: one line for AT and
//! `?` replies, and for a WHATSAT answered with an AT line, everything up to the blank line
//! that ends it. Blank lines get no reply from a server, so they are not sent. Nothing but
//! replies goes to stdout.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;

use herd_actors::protocol::{fields, is_space};
use herd_actors::settings::Settings;

pub fn run(target: &str, args: &[String], config_path: &Path) -> Result<(), String> {
    let addr = resolve(target, config_path)?;
    let stream = TcpStream::connect(addr)
        .map_err(|e| format!("cannot connect to {target} ({addr}): {e}"))?;
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(
        stream
            .try_clone()
            .map_err(|e| format!("cannot use the connection to {addr}: {e}"))?,
    );
    let mut writer = stream;
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let mut exchange = |line: &[u8]| -> Result<(), String> {
        if line.iter().all(|&b| is_space(b)) {
            return Ok(());
        }
        let mut sent = line.to_vec();
        sent.push(b'\n');
        writer
            .write_all(&sent)
            .map_err(|e| format!("cannot send to {addr}: {e}"))?;
        let reply = read_reply(&mut reader, line).map_err(|e| {
            format!(
                "no reply from {addr} to {:?}: {e}",
                String::from_utf8_lossy(line)
            )
        })?;
        out.write_all(&reply)
            .and_then(|()| out.flush())
            .map_err(|e| format!("cannot write to stdout: {e}"))
    };
    if args.is_empty() {
        let stdin = io::stdin();
        let mut input = stdin.lock();
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = input
                .read_until(b'\n', &mut line)
                .map_err(|e| format!("cannot read stdin: {e}"))?;
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
fn resolve(target: &str, config_path: &Path) -> Result<SocketAddr, String> {
    if let Ok(addr) = target.parse() {
        return Ok(addr);
    }
    let config = Settings::load(config_path).map_err(|e| e.to_string())?;
    Ok(config.server(target).map_err(|e| e.to_string())?.addr)
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
