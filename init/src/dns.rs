//! A minimal DNS A-record client over UDP (RFC 1035), so the static guest
//! binary never needs glibc's NSS (`getaddrinfo`). The answers are untrusted
//! like everything else from the host: a wrong address can only make a fetch
//! fail, because everything fetched is verified against its pin.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use thiserror::Error;

/// Why a name could not be resolved.
#[derive(Debug, Error)]
pub enum DnsError {
    /// The name cannot be encoded as DNS labels.
    #[error("{0:?} is not a valid DNS name")]
    BadName(String),
    /// Socket error talking to the resolver.
    #[error("DNS query to {resolver} failed: {source}")]
    Io {
        /// The resolver queried.
        resolver: SocketAddr,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The reply is malformed or does not match the query.
    #[error("malformed DNS reply: {0}")]
    Malformed(&'static str),
    /// The resolver answered with an error code.
    #[error("DNS resolver answered rcode {0} for {1:?}")]
    Rcode(u8, String),
    /// No A records in the answer.
    #[error("no IPv4 address for {0:?}")]
    NoAddress(String),
}

const TYPE_A: u16 = 1;
const CLASS_IN: u16 = 1;

/// Encodes a standard recursive query for `name`'s A records.
pub fn encode_query(id: u16, name: &str) -> Result<Vec<u8>, DnsError> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return Err(DnsError::BadName(name.into()));
    }
    let mut q = Vec::with_capacity(18 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00]); // RD
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // QD=1, AN=NS=AR=0
    for label in name.split('.') {
        // A label is 1 to 63 bytes, its length one byte on the wire.
        let len = u8::try_from(label.len()).unwrap_or(u8::MAX);
        if len == 0
            || len > 63
            || !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(DnsError::BadName(name.into()));
        }
        q.push(len);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&TYPE_A.to_be_bytes());
    q.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(q)
}

/// Skips a (possibly compressed) name starting at `pos`; returns the offset after it.
fn skip_name(msg: &[u8], mut pos: usize) -> Result<usize, DnsError> {
    loop {
        let len = *msg.get(pos).ok_or(DnsError::Malformed("truncated name"))?;
        match len {
            0 => return Ok(pos + 1),
            l if l & 0xc0 == 0xc0 => {
                msg.get(pos + 1)
                    .ok_or(DnsError::Malformed("truncated pointer"))?;
                return Ok(pos + 2);
            }
            l if l & 0xc0 == 0 => pos += 1 + l as usize,
            _ => return Err(DnsError::Malformed("bad label type")),
        }
    }
}

fn u16_at(msg: &[u8], pos: usize) -> Result<u16, DnsError> {
    msg.get(pos..pos + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or(DnsError::Malformed("truncated"))
}

/// Parses a reply to query `id`, returning every A record in the answer section.
pub fn parse_reply(msg: &[u8], id: u16, name: &str) -> Result<Vec<Ipv4Addr>, DnsError> {
    if msg.len() < 12 {
        return Err(DnsError::Malformed("shorter than a header"));
    }
    if u16_at(msg, 0)? != id {
        return Err(DnsError::Malformed("reply id does not match the query"));
    }
    if msg[2] & 0x80 == 0 {
        return Err(DnsError::Malformed("not a response"));
    }
    if msg[2] & 0x02 != 0 {
        return Err(DnsError::Malformed("truncated (TC) reply"));
    }
    let rcode = msg[3] & 0x0f;
    if rcode != 0 {
        return Err(DnsError::Rcode(rcode, name.into()));
    }
    let qd = u16_at(msg, 4)?;
    let an = u16_at(msg, 6)?;
    let mut pos = 12;
    for _ in 0..qd {
        pos = skip_name(msg, pos)? + 4;
    }
    let mut out = Vec::new();
    for _ in 0..an {
        pos = skip_name(msg, pos)?;
        let rtype = u16_at(msg, pos)?;
        let class = u16_at(msg, pos + 2)?;
        let rdlen = u16_at(msg, pos + 8)? as usize;
        let rdata = msg
            .get(pos + 10..pos + 10 + rdlen)
            .ok_or(DnsError::Malformed("truncated rdata"))?;
        if rtype == TYPE_A && class == CLASS_IN && rdlen == 4 {
            out.push(Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3]));
        }
        pos += 10 + rdlen;
    }
    if out.is_empty() {
        return Err(DnsError::NoAddress(name.into()));
    }
    Ok(out)
}

/// Resolves `name` to IPv4 addresses by asking `resolver` (UDP port 53 unless given), 3 tries.
pub fn resolve_a(resolver: SocketAddr, name: &str) -> Result<Vec<Ipv4Addr>, DnsError> {
    let io_err = |source| DnsError::Io { resolver, source };
    let mut idb = [0u8; 2];
    getrandom::getrandom(&mut idb).map_err(|e| io_err(io::Error::other(e.to_string())))?;
    let id = u16::from_be_bytes(idb);
    let query = encode_query(id, name)?;
    let bind: SocketAddr = if resolver.is_ipv4() {
        "0.0.0.0:0".parse().unwrap()
    } else {
        "[::]:0".parse().unwrap()
    };
    let sock = UdpSocket::bind(bind).map_err(io_err)?;
    sock.connect(resolver).map_err(io_err)?;
    sock.set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(io_err)?;
    let mut last = None;
    for _ in 0..3 {
        sock.send(&query).map_err(io_err)?;
        let mut buf = [0u8; 1500];
        match sock.recv(&mut buf) {
            Ok(n) => match parse_reply(&buf[..n], id, name) {
                // A stray datagram with another id: keep waiting on the next try.
                Err(DnsError::Malformed("reply id does not match the query")) => continue,
                other => return other,
            },
            Err(e) => last = Some(e),
        }
    }
    Err(io_err(last.unwrap_or_else(|| {
        io::Error::new(io::ErrorKind::TimedOut, "no reply")
    })))
}

/// The first `nameserver` in the kernel's DHCP answer (/proc/net/pnp) or a resolv.conf-style text.
pub fn nameserver_from(text: &str) -> Option<Ipv4Addr> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .find_map(|rest| rest.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply to `query` with a CNAME and then two A records (compressed names).
    fn reply_for(query: &[u8], addrs: &[[u8; 4]]) -> Vec<u8> {
        let mut r = query.to_vec();
        r[2] = 0x81;
        r[3] = 0x80;
        r[7] = u8::try_from(addrs.len() + 1).expect("a test reply has a few records");
        // CNAME record pointing at the question name (offset 12).
        r.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 2, 0xc0, 12]);
        for a in addrs {
            r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
            r.extend_from_slice(a);
        }
        r
    }

    #[test]
    fn query_wire_format() {
        let q = encode_query(0xabcd, "static.crates.io").unwrap();
        assert_eq!(&q[..12], &[0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&q[12..], b"\x06static\x06crates\x02io\x00\x00\x01\x00\x01");
        assert!(encode_query(1, "bad..name").is_err());
        assert!(encode_query(1, "spa ce").is_err());
    }

    #[test]
    fn parses_answers_and_refuses_bad_replies() {
        let q = encode_query(7, "a.example").unwrap();
        let r = reply_for(&q, &[[10, 0, 0, 1], [10, 0, 0, 2]]);
        assert_eq!(
            parse_reply(&r, 7, "a.example").unwrap(),
            vec![Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)]
        );
        assert!(matches!(
            parse_reply(&r, 8, "a.example"),
            Err(DnsError::Malformed(_))
        ));
        let mut nx = r.clone();
        nx[3] = 0x83;
        assert!(matches!(
            parse_reply(&nx, 7, "a.example"),
            Err(DnsError::Rcode(3, _))
        ));
        assert!(matches!(
            parse_reply(&reply_for(&q, &[]), 7, "a.example"),
            Err(DnsError::NoAddress(_))
        ));
        assert!(parse_reply(&r[..r.len() - 2], 7, "a.example").is_err());
    }

    #[test]
    fn resolves_against_a_local_udp_server() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            let (n, peer) = server.recv_from(&mut buf).unwrap();
            server
                .send_to(&reply_for(&buf[..n], &[[127, 0, 0, 9]]), peer)
                .unwrap();
        });
        assert_eq!(
            resolve_a(addr, "mirror.test").unwrap(),
            vec![Ipv4Addr::new(127, 0, 0, 9)]
        );
        t.join().unwrap();
    }

    #[test]
    fn finds_nameservers() {
        assert_eq!(
            nameserver_from("#PROTO: DHCP\ndomain x\nnameserver 10.0.2.3\nnameserver 1.1.1.1\n"),
            Some(Ipv4Addr::new(10, 0, 2, 3))
        );
        assert_eq!(nameserver_from("search x\n"), None);
    }
}
