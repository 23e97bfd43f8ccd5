//! Readiness, told the way systemd asks for it (`sd_notify(3)`): a datagram such as
//! `READY=1` to the Unix socket that `NOTIFY_SOCKET` names, a path or, after `@`, an abstract
//! name. `herd serve` sends it once it takes connections; a `Type=notify` unit and `herd up`
//! both wait for it, so neither calls a server up because its process began.

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

/// A socket that hears one child's notifications: `herd up` makes one per server.
pub struct Listener {
    socket: UnixDatagram,
    /// What the child's `NOTIFY_SOCKET` is to be.
    value: String,
    ready: bool,
}

impl Listener {
    /// A socket at a fresh abstract name (nothing to clean up on any exit).
    pub fn new() -> io::Result<Listener> {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).map_err(io::Error::other)?;
        let name: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let name = format!("herd-up-{}-{name}", std::process::id());
        let socket = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&name)?)?;
        socket.set_nonblocking(true)?;
        Ok(Listener {
            socket,
            value: format!("@{name}"),
            ready: false,
        })
    }

    /// The value of `NOTIFY_SOCKET` that reaches this socket.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether the child has said `READY=1`, reading what it has sent since the last call.
    pub fn is_ready(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        while let Ok(n) = self.socket.recv(&mut buf) {
            let said = &buf[..n];
            self.ready |= said.split(|&b| b == b'\n').any(|l| l == b"READY=1");
        }
        self.ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_hears_ready_from_the_value_it_hands_out() {
        let mut listener = Listener::new().expect("a socket");
        assert!(listener.value().starts_with('@'));
        assert!(!listener.is_ready());
        let to = address(OsStr::new(listener.value())).expect("an address");
        let sender = UnixDatagram::unbound().expect("a socket");
        sender.send_to_addr(b"STATUS=loading", &to).expect("sent");
        assert!(!listener.is_ready());
        sender
            .send_to_addr(b"READY=1\nSTATUS=serving", &to)
            .expect("sent");
        assert!(listener.is_ready());
        assert!(listener.is_ready(), "ready stays ready");
    }
}
