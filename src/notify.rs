//! Readiness, told the way systemd asks for it (`sd_notify(3)`): a datagram such as
//! `READY=1` to the Unix socket that `NOTIFY_SOCKET` names, a path or, after `@`, an abstract
//! name. `herd serve` sends it once it takes connections, so that whoever started it (a
//! `Type=notify` unit) does not call it up because its process began.

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The variable that names the socket.
const VAR: &str = "NOTIFY_SOCKET";

/// Tells whoever started this process `state` (`READY=1`, `STOPPING=1`), if anyone asked.
pub fn tell(state: &str) {
    let Some(socket) = std::env::var_os(VAR) else {
        return;
    };
    let sent = address(&socket).and_then(|to| {
        UnixDatagram::unbound()?.send_to_addr(state.as_bytes(), &to)?;
        Ok(())
    });
    if let Err(e) = sent {
        log::warn!("cannot send {state:?} to {VAR}={}: {e}", socket.display());
    }
}

/// `NOTIFY_SOCKET`'s value as an address.
fn address(value: &OsStr) -> io::Result<SocketAddr> {
    match value.as_bytes().strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name),
        None => SocketAddr::from_pathname(value),
    }
}
