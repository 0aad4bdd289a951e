//! The simulated PSP's framed protocol: the guest's response decoder (a hostile
//! host answers), the host's request decoder and the whole server loop (a
//! hostile guest asks). Whatever decodes re-encodes to the bytes it came from,
//! a byte-at-a-time stream decodes the same, and every frame the server writes
//! back decodes.
#![no_main]

use std::io::Cursor;
use std::sync::OnceLock;

use kettle_attest::simulated::protocol::{
    read_request, read_response, write_request, write_response, ErrorCode, Response,
};
use kettle_attest::simulated::SimulatedPsp;
use kettle_fuzz::{Duplex, Trickle, MEASUREMENT};
use libfuzzer_sys::fuzz_target;

fn psp() -> &'static SimulatedPsp {
    static PSP: OnceLock<SimulatedPsp> = OnceLock::new();
    PSP.get_or_init(|| {
        let psp = SimulatedPsp::new(MEASUREMENT);
        psp.cert_chain_pem().expect("the test chain builds");
        psp
    })
}

fuzz_target!(|data: &[u8]| {
    // Host side: a stream of requests.
    let mut r = Cursor::new(data);
    let mut t = Trickle(Cursor::new(data), 3);
    for _ in 0..16 {
        let start = r.position() as usize;
        let a = read_request(&mut r);
        let b = read_request(&mut t);
        assert_eq!(
            a.as_ref().ok(),
            b.as_ref().ok(),
            "chunked reads decode differently"
        );
        match a {
            Ok(Some(req)) => {
                let mut again = Vec::new();
                write_request(&mut again, &req).expect("re-encodes");
                assert_eq!(&again[..], &data[start..r.position() as usize]);
            }
            Ok(None) => break,
            Err(_) => break,
        }
    }

    // Guest side: one response.
    let resp = read_response(&mut Cursor::new(data));
    let chunked = read_response(&mut Trickle(Cursor::new(data), 1));
    assert_eq!(resp.as_ref().ok(), chunked.as_ref().ok());
    match resp {
        Ok(Response::Error {
            code: ErrorCode::Internal,
            ..
        }) => {} // unknown codes decode as Internal: not byte-exact
        Ok(resp) => {
            let mut again = Vec::new();
            write_response(&mut again, &resp).expect("re-encodes");
            assert_eq!(&again[..], &data[..again.len()]);
        }
        Err(_) => {}
    }

    // The server loop: a hostile guest's bytes in, only well-formed frames out.
    let mut stream = Duplex::new(data);
    let _ = psp().serve(&mut stream);
    let mut out = Cursor::new(stream.output);
    while (out.position() as usize) < out.get_ref().len() {
        read_response(&mut out).expect("the server wrote a frame the guest cannot decode");
    }
});
