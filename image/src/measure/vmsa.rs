//! The initial VMSA (SEV-ES save area, AMD APM vol. 2 table B-4) of each vCPU
//! as the VMM hands it to the PSP. Only the fields a VMM sets at reset are
//! non-zero; everything else in the 4 KiB page is zero.

use super::cpu::{GuestFeatures, VcpuType, VmmType};
use super::ovmf::PAGE_SIZE;

/// EIP of the bootstrap processor at reset.
pub(crate) const BSP_EIP: u32 = 0xffff_fff0;

/// Byte offsets of the save-area fields that are set at reset.
mod offset {
    pub const ES: usize = 0x000;
    pub const CS: usize = 0x010;
    pub const SS: usize = 0x020;
    pub const DS: usize = 0x030;
    pub const FS: usize = 0x040;
    pub const GS: usize = 0x050;
    pub const GDTR: usize = 0x060;
    pub const LDTR: usize = 0x070;
    pub const IDTR: usize = 0x080;
    pub const TR: usize = 0x090;
    pub const EFER: usize = 0x0d0;
    pub const CR4: usize = 0x148;
    pub const CR0: usize = 0x158;
    pub const DR7: usize = 0x160;
    pub const DR6: usize = 0x168;
    pub const RFLAGS: usize = 0x170;
    pub const RIP: usize = 0x178;
    pub const G_PAT: usize = 0x268;
    pub const RDX: usize = 0x310;
    pub const SEV_FEATURES: usize = 0x3b0;
    pub const XCR0: usize = 0x3e8;
    pub const MXCSR: usize = 0x408;
    pub const X87_FCW: usize = 0x410;
}

/// Default PAT MSR value at reset (APM vol. 2, A.3).
const DEFAULT_G_PAT: u64 = 0x0007_0406_0007_0406;

/// A VMSA page under construction.
struct Page(Vec<u8>);

impl Page {
    fn put(&mut self, at: usize, bytes: &[u8]) {
        self.0[at..at + bytes.len()].copy_from_slice(bytes);
    }

    /// A segment register: selector, attributes, limit, base.
    fn segment(&mut self, at: usize, selector: u16, attrib: u16, limit: u32, base: u64) {
        self.put(at, &selector.to_le_bytes());
        self.put(at + 2, &attrib.to_le_bytes());
        self.put(at + 4, &limit.to_le_bytes());
        self.put(at + 8, &base.to_le_bytes());
    }

    fn u64(&mut self, at: usize, value: u64) {
        self.put(at, &value.to_le_bytes());
    }
}

/// The VMSA page of a vCPU starting at `eip`.
pub(crate) fn vmsa_page(
    eip: u32,
    vcpu: &VcpuType,
    vmm: VmmType,
    features: GuestFeatures,
) -> Vec<u8> {
    // Register state differs per VMM: QEMU/KVM passes the CPU signature in RDX
    // and resets MXCSR/FCW to their architectural values; EC2 and GCE do not.
    let (cs_flags, ss_flags, tr_flags, rdx, mxcsr, fcw, g_pat): (
        u16,
        u16,
        u16,
        u64,
        u32,
        u16,
        u64,
    ) = match vmm {
        VmmType::Qemu => (
            0x9b,
            0x93,
            0x8b,
            u64::from(vcpu.signature()),
            0x1f80,
            0x37f,
            DEFAULT_G_PAT,
        ),
        VmmType::Ec2 => (
            if eip == BSP_EIP { 0x9a } else { 0x9b },
            0x92,
            0x83,
            0x600,
            0,
            0,
            DEFAULT_G_PAT,
        ),
        VmmType::Gce => (0x9b, 0x93, 0x8b, 0x600, 0, 0, 0x0007_0106),
    };
    let mut p = Page(vec![0; PAGE_SIZE]);
    p.segment(offset::ES, 0, 0x93, 0xffff, 0);
    p.segment(
        offset::CS,
        0xf000,
        cs_flags,
        0xffff,
        u64::from(eip & 0xffff_0000),
    );
    p.segment(offset::SS, 0, ss_flags, 0xffff, 0);
    p.segment(offset::DS, 0, 0x93, 0xffff, 0);
    p.segment(offset::FS, 0, 0x93, 0xffff, 0);
    p.segment(offset::GS, 0, 0x93, 0xffff, 0);
    p.segment(offset::GDTR, 0, 0, 0xffff, 0);
    p.segment(offset::LDTR, 0, 0x82, 0xffff, 0);
    p.segment(offset::IDTR, 0, 0, 0xffff, 0);
    p.segment(offset::TR, 0, tr_flags, 0xffff, 0);
    p.u64(offset::EFER, 0x1000); // KVM sets EFER.SVME
    p.u64(offset::CR4, 0x40); // KVM sets CR4.MCE
    p.u64(offset::CR0, 0x10);
    p.u64(offset::DR7, 0x400);
    p.u64(offset::DR6, 0xffff_0ff0);
    p.u64(offset::RFLAGS, 0x2);
    p.u64(offset::RIP, u64::from(eip & 0xffff));
    p.u64(offset::G_PAT, g_pat);
    p.u64(offset::RDX, rdx);
    p.u64(offset::SEV_FEATURES, features.0);
    p.u64(offset::XCR0, 0x1);
    p.put(offset::MXCSR, &mxcsr.to_le_bytes());
    p.put(offset::X87_FCW, &fcw.to_le_bytes());
    p.0
}
