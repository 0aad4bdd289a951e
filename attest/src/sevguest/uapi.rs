//! The Linux SEV guest UAPI (include/uapi/linux/sev-guest.h) and the SNP ABI's
//! MSG_REPORT_RSP layout, as Rust structs with the kernel's layout.

use rustix::ioctl::{opcode, Opcode};

/// `SNP_REPORT_USER_DATA_SIZE`.
pub const SNP_REPORT_USER_DATA_SIZE: usize = 64;
/// `SNP_GUEST_REQ_IOC_TYPE`.
pub const SNP_GUEST_REQ_IOC_TYPE: u8 = b'S';
/// `SNP_GUEST_VMM_ERR_INVALID_LEN`: the certificate buffer is too small.
pub const SNP_GUEST_VMM_ERR_INVALID_LEN: u32 = 1;
/// `SNP_GUEST_VMM_ERR_BUSY`: the hypervisor throttled the request.
pub const SNP_GUEST_VMM_ERR_BUSY: u32 = 2;
/// `SNP_GUEST_VMM_ERR_SHIFT`.
pub const SNP_GUEST_VMM_ERR_SHIFT: u32 = 32;
/// The kernel's largest certificate blob (SEV_FW_BLOB_MAX_SIZE, 16 KiB).
pub const SEV_FW_BLOB_MAX_SIZE: usize = 0x4000;

/// `struct snp_report_req`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SnpReportReq {
    /// User data bound into the report.
    pub user_data: [u8; SNP_REPORT_USER_DATA_SIZE],
    /// The VMPL the report is requested at.
    pub vmpl: u32,
    /// Must be zero.
    pub rsvd: [u8; 28],
}

/// `struct snp_report_resp`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SnpReportResp {
    /// MSG_REPORT_RSP: status, report_size, reserved, report.
    pub data: [u8; 4000],
}

/// `struct snp_guest_request_ioctl`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SnpGuestRequestIoctl {
    /// Message version (must be non-zero).
    pub msg_version: u8,
    /// Request structure address.
    pub req_data: u64,
    /// Response structure address.
    pub resp_data: u64,
    /// bits 63:32 VMM error, bits 31:0 firmware error.
    pub exitinfo2: u64,
}

/// `struct snp_ext_report_req`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SnpExtReportReq {
    /// The report request.
    pub data: SnpReportReq,
    /// Where to copy the certificate blob.
    pub certs_address: u64,
    /// Length of the certificate blob (page multiple).
    pub certs_len: u32,
}

/// `SNP_GET_REPORT`.
pub const SNP_GET_REPORT: Opcode =
    opcode::read_write::<SnpGuestRequestIoctl>(SNP_GUEST_REQ_IOC_TYPE, 0x0);
/// `SNP_GET_DERIVED_KEY` (not used; listed so the numbering is checked).
pub const SNP_GET_DERIVED_KEY: Opcode =
    opcode::read_write::<SnpGuestRequestIoctl>(SNP_GUEST_REQ_IOC_TYPE, 0x1);
/// `SNP_GET_EXT_REPORT`.
pub const SNP_GET_EXT_REPORT: Opcode =
    opcode::read_write::<SnpGuestRequestIoctl>(SNP_GUEST_REQ_IOC_TYPE, 0x2);

/// MSG_REPORT_RSP (SNP firmware ABI): offset of `status` (u32).
pub const RSP_STATUS: usize = 0x0;
/// MSG_REPORT_RSP: offset of `report_size` (u32).
pub const RSP_REPORT_SIZE: usize = 0x4;
/// MSG_REPORT_RSP: offset of the report.
pub const RSP_REPORT: usize = 0x20;

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    // Expected values derived from include/uapi/linux/sev-guest.h in
    // linux-source-6.12 (Debian), read once:
    //   struct snp_report_req { __u8 user_data[64]; __u32 vmpl; __u8 rsvd[28]; }          -> 96 bytes
    //   struct snp_report_resp { __u8 data[4000]; }                                       -> 4000 bytes
    //   struct snp_guest_request_ioctl { __u8 msg_version; __u64 req_data; __u64 resp_data;
    //                                    union { __u64 exitinfo2; struct { __u32 fw_error; __u32 vmm_error; }; }; }
    //                                                                                      -> 32 bytes, offsets 0/8/16/24
    //   struct snp_ext_report_req { struct snp_report_req data; __u64 certs_address; __u32 certs_len; }
    //                                                                                      -> 112 bytes, offsets 0/96/104
    //   #define SNP_GUEST_REQ_IOC_TYPE 'S'
    //   #define SNP_GET_REPORT      _IOWR('S', 0x0, struct snp_guest_request_ioctl)  = 0xc0205300
    //   #define SNP_GET_DERIVED_KEY _IOWR('S', 0x1, struct snp_guest_request_ioctl)  = 0xc0205301
    //   #define SNP_GET_EXT_REPORT  _IOWR('S', 0x2, struct snp_guest_request_ioctl)  = 0xc0205302
    //   #define SNP_GUEST_VMM_ERR_SHIFT 32, SNP_GUEST_VMM_ERR_INVALID_LEN 1, SNP_GUEST_VMM_ERR_BUSY 2
    #[test]
    fn struct_layout_matches_the_uapi_header() {
        assert_eq!(size_of::<SnpReportReq>(), 96);
        assert_eq!(offset_of!(SnpReportReq, user_data), 0);
        assert_eq!(offset_of!(SnpReportReq, vmpl), 64);
        assert_eq!(offset_of!(SnpReportReq, rsvd), 68);
        assert_eq!(size_of::<SnpReportResp>(), 4000);
        assert_eq!(size_of::<SnpGuestRequestIoctl>(), 32);
        assert_eq!(offset_of!(SnpGuestRequestIoctl, msg_version), 0);
        assert_eq!(offset_of!(SnpGuestRequestIoctl, req_data), 8);
        assert_eq!(offset_of!(SnpGuestRequestIoctl, resp_data), 16);
        assert_eq!(offset_of!(SnpGuestRequestIoctl, exitinfo2), 24);
        assert_eq!(size_of::<SnpExtReportReq>(), 112);
        assert_eq!(offset_of!(SnpExtReportReq, data), 0);
        assert_eq!(offset_of!(SnpExtReportReq, certs_address), 96);
        assert_eq!(offset_of!(SnpExtReportReq, certs_len), 104);
    }

    #[test]
    fn ioctl_numbers_match_the_uapi_header() {
        assert_eq!(SNP_GET_REPORT as u64, 0xc020_5300);
        assert_eq!(SNP_GET_DERIVED_KEY as u64, 0xc020_5301);
        assert_eq!(SNP_GET_EXT_REPORT as u64, 0xc020_5302);
        assert_eq!(SNP_GUEST_VMM_ERR_SHIFT, 32);
        assert_eq!(SNP_GUEST_VMM_ERR_INVALID_LEN, 1);
        assert_eq!(SNP_GUEST_VMM_ERR_BUSY, 2);
        // The report fits in the response after the MSG_REPORT_RSP header.
        assert!(RSP_REPORT + crate::report::REPORT_LEN <= size_of::<SnpReportResp>());
    }
}
