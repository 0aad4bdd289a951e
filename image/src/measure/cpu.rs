//! Guest CPU and VMM parameters that enter the VMSA pages: the vCPU signature
//! (CPUID Fn0000_0001_EAX, which QEMU puts in RDX at reset), the VMM flavour
//! (which changes the initial register state) and the SEV features.

use std::fmt;
use std::str::FromStr;

/// QEMU CPU models whose signatures sev-snp-measure knows, with (family, model, stepping).
const CPU_MODELS: &[(&str, u32, u32, u32)] = &[
    ("EPYC", 23, 1, 2),
    ("EPYC-v1", 23, 1, 2),
    ("EPYC-v2", 23, 1, 2),
    ("EPYC-IBPB", 23, 1, 2),
    ("EPYC-v3", 23, 1, 2),
    ("EPYC-v4", 23, 1, 2),
    ("EPYC-Rome", 23, 49, 0),
    ("EPYC-Rome-v1", 23, 49, 0),
    ("EPYC-Rome-v2", 23, 49, 0),
    ("EPYC-Rome-v3", 23, 49, 0),
    ("EPYC-Milan", 25, 1, 1),
    ("EPYC-Milan-v1", 25, 1, 1),
    ("EPYC-Milan-v2", 25, 1, 1),
    ("EPYC-Genoa", 25, 17, 0),
    ("EPYC-Genoa-v1", 25, 17, 0),
    ("EPYC-Turin", 26, 0, 0),
];

/// Invalid vCPU, VMM or feature parameters.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CpuError {
    /// Not a known QEMU CPU model and not `family=..,model=..,stepping=..` / `sig=0x..`.
    #[error("unknown vCPU type {0:?}; use one of {names} or family=F,model=M,stepping=S or sig=0xNNNNNN", names = cpu_model_names().join(", "))]
    UnknownVcpuType(String),
    /// Not QEMU, ec2 or gce.
    #[error("unknown VMM type {0:?}; use QEMU, ec2 or gce")]
    UnknownVmmType(String),
    /// Not an integer (decimal, 0x, 0o or 0b).
    #[error("invalid number {0:?}; write it in decimal or with a 0x, 0o or 0b prefix")]
    BadNumber(String),
}

/// Names of the QEMU CPU models accepted as `--vcpu-type`.
pub fn cpu_model_names() -> Vec<&'static str> {
    CPU_MODELS.iter().map(|m| m.0).collect()
}

/// The guest's vCPU model, as far as the launch digest is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VcpuType {
    /// A QEMU CPU model name such as `EPYC-v4` (canonical spelling).
    Named(&'static str),
    /// Explicit CPUID family, model and stepping.
    FamilyModelStepping {
        /// CPU family (e.g. 25 for Milan/Genoa).
        family: u32,
        /// CPU model.
        model: u32,
        /// CPU stepping.
        stepping: u32,
    },
    /// A raw CPUID Fn0000_0001_EAX signature.
    Signature(u32),
}

impl VcpuType {
    /// The CPUID signature QEMU loads into RDX at reset.
    pub fn signature(&self) -> u32 {
        match self {
            VcpuType::Named(name) => {
                let (_, f, m, s) = CPU_MODELS
                    .iter()
                    .find(|m| m.0 == *name)
                    .expect("names come from CPU_MODELS");
                cpu_signature(*f, *m, *s)
            }
            VcpuType::FamilyModelStepping {
                family,
                model,
                stepping,
            } => cpu_signature(*family, *model, *stepping),
            VcpuType::Signature(sig) => *sig,
        }
    }
}

/// CPUID Fn0000_0001_EAX from family/model/stepping (AMD pub. 25481).
pub fn cpu_signature(family: u32, model: u32, stepping: u32) -> u32 {
    let (family_low, family_high) = if family > 0xf {
        (0xf, (family - 0xf) & 0xff)
    } else {
        (family, 0)
    };
    (family_high << 20)
        | (((model >> 4) & 0xf) << 16)
        | (family_low << 8)
        | ((model & 0xf) << 4)
        | (stepping & 0xf)
}

impl fmt::Display for VcpuType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VcpuType::Named(name) => f.write_str(name),
            VcpuType::FamilyModelStepping {
                family,
                model,
                stepping,
            } => {
                write!(f, "family={family},model={model},stepping={stepping}")
            }
            VcpuType::Signature(sig) => write!(f, "sig={sig:#x}"),
        }
    }
}

impl FromStr for VcpuType {
    type Err = CpuError;

    /// Accepts a model name (any case), `family=F,model=M,stepping=S` or `sig=N`.
    fn from_str(s: &str) -> Result<Self, CpuError> {
        if let Some((name, ..)) = CPU_MODELS.iter().find(|m| m.0.eq_ignore_ascii_case(s)) {
            return Ok(VcpuType::Named(name));
        }
        if let Some(sig) = s.strip_prefix("sig=") {
            return Ok(VcpuType::Signature(parse_u32(sig)?));
        }
        let mut fms = [None; 3];
        for part in s.split(',') {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| CpuError::UnknownVcpuType(s.into()))?;
            let slot = match key.trim() {
                "family" => 0,
                "model" => 1,
                "stepping" => 2,
                _ => return Err(CpuError::UnknownVcpuType(s.into())),
            };
            fms[slot] = Some(parse_u32(value.trim())?);
        }
        match fms {
            [Some(family), Some(model), Some(stepping)] => Ok(VcpuType::FamilyModelStepping {
                family,
                model,
                stepping,
            }),
            _ => Err(CpuError::UnknownVcpuType(s.into())),
        }
    }
}

/// The VMM that launches the guest; each sets slightly different reset state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VmmType {
    /// QEMU/KVM (the Kettle launcher).
    #[default]
    Qemu,
    /// AWS EC2.
    Ec2,
    /// Google Compute Engine.
    Gce,
}

impl fmt::Display for VmmType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // sev-snp-measure's spellings.
        f.write_str(match self {
            VmmType::Qemu => "QEMU",
            VmmType::Ec2 => "ec2",
            VmmType::Gce => "gce",
        })
    }
}

impl FromStr for VmmType {
    type Err = CpuError;

    fn from_str(s: &str) -> Result<Self, CpuError> {
        match s.to_ascii_lowercase().as_str() {
            "qemu" => Ok(VmmType::Qemu),
            "ec2" => Ok(VmmType::Ec2),
            "gce" => Ok(VmmType::Gce),
            _ => Err(CpuError::UnknownVmmType(s.into())),
        }
    }
}

/// The VMSA `SEV_FEATURES` word (bit 0 = SNP active); sev-snp-measure's default is 0x1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestFeatures(pub u64);

impl Default for GuestFeatures {
    fn default() -> Self {
        GuestFeatures(0x1)
    }
}

impl fmt::Display for GuestFeatures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl FromStr for GuestFeatures {
    type Err = CpuError;

    fn from_str(s: &str) -> Result<Self, CpuError> {
        parse_u64(s).map(GuestFeatures)
    }
}

/// Parses an integer the way Python's `int(x, 0)` does for non-negative values.
fn parse_u64(s: &str) -> Result<u64, CpuError> {
    let t = s.trim().replace('_', "");
    let lower = t.to_ascii_lowercase();
    let parsed = if let Some(h) = lower.strip_prefix("0x") {
        u64::from_str_radix(h, 16)
    } else if let Some(o) = lower.strip_prefix("0o") {
        u64::from_str_radix(o, 8)
    } else if let Some(b) = lower.strip_prefix("0b") {
        u64::from_str_radix(b, 2)
    } else {
        lower.parse()
    };
    parsed.map_err(|_| CpuError::BadNumber(s.into()))
}

fn parse_u32(s: &str) -> Result<u32, CpuError> {
    u32::try_from(parse_u64(s)?).map_err(|_| CpuError::BadNumber(s.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_of_known_models() {
        // Values from AMD's CPUID spec: Naples 0x800f12, Rome 0x830f10, Milan 0xa00f11, Genoa 0xa10f10, Turin 0xb00f00.
        let sig = |s: &str| s.parse::<VcpuType>().unwrap().signature();
        assert_eq!(sig("EPYC-v4"), 0x0080_0f12);
        assert_eq!(sig("epyc-rome"), 0x0083_0f10);
        assert_eq!(sig("EPYC-Milan"), 0x00a0_0f11);
        assert_eq!(sig("EPYC-Genoa"), 0x00a1_0f10);
        assert_eq!(sig("EPYC-Turin"), 0x00b0_0f00);
        assert_eq!(sig("family=25,model=1,stepping=1"), 0x00a0_0f11);
        assert_eq!(sig("sig=0xa00f11"), 0x00a0_0f11);
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "EPYC-Milan-v2",
            "family=26,model=17,stepping=0",
            "sig=0xb10f00",
        ] {
            assert_eq!(s.parse::<VcpuType>().unwrap().to_string(), s);
        }
        assert_eq!("qemu".parse::<VmmType>().unwrap().to_string(), "QEMU");
        assert_eq!("0x1".parse::<GuestFeatures>().unwrap(), GuestFeatures(1));
        assert_eq!("33".parse::<GuestFeatures>().unwrap().to_string(), "0x21");
    }

    #[test]
    fn rejects_unknown() {
        for unknown in ["EPYC-v9", "family=25,model=1"] {
            assert!(
                matches!(
                    unknown.parse::<VcpuType>(),
                    Err(CpuError::UnknownVcpuType(_))
                ),
                "{unknown}"
            );
        }
        assert!(matches!(
            "kvm".parse::<VmmType>(),
            Err(CpuError::UnknownVmmType(_))
        ));
        assert!(matches!(
            "0xzz".parse::<GuestFeatures>(),
            Err(CpuError::BadNumber(_))
        ));
    }
}
