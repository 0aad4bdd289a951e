//! Checking a chain: ARK (self-signed, pinned) -> ASK -> VCEK, which pinned
//! root it ends in, and why it does not verify when it does not.

use super::*;

/// Result of checking the chain: which root it ends in and the parsed VCEK.
#[derive(Debug)]
pub struct ChainOutcome {
    /// Ok(detail) if the chain verifies to a pinned, allowed root.
    pub result: Result<String, ChainVerifyError>,
    /// The product whose pinned root the chain uses, when identified.
    pub product: Option<Product>,
    /// The parsed VCEK, when it parsed (used by later checks even if the chain failed).
    pub vcek: Option<Certificate>,
}

/// Why a certificate chain does not verify to a pinned root the caller accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainVerifyError {
    /// The VCEK does not parse.
    #[error("VCEK is not a valid X.509 certificate: {0}")]
    BadVcek(String),
    /// The evidence carries an ARK that is none of the pinned roots.
    #[error("the ARK in the evidence ({subject}) is not a pinned root (AMD Milan, Genoa, Turin or the Kettle SIMULATED root)")]
    ArkNotPinned {
        /// The ARK's subject (or why it does not parse).
        subject: String,
    },
    /// The chain ends in the simulated root and the caller does not accept it.
    #[error("the chain ends in the Kettle SIMULATED test root, which is trusted only when simulated evidence is explicitly allowed")]
    SimulatedNotAllowed,
    /// The chain verifies under none of the pinned roots it could end in.
    #[error("{}", no_root_message(.0))]
    NoPinnedRoot(Vec<(Product, RootError)>),
}

fn no_root_message(tried: &[(Product, RootError)]) -> String {
    let each = |(product, e): &(Product, RootError)| format!("{product}: {e}");
    match tried {
        [one] => each(one),
        _ => format!(
            "the VCEK does not chain to any pinned root ({})",
            tried.iter().map(each).collect::<Vec<_>>().join("; ")
        ),
    }
}

/// Why a chain does not verify under one product's pinned root.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RootError {
    /// The product's built-in ARK or ASK does not load (a build defect).
    #[error("the pinned roots do not load: {0}")]
    PinnedRoots(String),
    /// A VLEK with no ASVK supplied: the pinned ASK did not issue it.
    #[error("the key is a VLEK, which chains ARK -> ASVK -> VLEK: include the ASVK in the chain (AMD's KDS serves it at /vlek/v1/{product}/cert_chain)")]
    VlekWithoutAsvk {
        /// The product whose KDS serves the ASVK.
        product: Product,
    },
    /// A certificate in the chain does not parse.
    #[error("{what} is not a valid X.509 certificate: {message}")]
    BadCertificate {
        /// Which certificate ("pinned ARK", "ASK").
        what: &'static str,
        /// The decoder's message.
        message: String,
    },
    /// The ASK names another issuer than the ARK's subject.
    #[error("ASK issuer ({issuer}) is not the ARK ({ark})")]
    AskNotIssuedByArk {
        /// The ASK's issuer.
        issuer: String,
        /// The ARK's subject.
        ark: String,
    },
    /// The VCEK names another issuer than the ASK's subject.
    #[error("VCEK issuer ({issuer}) is not the ASK ({ask})")]
    VcekNotIssuedByAsk {
        /// The VCEK's issuer.
        issuer: String,
        /// The ASK's subject.
        ask: String,
    },
    /// A signature in the chain does not verify (the `sev` crate's message).
    #[error("{0}")]
    Signature(String),
}

fn parse_cert(der: &[u8], what: &'static str) -> Result<Certificate, RootError> {
    Certificate::from_der(der).map_err(|e| RootError::BadCertificate {
        what,
        message: e.to_string(),
    })
}

/// Verifies ARK (self-signed, pinned) -> ASK -> VCEK with the `sev` crate's chain
/// verification, plus issuer/subject name chaining.
pub fn check_chain(chain: &CertChain, allow_simulated: bool) -> ChainOutcome {
    let vcek = match Certificate::from_der(&chain.vcek) {
        Ok(c) => c,
        Err(e) => {
            return ChainOutcome {
                result: Err(ChainVerifyError::BadVcek(e.to_string())),
                product: None,
                vcek: None,
            }
        }
    };
    let mut outcome = ChainOutcome {
        result: Err(ChainVerifyError::NoPinnedRoot(Vec::new())),
        product: None,
        vcek: Some(vcek.clone()),
    };

    // Which pinned roots can this chain end in?
    let candidates: Vec<Product> = match &chain.ark {
        Some(ark_der) => {
            let pinned = Product::ALL.into_iter().find(|p| {
                p.pinned_der()
                    .map(|(ark, _)| &ark == ark_der)
                    .unwrap_or(false)
            });
            match pinned {
                Some(p) => vec![p],
                None => {
                    let subject = Certificate::from_der(ark_der)
                        .map(|c| c.tbs_certificate.subject.to_string())
                        .unwrap_or_else(|e| format!("ARK is not a valid X.509 certificate: {e}"));
                    outcome.result = Err(ChainVerifyError::ArkNotPinned { subject });
                    return outcome;
                }
            }
        }
        // Try the product whose ASK issued this VCEK first (a cheap name comparison).
        None => {
            let mut all = Product::ALL.to_vec();
            all.sort_by_key(|p| !issuer_matches_pinned_ask(*p, &vcek));
            all
        }
    };

    let mut errors = Vec::new();
    for product in candidates {
        match verify_with_root(product, chain.ask.as_deref(), &vcek) {
            Ok(()) => {
                outcome.product = Some(product);
                outcome.result = if product == Product::Simulated && !allow_simulated {
                    Err(ChainVerifyError::SimulatedNotAllowed)
                } else {
                    Ok(format!(
                        "ARK-{product} (pinned, self-signed) -> ASK -> VCEK signatures verify{}",
                        if chain.ask.is_none() {
                            " (pinned ASK)"
                        } else {
                            ""
                        }
                    ))
                };
                return outcome;
            }
            Err(e) => errors.push((product, e)),
        }
    }
    outcome.result = Err(ChainVerifyError::NoPinnedRoot(errors));
    outcome
}

fn issuer_matches_pinned_ask(product: Product, vcek: &Certificate) -> bool {
    product
        .pinned_der()
        .ok()
        .and_then(|(_, ask)| Certificate::from_der(&ask).ok())
        .is_some_and(|ask| ask.tbs_certificate.subject == vcek.tbs_certificate.issuer)
}

fn verify_with_root(
    product: Product,
    ask_der: Option<&[u8]>,
    vcek: &Certificate,
) -> Result<(), RootError> {
    let (ark_der, pinned_ask_der) = product
        .pinned_der()
        .map_err(|e| RootError::PinnedRoots(e.to_string()))?;
    if ask_der.is_none() && subject_cn_of_issuer(vcek).is_some_and(|cn| cn.starts_with("SEV-VLEK"))
    {
        return Err(RootError::VlekWithoutAsvk { product });
    }
    let ark = parse_cert(&ark_der, "pinned ARK")?;
    let ask = parse_cert(ask_der.unwrap_or(&pinned_ask_der), "ASK")?;
    if ask.tbs_certificate.issuer != ark.tbs_certificate.subject {
        return Err(RootError::AskNotIssuedByArk {
            issuer: ask.tbs_certificate.issuer.to_string(),
            ark: ark.tbs_certificate.subject.to_string(),
        });
    }
    if vcek.tbs_certificate.issuer != ask.tbs_certificate.subject {
        return Err(RootError::VcekNotIssuedByAsk {
            issuer: vcek.tbs_certificate.issuer.to_string(),
            ask: ask.tbs_certificate.subject.to_string(),
        });
    }
    let sev_chain = SevChain {
        ca: ca::Chain {
            ark: SevCert::from(ark),
            ask: SevCert::from(ask),
        },
        vek: SevCert::from(vcek.clone()),
    };
    (&sev_chain)
        .verify()
        .map(|_| ())
        .map_err(|e| RootError::Signature(e.to_string()))
}
