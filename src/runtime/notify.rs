//! The systemd service manager's notification protocol (`sd_notify`): datagrams of
//! `KEY=value` lines sent to the socket named by `NOTIFY_SOCKET`. Without that variable
//! (not started by systemd with `Type=notify`) every call does nothing.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Where notifications go: a path, or an abstract socket (`@name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyTarget {
    Path(std::path::PathBuf),
    Abstract(Vec<u8>),
}

/// Reads `NOTIFY_SOCKET`'s value. Only absolute paths and abstract names are valid.
pub fn parse_target(value: &str) -> Option<NotifyTarget> {
    if let Some(name) = value.strip_prefix('@') {
        (!name.is_empty()).then(|| NotifyTarget::Abstract(name.as_bytes().to_vec()))
    } else if value.starts_with('/') {
        Some(NotifyTarget::Path(value.into()))
    } else {
        None
    }
}

/// The watchdog interval asked by `WATCHDOG_USEC`, when it is meant for this process
/// (`WATCHDOG_PID` unset or equal to ours).
pub fn parse_watchdog(usec: Option<&str>, pid: Option<&str>, my_pid: u32) -> Option<Duration> {
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok()? != my_pid {
            return None;
        }
    }
    let usec: u64 = usec?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

fn target() -> Option<NotifyTarget> {
    parse_target(&std::env::var("NOTIFY_SOCKET").ok()?)
}

/// Sends one notification (e.g. `READY=1`); errors are logged, never fatal.
pub fn notify(state: &str) {
    let Some(target) = target() else { return };
    let sent = (|| -> std::io::Result<()> {
        let socket = UnixDatagram::unbound()?;
        let address = match &target {
            NotifyTarget::Path(p) => SocketAddr::from_pathname(p)?,
            NotifyTarget::Abstract(name) => SocketAddr::from_abstract_name(name)?,
        };
        socket.send_to_addr(state.as_bytes(), &address)?;
        Ok(())
    })();
    if let Err(e) = sent {
        tracing::warn!("sd_notify {state:?} failed: {e}");
    }
}

/// The watchdog interval systemd asked for, if any.
pub fn watchdog_interval() -> Option<Duration> {
    parse_watchdog(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            parse_target("/run/systemd/notify"),
            Some(NotifyTarget::Path("/run/systemd/notify".into()))
        );
        assert_eq!(
            parse_target("@sd-notify"),
            Some(NotifyTarget::Abstract(b"sd-notify".to_vec()))
        );
        assert_eq!(parse_target("relative/path"), None);
        assert_eq!(parse_target("@"), None);
    }

    #[test]
    fn watchdog_is_for_this_process_only() {
        let d = Duration::from_secs(10);
        assert_eq!(parse_watchdog(Some("10000000"), None, 7), Some(d));
        assert_eq!(parse_watchdog(Some("10000000"), Some("7"), 7), Some(d));
        assert_eq!(parse_watchdog(Some("10000000"), Some("8"), 7), None);
        assert_eq!(parse_watchdog(Some("0"), None, 7), None);
        assert_eq!(parse_watchdog(None, None, 7), None);
        assert_eq!(parse_watchdog(Some("x"), None, 7), None);
    }
}
