//! `rookery healthcheck`: a container health probe without curl or a shell. It reads
//! `ROOKERY_BIND` like the node does, sends `GET /healthz` to it (on loopback when the node binds
//! every address) and exits 0 on a 200, 1 otherwise, saying why on stderr.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    process::ExitCode,
    time::Duration,
};

use crate::settings::Settings;

const TIMEOUT: Duration = Duration::from_secs(3);

/// Probes the local node; the process's exit code.
pub fn run() -> ExitCode {
    match probe() {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("rookery healthcheck: {why}");
            ExitCode::FAILURE
        }
    }
}

fn probe() -> Result<(), String> {
    let settings = Settings::from_env().map_err(|e| e.to_string())?;
    let target = local_target(settings.bind);
    let mut stream =
        TcpStream::connect_timeout(&target, TIMEOUT).map_err(|e| format!("cannot connect to {target}: {e}"))?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
    write!(stream, "GET /healthz HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).map_err(|e| format!("no answer from {target}: {e}"))?;
    match &head[9..12] {
        b"200" => Ok(()),
        status => Err(format!("{target} answered {}", String::from_utf8_lossy(status))),
    }
}

/// Where to reach a node bound to `bind`: loopback for an unspecified address.
fn local_target(bind: SocketAddr) -> SocketAddr {
    if bind.ip().is_unspecified() {
        let loopback = if bind.is_ipv4() { "127.0.0.1".parse() } else { "::1".parse() };
        SocketAddr::new(loopback.unwrap_or(bind.ip()), bind.port())
    } else {
        bind
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unspecified_bind_is_probed_on_loopback() {
        assert_eq!(local_target("0.0.0.0:8080".parse().unwrap()), "127.0.0.1:8080".parse().unwrap());
        assert_eq!(local_target("[::]:9000".parse().unwrap()), "[::1]:9000".parse().unwrap());
        assert_eq!(local_target("10.0.0.5:8080".parse().unwrap()), "10.0.0.5:8080".parse().unwrap());
    }
}
