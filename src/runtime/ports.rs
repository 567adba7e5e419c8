//! One node per port: who else listens on the node's addresses.
//!
//! Every shard binds the S3 and website ports with `SO_REUSEPORT`, and the kernel would let a
//! second `granary server` (a mistyped unit, an overlapping restart) bind the same port and
//! split clients between two stores. A bind test cannot tell that case from a restart on the
//! node's own port (the sockets of its last run in TIME_WAIT carry `SO_REUSEPORT` too), so
//! the node reads the kernel's table of listening sockets instead: before its shards start,
//! nobody may listen on its addresses; once they all listen, only its own sockets may.
//! Two servers started in the same instant both see the other at the second check and both
//! stop: neither serves half the clients.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// TCP state of a listening socket in `/proc/net/tcp*`.
const LISTEN: &str = "0A";

/// The listening sockets of `/proc/net/tcp` or `/proc/net/tcp6` (the text of either).
pub fn listeners(table: &str) -> Vec<SocketAddr> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let local = fields.nth(1)?;
            let state = fields.nth(1)?;
            if state != LISTEN {
                return None;
            }
            parse_local(local)
        })
        .collect()
}

/// `0100007F:0F3C` (IPv4) or 32 hex digits and a port (IPv6): addresses are in the
/// kernel's byte order, 32-bit words as the host stores them (little-endian here).
fn parse_local(text: &str) -> Option<SocketAddr> {
    let (addr, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(
            u32::from_str_radix(addr, 16).ok()?.to_le_bytes(),
        )),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, word) in bytes.chunks_mut(4).enumerate() {
                let w = u32::from_str_radix(addr.get(i * 8..i * 8 + 8)?, 16).ok()?;
                word.copy_from_slice(&w.to_le_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Whether a socket listening on `other` takes connections meant for `ours`: same port,
/// and the same address or a wildcard on either side.
pub fn overlaps(ours: SocketAddr, other: SocketAddr) -> bool {
    let unspecified = |a: IpAddr| a.is_unspecified();
    let same_ip = match (ours.ip(), other.ip()) {
        (IpAddr::V4(a), IpAddr::V6(b)) | (IpAddr::V6(b), IpAddr::V4(a)) => {
            b.to_ipv4_mapped() == Some(a)
        }
        (a, b) => a == b,
    };
    ours.port() == other.port() && (same_ip || unspecified(ours.ip()) || unspecified(other.ip()))
}

/// How many sockets listen where `addr` would, as this machine's kernel sees them now.
pub fn listening_on(addr: SocketAddr) -> std::io::Result<usize> {
    let mut n = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = match std::fs::read_to_string(table) {
            Ok(text) => text,
            // No IPv6 on this machine.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        n += listeners(&text)
            .into_iter()
            .filter(|l| overlaps(addr, *l))
            .count();
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when \
retrnsmt   uid  timeout inode
   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 189 1
   1: 0100007F:0F3C 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 190 1
   2: 0100007F:0F3C 0100007F:CBB0 06 00000000:00000000 03:000007CF 00000000     0        0 0 3
   3: 0100007F:D5AF 0100007F:0F3C 01 00000000:00000000 00:00000000 00000000     0        0 191 1
";
    const TCP6: &str = "  sl  local_address                         remote_address     st
   0: 00000000000000000000000000000000:0F3D 00000000000000000000000000000000:0000 0A 0 0
   1: 00000000000000000000000001000000:0F3E 00000000000000000000000000000000:0000 0A 0 0
";

    #[test]
    fn only_listening_sockets_are_read_with_their_addresses() {
        let v4 = listeners(TCP);
        assert_eq!(
            v4,
            vec![
                "0.0.0.0:2024".parse::<SocketAddr>().unwrap(),
                "127.0.0.1:3900".parse().unwrap(),
            ]
        );
        let v6 = listeners(TCP6);
        assert_eq!(
            v6,
            vec![
                "[::]:3901".parse::<SocketAddr>().unwrap(),
                "[::1]:3902".parse().unwrap(),
            ]
        );
        assert!(listeners("header only\n").is_empty());
        assert!(listeners("h\n 0: zz:zz 0:0 0A\n 1: 0100007F 0:0 0A\n").is_empty());
    }

    #[test]
    fn wildcards_and_mapped_addresses_overlap() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(overlaps(a("127.0.0.1:3900"), a("127.0.0.1:3900")));
        assert!(overlaps(a("127.0.0.1:3900"), a("0.0.0.0:3900")));
        assert!(overlaps(a("0.0.0.0:3900"), a("127.0.0.2:3900")));
        assert!(overlaps(a("127.0.0.1:3900"), a("[::]:3900")));
        assert!(overlaps(a("127.0.0.1:3900"), a("[::ffff:127.0.0.1]:3900")));
        assert!(!overlaps(a("127.0.0.1:3900"), a("127.0.0.2:3900")));
        assert!(!overlaps(a("127.0.0.1:3900"), a("127.0.0.1:3901")));
        assert!(!overlaps(a("127.0.0.1:3900"), a("[::1]:3900")));
    }
}
