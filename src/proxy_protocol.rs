//! The PROXY protocol (v1 text and v2 binary headers) that TCP forwarders and load
//! balancers put in front of a connection to pass on the real client address.
//!
//! Opt-in (`proxy_protocol = true`): every connection must then start with a header; one
//! without a valid header is closed. `UNKNOWN` (v1) and `LOCAL` (v2, health checks of the
//! balancer) keep the socket's own peer address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The v2 signature.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Longest v1 header, CRLF included (the spec's bound).
const V1_MAX: usize = 107;
/// Longest v2 address block accepted (addresses plus TLVs).
const V2_MAX_BODY: usize = 512;
/// How long a connection may take to send its header.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// What a header said.
#[derive(Debug, PartialEq, Eq)]
pub enum Header {
    /// The real client.
    Client(SocketAddr),
    /// No address passed on (v1 UNKNOWN, v2 LOCAL or an unsupported family).
    Local,
}

/// Outcome of looking at the bytes received so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Parse {
    /// A header of `len` bytes.
    Done {
        header: Header,
        len: usize,
    },
    /// More bytes are needed.
    Incomplete,
    Invalid(&'static str),
}

/// Parses a v1 or v2 header at the front of `buf`.
pub fn parse(buf: &[u8]) -> Parse {
    if buf.len() >= V2_SIGNATURE.len() || V2_SIGNATURE.starts_with(buf) {
        if buf.starts_with(&V2_SIGNATURE) {
            return parse_v2(buf);
        }
        if V2_SIGNATURE.starts_with(buf) {
            return Parse::Incomplete;
        }
    }
    if !b"PROXY ".starts_with(&buf[..buf.len().min(6)]) {
        return Parse::Invalid("not a PROXY protocol header");
    }
    parse_v1(buf)
}

fn parse_v1(buf: &[u8]) -> Parse {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Parse::Invalid("v1 header too long")
        } else {
            Parse::Incomplete
        };
    };
    if end + 2 > V1_MAX {
        return Parse::Invalid("v1 header too long");
    }
    let Ok(line) = std::str::from_utf8(&buf[..end]) else {
        return Parse::Invalid("v1 header is not text");
    };
    let words: Vec<&str> = line.split(' ').collect();
    let header = match words[..] {
        ["PROXY", "UNKNOWN", ..] => Header::Local,
        ["PROXY", family @ ("TCP4" | "TCP6"), src, _dst, sport, _dport] => {
            let Ok(ip) = src.parse::<IpAddr>() else {
                return Parse::Invalid("bad v1 source address");
            };
            let Ok(port) = sport.parse::<u16>() else {
                return Parse::Invalid("bad v1 source port");
            };
            if (family == "TCP4") != ip.is_ipv4() {
                return Parse::Invalid("v1 address does not match its family");
            }
            Header::Client(SocketAddr::new(ip, port))
        }
        _ => return Parse::Invalid("malformed v1 header"),
    };
    Parse::Done {
        header,
        len: end + 2,
    }
}

fn parse_v2(buf: &[u8]) -> Parse {
    if buf.len() < 16 {
        return Parse::Incomplete;
    }
    let version_command = buf[12];
    if version_command >> 4 != 2 {
        return Parse::Invalid("unsupported v2 version");
    }
    let body_len = u16::from_be_bytes([buf[14], buf[15]]) as usize;
    if body_len > V2_MAX_BODY {
        return Parse::Invalid("v2 header too long");
    }
    let len = 16 + body_len;
    if buf.len() < len {
        return Parse::Incomplete;
    }
    let body = &buf[16..len];
    let header = match (version_command & 0x0F, buf[13]) {
        // LOCAL: the balancer's own connection.
        (0, _) => Header::Local,
        // PROXY over TCP/IPv4.
        (1, 0x11) if body.len() >= 12 => {
            let ip = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            let port = u16::from_be_bytes([body[8], body[9]]);
            Header::Client(SocketAddr::new(IpAddr::V4(ip), port))
        }
        // PROXY over TCP/IPv6.
        (1, 0x21) if body.len() >= 36 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&body[..16]);
            let port = u16::from_be_bytes([body[32], body[33]]);
            Header::Client(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(octets)), port))
        }
        (1, 0x11 | 0x21) => return Parse::Invalid("v2 address block too short"),
        (1, _) => Header::Local,
        _ => return Parse::Invalid("unsupported v2 command"),
    };
    Parse::Done { header, len }
}

/// Reads and consumes the header from a new connection. Bytes after the header stay
/// unread in the socket, since the header is read exactly.
pub async fn read_header(stream: &mut TcpStream) -> Result<Header, String> {
    let mut buf = Vec::with_capacity(64);
    let read = async {
        loop {
            // Peek first so that nothing after the header is consumed.
            let mut peek = [0u8; 16 + V2_MAX_BODY];
            let n = stream.peek(&mut peek).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("connection closed before the PROXY header".to_string());
            }
            buf.clear();
            buf.extend_from_slice(&peek[..n]);
            match parse(&buf) {
                Parse::Done { header, len } => {
                    let mut sink = vec![0u8; len];
                    stream
                        .read_exact(&mut sink)
                        .await
                        .map_err(|e| e.to_string())?;
                    return Ok(header);
                }
                Parse::Invalid(why) => return Err(why.to_string()),
                Parse::Incomplete => {
                    if n >= 16 + V2_MAX_BODY {
                        return Err("PROXY header too long".to_string());
                    }
                    // Wait for more bytes; a short sleep keeps peek from spinning.
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        }
    };
    tokio::time::timeout(HEADER_TIMEOUT, read)
        .await
        .unwrap_or_else(|_| Err("timed out waiting for the PROXY header".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_headers() {
        let h = b"PROXY TCP4 192.168.22.7 10.0.0.1 51234 7617\r\n*1\r\n";
        assert_eq!(
            parse(h),
            Parse::Done {
                header: Header::Client("192.168.22.7:51234".parse().unwrap()),
                len: 45
            }
        );
        let h6 = b"PROXY TCP6 ::1 ::1 5 6\r\n";
        assert!(matches!(
            parse(h6),
            Parse::Done {
                header: Header::Client(_),
                ..
            }
        ));
        assert_eq!(
            parse(b"PROXY UNKNOWN\r\n"),
            Parse::Done {
                header: Header::Local,
                len: 15
            }
        );
        assert_eq!(parse(b"PROXY TCP4 1.2.3.4"), Parse::Incomplete);
        assert_eq!(parse(b"PRO"), Parse::Incomplete);
        assert!(matches!(parse(b"GET / HTTP/1.1\r\n"), Parse::Invalid(_)));
        assert!(matches!(
            parse(b"PROXY TCP4 ::1 ::1 1 2\r\n"),
            Parse::Invalid(_)
        ));
        assert!(matches!(
            parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n"),
            Parse::Invalid(_)
        ));
        assert!(matches!(parse(&[b'P'; 200]), Parse::Invalid(_)));
    }

    #[test]
    fn v2_headers() {
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[
            0x21, 0x11, 0, 12, 192, 168, 22, 9, 10, 0, 0, 1, 0x1f, 0x90, 0x1d, 0xc1,
        ]);
        assert_eq!(
            parse(&h),
            Parse::Done {
                header: Header::Client("192.168.22.9:8080".parse().unwrap()),
                len: 28
            }
        );
        assert_eq!(parse(&h[..20]), Parse::Incomplete);
        assert_eq!(parse(&h[..5]), Parse::Incomplete);
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(
            parse(&local),
            Parse::Done {
                header: Header::Local,
                len: 16
            }
        );
        let mut bad = V2_SIGNATURE.to_vec();
        bad.extend_from_slice(&[0x31, 0x11, 0, 0]);
        assert!(matches!(parse(&bad), Parse::Invalid(_)));
        let mut short = V2_SIGNATURE.to_vec();
        short.extend_from_slice(&[0x21, 0x11, 0, 4, 1, 2, 3, 4]);
        assert!(matches!(parse(&short), Parse::Invalid(_)));
    }
}
