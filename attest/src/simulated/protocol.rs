//! The framed protocol between the guest and the host's simulated PSP over a
//! virtio-serial port (a unix socket on the host side).
//!
//! Every frame is a 12-byte header followed by a body:
//!
//! ```text
//! magic "KPSP" (4) | version u16 LE (=1) | kind u16 LE | body length u32 LE
//! ```
//!
//! * kind 1, report request: report_data (64) | vmpl u32 LE — exactly 68 bytes.
//! * kind 2, report response: report length u32 | report | chain length u32 | PEM chain.
//! * kind 3, error: code u32 | message length u32 | UTF-8 message.
//!
//! Bodies are bounded ([`MAX_BODY`]); anything malformed is a [`ProtocolError`],
//! never a panic and never an unbounded allocation.

use std::io::{ErrorKind, Read, Write};

/// Frame magic.
pub const MAGIC: [u8; 4] = *b"KPSP";
/// Protocol version.
pub const VERSION: u16 = 1;
/// Header length in bytes.
pub const HEADER_LEN: usize = 12;
/// Largest body accepted (a report plus a three-certificate PEM chain is ~8 KiB).
pub const MAX_BODY: usize = 64 * 1024;
/// Longest error message accepted.
pub const MAX_MESSAGE: usize = 4096;
/// Body length of a report request.
pub const REQUEST_BODY_LEN: usize = 68;
/// Highest VMPL a report can be requested for.
pub const MAX_VMPL: u32 = 3;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum FrameKind {
    /// Guest -> host: please sign a report.
    ReportRequest = 1,
    /// Host -> guest: the report and the certificate chain.
    ReportResponse = 2,
    /// Host -> guest: the request failed.
    Error = 3,
}

impl FrameKind {
    /// Every kind (the discriminants above are the wire values: each is spelled once).
    const ALL: [FrameKind; 3] = [
        FrameKind::ReportRequest,
        FrameKind::ReportResponse,
        FrameKind::Error,
    ];

    fn from_u16(v: u16) -> Option<FrameKind> {
        FrameKind::ALL.into_iter().find(|k| *k as u16 == v)
    }
}

/// Error codes carried in error frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ErrorCode {
    /// The request frame was malformed.
    BadRequest = 1,
    /// The request asked for something the PSP does not do (e.g. VMPL > 3).
    InvalidParameter = 2,
    /// The PSP failed to build or sign the report.
    Internal = 3,
}

impl ErrorCode {
    /// Decodes a wire code (unknown codes are kept as `Internal`).
    pub fn from_u32(v: u32) -> ErrorCode {
        [ErrorCode::BadRequest, ErrorCode::InvalidParameter]
            .into_iter()
            .find(|c| *c as u32 == v)
            .unwrap_or(ErrorCode::Internal)
    }
}

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The underlying stream failed.
    #[error("simulated PSP channel: {0}")]
    Io(#[from] std::io::Error),
    /// The stream ended in the middle of a frame.
    #[error("simulated PSP channel closed in the middle of a frame")]
    UnexpectedEof,
    /// The stream ended before a response arrived.
    #[error("simulated PSP channel closed before a response arrived (is the host serving the PSP port?)")]
    NoResponse,
    /// The frame does not start with the magic.
    #[error("not a simulated PSP frame (magic {0:02x?}, expected \"KPSP\")")]
    BadMagic([u8; 4]),
    /// The peer speaks another protocol version.
    #[error("simulated PSP protocol version {0} is not supported (this side speaks {VERSION})")]
    UnsupportedVersion(u16),
    /// The frame kind is unknown or not expected here.
    #[error("unexpected simulated PSP frame kind {0}")]
    UnexpectedKind(u16),
    /// The body is larger than allowed.
    #[error("simulated PSP frame body of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Declared length.
        len: u64,
        /// Limit.
        max: usize,
    },
    /// The body does not have the structure its kind requires.
    #[error("malformed simulated PSP {kind} body: {reason}")]
    BadBody {
        /// Frame kind.
        kind: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// A report request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRequest {
    /// The 64 bytes to bind into the report.
    pub report_data: [u8; 64],
    /// The VMPL to request the report at.
    pub vmpl: u32,
}

/// A response from the simulated PSP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// The signed report and the PEM chain (ARK, ASK, VCEK).
    Report {
        /// The raw report.
        report: Vec<u8>,
        /// The certificate chain as PEM.
        cert_chain_pem: Vec<u8>,
    },
    /// The request failed.
    Error {
        /// Why, as a code.
        code: ErrorCode,
        /// Why, in words.
        message: String,
    },
}

fn write_frame(w: &mut impl Write, kind: FrameKind, body: &[u8]) -> Result<(), ProtocolError> {
    if body.len() > MAX_BODY {
        return Err(ProtocolError::TooLarge {
            len: body.len() as u64,
            max: MAX_BODY,
        });
    }
    let mut frame = Vec::with_capacity(HEADER_LEN + body.len());
    frame.extend_from_slice(&MAGIC);
    frame.extend_from_slice(&VERSION.to_le_bytes());
    frame.extend_from_slice(&(kind as u16).to_le_bytes());
    frame.extend_from_slice(&field_len(body.len())?);
    frame.extend_from_slice(body);
    w.write_all(&frame)?;
    w.flush()?;
    Ok(())
}

/// Reads exactly `buf.len()` bytes; Ok(false) if the stream ended before the first byte.
fn read_exact_or_eof(r: &mut impl Read, buf: &mut [u8]) -> Result<bool, ProtocolError> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => return Err(ProtocolError::UnexpectedEof),
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

/// Reads one frame; None on a clean end of stream between frames.
fn read_frame(r: &mut impl Read) -> Result<Option<(FrameKind, Vec<u8>)>, ProtocolError> {
    let mut header = [0u8; HEADER_LEN];
    if !read_exact_or_eof(r, &mut header)? {
        return Ok(None);
    }
    let magic: [u8; 4] = header[0..4].try_into().expect("4 bytes");
    if magic != MAGIC {
        return Err(ProtocolError::BadMagic(magic));
    }
    let version = u16::from_le_bytes([header[4], header[5]]);
    if version != VERSION {
        return Err(ProtocolError::UnsupportedVersion(version));
    }
    let raw_kind = u16::from_le_bytes([header[6], header[7]]);
    let kind = FrameKind::from_u16(raw_kind).ok_or(ProtocolError::UnexpectedKind(raw_kind))?;
    let len = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes")) as usize;
    if len > MAX_BODY {
        return Err(ProtocolError::TooLarge {
            len: len as u64,
            max: MAX_BODY,
        });
    }
    let mut body = vec![0u8; len];
    if len > 0 && !read_exact_or_eof(r, &mut body)? {
        return Err(ProtocolError::UnexpectedEof);
    }
    Ok(Some((kind, body)))
}

/// Writes a report request.
pub fn write_request(w: &mut impl Write, req: &ReportRequest) -> Result<(), ProtocolError> {
    let mut body = Vec::with_capacity(REQUEST_BODY_LEN);
    body.extend_from_slice(&req.report_data);
    body.extend_from_slice(&req.vmpl.to_le_bytes());
    write_frame(w, FrameKind::ReportRequest, &body)
}

/// Reads a report request; None on a clean end of stream.
pub fn read_request(r: &mut impl Read) -> Result<Option<ReportRequest>, ProtocolError> {
    let Some((kind, body)) = read_frame(r)? else {
        return Ok(None);
    };
    if kind != FrameKind::ReportRequest {
        return Err(ProtocolError::UnexpectedKind(kind as u16));
    }
    if body.len() != REQUEST_BODY_LEN {
        return Err(ProtocolError::BadBody {
            kind: "report request",
            reason: format!("{} bytes, expected {REQUEST_BODY_LEN}", body.len()),
        });
    }
    let report_data: [u8; 64] = body[..64].try_into().expect("64 bytes");
    let vmpl = u32::from_le_bytes(body[64..68].try_into().expect("4 bytes"));
    Ok(Some(ReportRequest { report_data, vmpl }))
}

/// Writes a response.
pub fn write_response(w: &mut impl Write, resp: &Response) -> Result<(), ProtocolError> {
    let mut body = Vec::new();
    let kind = match resp {
        Response::Report {
            report,
            cert_chain_pem,
        } => {
            body.extend_from_slice(&field_len(report.len())?);
            body.extend_from_slice(report);
            body.extend_from_slice(&field_len(cert_chain_pem.len())?);
            body.extend_from_slice(cert_chain_pem);
            FrameKind::ReportResponse
        }
        Response::Error { code, message } => {
            let mut msg = message.as_bytes();
            if msg.len() > MAX_MESSAGE {
                // Cut at a char boundary so the message stays valid UTF-8.
                let mut end = MAX_MESSAGE;
                while !message.is_char_boundary(end) {
                    end -= 1;
                }
                msg = &msg[..end];
            }
            body.extend_from_slice(&(*code as u32).to_le_bytes());
            body.extend_from_slice(&field_len(msg.len())?);
            body.extend_from_slice(msg);
            FrameKind::Error
        }
    };
    write_frame(w, kind, &body)
}

/// A field's length as the frame's little-endian u32 prefix; a length no frame
/// can carry is refused (the whole body is bounded by [`MAX_BODY`] anyway).
fn field_len(len: usize) -> Result<[u8; 4], ProtocolError> {
    match u32::try_from(len) {
        Ok(n) if len <= MAX_BODY => Ok(n.to_le_bytes()),
        _ => Err(ProtocolError::TooLarge {
            len: len as u64,
            max: MAX_BODY,
        }),
    }
}

/// Takes a length-prefixed field from the front of `body`.
fn take_field<'a>(
    body: &mut &'a [u8],
    kind: &'static str,
    what: &str,
) -> Result<&'a [u8], ProtocolError> {
    let bad = |reason: String| ProtocolError::BadBody { kind, reason };
    if body.len() < 4 {
        return Err(bad(format!("{what} length missing")));
    }
    let len = u32::from_le_bytes(body[..4].try_into().expect("4 bytes")) as usize;
    let rest = &body[4..];
    if len > rest.len() {
        return Err(bad(format!(
            "{what} claims {len} bytes, only {} remain",
            rest.len()
        )));
    }
    let (field, tail) = rest.split_at(len);
    *body = tail;
    Ok(field)
}

/// Reads a response (a clean end of stream here is an error: a response was due).
pub fn read_response(r: &mut impl Read) -> Result<Response, ProtocolError> {
    let (kind, body) = read_frame(r)?.ok_or(ProtocolError::NoResponse)?;
    let mut rest = &body[..];
    match kind {
        FrameKind::ReportResponse => {
            let report = take_field(&mut rest, "report response", "report")?.to_vec();
            let cert_chain_pem =
                take_field(&mut rest, "report response", "certificate chain")?.to_vec();
            if !rest.is_empty() {
                return Err(ProtocolError::BadBody {
                    kind: "report response",
                    reason: format!("{} trailing bytes", rest.len()),
                });
            }
            Ok(Response::Report {
                report,
                cert_chain_pem,
            })
        }
        FrameKind::Error => {
            if rest.len() < 4 {
                return Err(ProtocolError::BadBody {
                    kind: "error",
                    reason: "code missing".into(),
                });
            }
            let code =
                ErrorCode::from_u32(u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")));
            rest = &rest[4..];
            let msg = take_field(&mut rest, "error", "message")?;
            if msg.len() > MAX_MESSAGE || !rest.is_empty() {
                return Err(ProtocolError::BadBody {
                    kind: "error",
                    reason: "message too long or trailing bytes".into(),
                });
            }
            let message = String::from_utf8(msg.to_vec()).map_err(|_| ProtocolError::BadBody {
                kind: "error",
                reason: "message is not UTF-8".into(),
            })?;
            Ok(Response::Error { code, message })
        }
        FrameKind::ReportRequest => Err(ProtocolError::UnexpectedKind(kind as u16)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A tiny deterministic generator so the garbage tests are reproducible.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }
    }

    fn request() -> ReportRequest {
        ReportRequest {
            report_data: [7u8; 64],
            vmpl: 0,
        }
    }

    #[test]
    fn request_round_trip_and_clean_eof() {
        let mut buf = Vec::new();
        write_request(&mut buf, &request()).unwrap();
        write_request(
            &mut buf,
            &ReportRequest {
                report_data: [1u8; 64],
                vmpl: 2,
            },
        )
        .unwrap();
        assert_eq!(buf.len(), 2 * (HEADER_LEN + REQUEST_BODY_LEN));
        let mut r = Cursor::new(buf);
        assert_eq!(read_request(&mut r).unwrap(), Some(request()));
        assert_eq!(read_request(&mut r).unwrap().unwrap().vmpl, 2);
        assert_eq!(read_request(&mut r).unwrap(), None);
    }

    #[test]
    fn response_round_trips() {
        for resp in [
            Response::Report {
                report: vec![1; 1184],
                cert_chain_pem: b"-----BEGIN".to_vec(),
            },
            Response::Error {
                code: ErrorCode::InvalidParameter,
                message: "vmpl 9".into(),
            },
        ] {
            let mut buf = Vec::new();
            write_response(&mut buf, &resp).unwrap();
            assert_eq!(read_response(&mut Cursor::new(buf)).unwrap(), resp);
        }
    }

    #[test]
    fn long_error_messages_are_cut_to_the_limit() {
        let mut buf = Vec::new();
        let message = "é".repeat(MAX_MESSAGE);
        write_response(
            &mut buf,
            &Response::Error {
                code: ErrorCode::Internal,
                message,
            },
        )
        .unwrap();
        match read_response(&mut Cursor::new(buf)).unwrap() {
            Response::Error { message, .. } => {
                assert!(message.len() <= MAX_MESSAGE && message.starts_with('é'))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rejects_bad_headers() {
        let mut good = Vec::new();
        write_request(&mut good, &request()).unwrap();

        let mut bad = good.clone();
        bad[0] = b'X';
        assert!(matches!(
            read_request(&mut Cursor::new(bad)),
            Err(ProtocolError::BadMagic(_))
        ));

        let mut bad = good.clone();
        bad[4] = 9;
        assert!(matches!(
            read_request(&mut Cursor::new(bad)),
            Err(ProtocolError::UnsupportedVersion(9))
        ));

        let mut bad = good.clone();
        bad[6] = 77;
        assert!(matches!(
            read_request(&mut Cursor::new(bad)),
            Err(ProtocolError::UnexpectedKind(77))
        ));

        // A response where a request is expected.
        let mut resp = Vec::new();
        write_response(
            &mut resp,
            &Response::Error {
                code: ErrorCode::Internal,
                message: String::new(),
            },
        )
        .unwrap();
        assert!(matches!(
            read_request(&mut Cursor::new(resp)),
            Err(ProtocolError::UnexpectedKind(3))
        ));

        // Oversized declared length: rejected before allocating.
        let mut bad = good.clone();
        bad[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            read_request(&mut Cursor::new(bad)),
            Err(ProtocolError::TooLarge { .. })
        ));

        // Wrong request body size.
        let mut bad = good.clone();
        bad[8..12].copy_from_slice(&67u32.to_le_bytes());
        bad.pop();
        assert!(matches!(
            read_request(&mut Cursor::new(bad)),
            Err(ProtocolError::BadBody { .. })
        ));

        // Truncated in the header and in the body.
        assert!(matches!(
            read_request(&mut Cursor::new(good[..5].to_vec())),
            Err(ProtocolError::UnexpectedEof)
        ));
        assert!(matches!(
            read_request(&mut Cursor::new(good[..20].to_vec())),
            Err(ProtocolError::UnexpectedEof)
        ));

        // No response at all.
        assert!(matches!(
            read_response(&mut Cursor::new(Vec::new())),
            Err(ProtocolError::NoResponse)
        ));
    }

    #[test]
    fn rejects_inconsistent_response_bodies() {
        let frame = |body: Vec<u8>, kind: FrameKind| {
            let mut buf = Vec::new();
            write_frame(&mut buf, kind, &body).unwrap();
            buf
        };
        // report length larger than the body
        let mut body = 5000u32.to_le_bytes().to_vec();
        body.extend_from_slice(&[0; 10]);
        assert!(matches!(
            read_response(&mut Cursor::new(frame(body, FrameKind::ReportResponse))),
            Err(ProtocolError::BadBody { .. })
        ));
        // trailing bytes
        let mut body = 1u32.to_le_bytes().to_vec();
        body.push(9);
        body.extend_from_slice(&0u32.to_le_bytes());
        body.push(1);
        assert!(matches!(
            read_response(&mut Cursor::new(frame(body, FrameKind::ReportResponse))),
            Err(ProtocolError::BadBody { .. })
        ));
        // error without code
        assert!(matches!(
            read_response(&mut Cursor::new(frame(vec![1], FrameKind::Error))),
            Err(ProtocolError::BadBody { .. })
        ));
    }

    #[test]
    fn random_garbage_never_panics() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let (mut accepted, mut rejected) = (0u32, 0u32);
        for i in 0..2000 {
            let len = (rng.next() % 200) as usize;
            let mut bytes = rng.bytes(len);
            // Half of the inputs get a valid header prefix so the body parsers are exercised too.
            if i % 2 == 0 && bytes.len() >= HEADER_LEN {
                bytes[0..4].copy_from_slice(&MAGIC);
                bytes[4..6].copy_from_slice(&VERSION.to_le_bytes());
                bytes[6..8].copy_from_slice(&((i as u16 % 3) + 1).to_le_bytes());
                let body_len = (bytes.len() - HEADER_LEN) as u32 + (rng.next() % 3) as u32;
                bytes[8..12].copy_from_slice(&body_len.to_le_bytes());
            }
            // Whatever parses must be exactly what the consumed bytes encode.
            match read_request(&mut Cursor::new(bytes.clone())) {
                Ok(Some(req)) => {
                    let mut again = Vec::new();
                    write_request(&mut again, &req).unwrap();
                    assert_eq!(again[..], bytes[..again.len()]);
                    accepted += 1;
                }
                Ok(None) => assert!(bytes.is_empty()),
                Err(_) => rejected += 1,
            }
            match read_response(&mut Cursor::new(bytes.clone())) {
                Ok(Response::Error {
                    code: ErrorCode::Internal,
                    ..
                }) => accepted += 1, // code not canonical
                Ok(resp) => {
                    let mut again = Vec::new();
                    write_response(&mut again, &resp).unwrap();
                    assert_eq!(again[..], bytes[..again.len()]);
                    accepted += 1;
                }
                Err(_) => rejected += 1,
            }
        }
        assert!(
            rejected > 3000,
            "garbage must mostly be rejected ({rejected} rejected, {accepted} accepted)"
        );
    }
}
