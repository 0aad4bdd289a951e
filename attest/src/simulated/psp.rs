//! Host side of the simulated PSP: signs reports in AMD's binary format with the
//! TEST VCEK and answers framed requests on a stream.

use std::io::{Read, Write};
use std::sync::Mutex;

use p384::ecdsa::signature::DigestSigner;
use p384::pkcs8::DecodePrivateKey;
use sha2::{Digest, Sha384};
use x509_cert::der::Encode;

use crate::chain::der_to_pem;
use crate::report::{
    offsets, Tcb, REPORT_LEN, SIGNATURE_OFFSET, SIGNED_LEN, SIG_ALGO_ECDSA_P384_SHA384,
    SIG_COMPONENT_LEN,
};

use super::protocol::{self, ErrorCode, ProtocolError, Response, MAX_VMPL};
use super::{certs, keys, SimulatedError, CHIP_ID};

/// Default guest policy: SMT allowed, reserved bit 17 set, debug and migration off.
pub const DEFAULT_GUEST_POLICY: u64 = 0x3_0000;
/// Default TCB the simulated VCEK is issued for.
pub const DEFAULT_TCB: Tcb = Tcb {
    fmc: None,
    bootloader: 9,
    tee: 0,
    snp: 23,
    microcode: 72,
};
/// CPUID family / model / stepping written into version 3 and 5 reports (a Genoa part,
/// whose TCB layout matches the simulated VCEK's).
pub const SIMULATED_CPUID: [u8; 3] = [0x19, 0x11, 0x01];
/// Firmware version the simulated PSP claims (build, minor, major as in the report).
const FIRMWARE_VERSION: [u8; 3] = [21, 55, 1];

/// A software PSP for machines without SEV-SNP. Everything it signs is SIMULATED.
pub struct SimulatedPsp {
    measurement: [u8; 48],
    guest_policy: u64,
    tcb: Tcb,
    report_version: u32,
    host_data: [u8; 32],
    report_id: [u8; 32],
    chip_id: [u8; 64],
    /// The hwID the VCEK is issued for; None: the chip id.
    vcek_hw_id: Option<Vec<u8>>,
    /// PEM chain (ARK, ASK, VCEK) for the configured TCB, built on first use
    /// because the VCEK is RSA-signed by the ASK, which is slow in debug builds.
    chain_pem: Mutex<Option<Vec<u8>>>,
}

impl SimulatedPsp {
    /// A simulated PSP whose reports carry `measurement` (the image's launch digest).
    pub fn new(measurement: [u8; 48]) -> SimulatedPsp {
        let mut report_id = [0u8; 32];
        // A per-instance id, like the per-guest REPORT_ID of real firmware.
        rsa::rand_core::RngCore::fill_bytes(&mut rsa::rand_core::OsRng, &mut report_id);
        SimulatedPsp {
            measurement,
            guest_policy: DEFAULT_GUEST_POLICY,
            tcb: DEFAULT_TCB,
            report_version: 3,
            host_data: [0u8; 32],
            report_id,
            chip_id: CHIP_ID,
            vcek_hw_id: None,
            chain_pem: Mutex::new(None),
        }
    }

    /// Sets the guest policy written into reports (e.g. with the debug bit, for tests).
    pub fn with_guest_policy(mut self, policy: u64) -> SimulatedPsp {
        self.guest_policy = policy;
        self
    }

    /// Sets the TCB (current, committed, launch and reported) and the VCEK issued for it.
    pub fn with_tcb(mut self, tcb: Tcb) -> SimulatedPsp {
        self.tcb = tcb;
        self.chain_pem = Mutex::new(None);
        self
    }

    /// Sets the report format version (2, 3 or 5).
    pub fn with_report_version(mut self, version: u32) -> SimulatedPsp {
        self.report_version = version;
        self
    }

    /// Sets the CHIP_ID written into reports (all zero: a host that masks it, MASK_CHIP_ID).
    pub fn with_chip_id(mut self, chip_id: [u8; 64]) -> SimulatedPsp {
        self.chip_id = chip_id;
        self.chain_pem = Mutex::new(None);
        self
    }

    /// Issues the VCEK for this hwID instead of the chip id (another chip's, or a Turin-style
    /// 8-byte one), for tests of the VCEK-to-report binding.
    pub fn with_vcek_hw_id(mut self, hw_id: Vec<u8>) -> SimulatedPsp {
        self.vcek_hw_id = Some(hw_id);
        self.chain_pem = Mutex::new(None);
        self
    }

    /// Sets the HOST_DATA field.
    pub fn with_host_data(mut self, host_data: [u8; 32]) -> SimulatedPsp {
        self.host_data = host_data;
        self
    }

    /// The measurement this PSP reports.
    pub fn measurement(&self) -> [u8; 48] {
        self.measurement
    }

    /// The certificate chain (ARK, ASK, VCEK) as one PEM bundle.
    pub fn cert_chain_pem(&self) -> Result<Vec<u8>, SimulatedError> {
        let mut cached = self.chain_pem.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pem) = cached.as_ref() {
            return Ok(pem.clone());
        }
        let hw_id = self.vcek_hw_id.as_deref().unwrap_or(&self.chip_id);
        let vcek = certs::build_vcek(&self.tcb, hw_id)?;
        let mut pem = Vec::new();
        pem.extend_from_slice(keys::ARK_PEM);
        pem.extend_from_slice(keys::ASK_PEM);
        pem.extend_from_slice(der_to_pem(&vcek.to_der()?).as_bytes());
        *cached = Some(pem.clone());
        Ok(pem)
    }

    /// Builds and signs a report for `report_data` at `vmpl`.
    pub fn report(&self, report_data: &[u8; 64], vmpl: u32) -> Result<Vec<u8>, SimulatedError> {
        if vmpl > MAX_VMPL {
            return Err(SimulatedError::Unsupported(format!(
                "VMPL {vmpl} (the highest is {MAX_VMPL})"
            )));
        }
        if !matches!(self.report_version, 2 | 3 | 5) {
            return Err(SimulatedError::Unsupported(format!(
                "report version {} (2, 3 or 5)",
                self.report_version
            )));
        }
        if self.tcb.fmc.is_some() {
            return Err(SimulatedError::Unsupported(
                "an FMC SVN (Turin TCB layout)".into(),
            ));
        }
        let mut r = vec![0u8; REPORT_LEN];
        let put = |r: &mut Vec<u8>, at: usize, bytes: &[u8]| {
            r[at..at + bytes.len()].copy_from_slice(bytes)
        };
        let tcb = self.tcb.to_legacy_bytes();
        put(&mut r, offsets::VERSION, &self.report_version.to_le_bytes());
        put(&mut r, offsets::GUEST_SVN, &0u32.to_le_bytes());
        put(&mut r, offsets::POLICY, &self.guest_policy.to_le_bytes());
        put(&mut r, offsets::VMPL, &vmpl.to_le_bytes());
        put(
            &mut r,
            offsets::SIG_ALGO,
            &SIG_ALGO_ECDSA_P384_SHA384.to_le_bytes(),
        );
        put(&mut r, offsets::CURRENT_TCB, &tcb);
        put(&mut r, offsets::PLATFORM_INFO, &1u64.to_le_bytes()); // SMT enabled
        put(&mut r, offsets::KEY_INFO, &0u32.to_le_bytes()); // signed by the VCEK
        put(&mut r, offsets::REPORT_DATA, report_data);
        put(&mut r, offsets::MEASUREMENT, &self.measurement);
        put(&mut r, offsets::HOST_DATA, &self.host_data);
        put(&mut r, offsets::REPORT_ID, &self.report_id);
        put(&mut r, offsets::REPORT_ID + 32, &[0xFF; 32]); // no migration agent
        put(&mut r, offsets::REPORTED_TCB, &tcb);
        if self.report_version >= 3 {
            put(&mut r, offsets::CPUID_FAM_ID, &SIMULATED_CPUID);
        }
        put(&mut r, offsets::CHIP_ID, &self.chip_id);
        put(&mut r, offsets::COMMITTED_TCB, &tcb);
        put(&mut r, offsets::CURRENT_VERSION, &FIRMWARE_VERSION);
        put(&mut r, offsets::COMMITTED_VERSION, &FIRMWARE_VERSION);
        put(&mut r, offsets::LAUNCH_TCB, &tcb);
        // Version 5 mitigation vectors stay zero.

        let key = p384::ecdsa::SigningKey::from_pkcs8_pem(keys::VCEK_KEY_PEM)?;
        let sig: p384::ecdsa::Signature =
            key.sign_digest(Sha384::new_with_prefix(&r[..SIGNED_LEN]));
        let (sig_r, sig_s) = sig.split_bytes();
        // AMD stores r and s little-endian, each zero-padded to 72 bytes.
        for (i, b) in sig_r.iter().rev().enumerate() {
            r[SIGNATURE_OFFSET + i] = *b;
        }
        for (i, b) in sig_s.iter().rev().enumerate() {
            r[SIGNATURE_OFFSET + SIG_COMPONENT_LEN + i] = *b;
        }
        Ok(r)
    }

    /// Answers framed report requests on `stream` until it ends. A malformed frame
    /// gets an error frame and ends the session (the stream cannot be resynchronised).
    pub fn serve(&self, mut stream: impl Read + Write) -> Result<(), ProtocolError> {
        loop {
            let request = match protocol::read_request(&mut stream) {
                Ok(Some(req)) => req,
                Ok(None) => return Ok(()),
                Err(e) => {
                    let reply = Response::Error {
                        code: ErrorCode::BadRequest,
                        message: e.to_string(),
                    };
                    // Best effort: the peer may already be gone.
                    let _ = protocol::write_response(&mut stream, &reply);
                    return Err(e);
                }
            };
            log::info!("simulated PSP: report request at VMPL {}", request.vmpl);
            let response = match self.report(&request.report_data, request.vmpl) {
                Ok(report) => match self.cert_chain_pem() {
                    Ok(cert_chain_pem) => Response::Report {
                        report,
                        cert_chain_pem,
                    },
                    Err(e) => Response::Error {
                        code: ErrorCode::Internal,
                        message: e.to_string(),
                    },
                },
                Err(SimulatedError::Unsupported(m)) => Response::Error {
                    code: ErrorCode::InvalidParameter,
                    message: format!("unsupported request: {m}"),
                },
                Err(e) => Response::Error {
                    code: ErrorCode::Internal,
                    message: e.to_string(),
                },
            };
            protocol::write_response(&mut stream, &response)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Report;

    #[test]
    fn reports_parse_in_every_version_and_carry_the_inputs() {
        let psp = SimulatedPsp::new([0xAB; 48]);
        for version in [2u32, 3, 5] {
            let psp = SimulatedPsp {
                report_version: version,
                ..SimulatedPsp::new([0xAB; 48])
            };
            let bytes = psp.report(&[0x11; 64], 0).unwrap();
            let r = Report::parse(&bytes).unwrap();
            assert_eq!(r.version(), version);
            assert_eq!(r.measurement(), [0xAB; 48]);
            assert_eq!(r.report_data(), [0x11; 64]);
            assert_eq!(r.chip_id(), CHIP_ID);
            assert_eq!(r.reported_tcb(), DEFAULT_TCB);
            assert_eq!(r.fields().sig_algo, 1);
            assert_eq!(r.fields().cpuid_fam_id.is_some(), version >= 3);
        }
        assert!(psp.report(&[0; 64], 4).is_err());
        assert!(matches!(
            psp.with_report_version(4).report(&[0; 64], 0),
            Err(SimulatedError::Unsupported(_))
        ));
        assert!(
            CHIP_ID.starts_with(b"KETTLE-SIMULATED-PSP") && CHIP_ID[20..].iter().all(|b| *b == 0)
        );
    }
}
