//! RFC 6962 Merkle Tree Hash (SHA-256) and the input Merkle root Kettle records
//! over a build's resolved dependencies.
//!
//! The input root is one commitment to every input the build consumed; using an
//! RFC 6962 tree rather than a flat hash keeps per-dependency inclusion proofs
//! possible without changing the recorded value.

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::jcs::{to_canonical_bytes, JcsError};
use crate::statement::{Provenance, ResourceDescriptor};
use crate::vocab::INPUT_MERKLE_ROOT;

/// Why a recorded input Merkle root does not check out.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum MerkleError {
    /// internalParameters has no root.
    #[error("internalParameters.{INPUT_MERKLE_ROOT} is missing")]
    Missing,
    /// The recorded root is not a string.
    #[error("internalParameters.{INPUT_MERKLE_ROOT} must be a lowercase hex string, found {0}")]
    NotAString(String),
    /// The recorded root differs from the one computed from resolvedDependencies.
    #[error("internalParameters.{INPUT_MERKLE_ROOT} is {recorded} but resolvedDependencies hash to {computed}: the dependency list was altered")]
    Mismatch {
        /// The root written in the Statement.
        recorded: String,
        /// The root recomputed here.
        computed: String,
    },
    /// A dependency could not be canonicalized.
    #[error("cannot canonicalize a resolved dependency: {0}")]
    Jcs(#[from] JcsError),
}

/// RFC 6962 leaf hash: SHA-256(0x00 || data).
pub fn leaf_hash(data: &[u8]) -> [u8; 32] {
    Sha256::new()
        .chain_update([0x00])
        .chain_update(data)
        .finalize()
        .into()
}

/// RFC 6962 interior node hash: SHA-256(0x01 || left || right).
pub fn node_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    Sha256::new()
        .chain_update([0x01])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

/// RFC 6962 Merkle Tree Hash of `leaves` (raw leaf data, in order).
pub fn merkle_tree_hash<T: AsRef<[u8]>>(leaves: &[T]) -> [u8; 32] {
    let hashes: Vec<[u8; 32]> = leaves.iter().map(|l| leaf_hash(l.as_ref())).collect();
    root_of_leaf_hashes(&hashes)
}

/// MTH over already-computed leaf hashes; the empty tree is SHA-256("").
fn root_of_leaf_hashes(hashes: &[[u8; 32]]) -> [u8; 32] {
    match hashes.len() {
        0 => Sha256::digest([]).into(),
        1 => hashes[0],
        n => {
            // Split at the largest power of two strictly less than n.
            let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
            node_hash(
                &root_of_leaf_hashes(&hashes[..k]),
                &root_of_leaf_hashes(&hashes[k..]),
            )
        }
    }
}

/// Merkle root over the JCS bytes of every dependency, sorted bytewise so the
/// root does not depend on listing order.
pub fn input_merkle_root(deps: &[ResourceDescriptor]) -> Result<[u8; 32], JcsError> {
    let mut leaves = deps
        .iter()
        .map(to_canonical_bytes)
        .collect::<Result<Vec<_>, _>>()?;
    leaves.sort_unstable();
    Ok(merkle_tree_hash(&leaves))
}

/// [`input_merkle_root`] as lowercase hex (the form stored under [`INPUT_MERKLE_ROOT`]).
pub fn input_merkle_root_hex(deps: &[ResourceDescriptor]) -> Result<String, JcsError> {
    input_merkle_root(deps).map(hex::encode)
}

/// Checks that `internalParameters.kettle_inputMerkleRoot` ([`INPUT_MERKLE_ROOT`]) matches `resolvedDependencies`.
pub fn check_input_merkle_root(provenance: &Provenance) -> Result<(), MerkleError> {
    let def = &provenance.build_definition;
    let recorded = match def.internal_parameters.get(INPUT_MERKLE_ROOT) {
        None => return Err(MerkleError::Missing),
        Some(serde_json::Value::String(s)) => s,
        Some(other) => return Err(MerkleError::NotAString(other.to_string())),
    };
    let computed = input_merkle_root_hex(&def.resolved_dependencies)?;
    if *recorded == computed {
        Ok(())
    } else {
        Err(MerkleError::Mismatch {
            recorded: recorded.clone(),
            computed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statement::{BuildDefinition, RunDetails, DIGEST_SHA256};

    /// Leaf inputs and roots for tree sizes 0..=8 published with the RFC 6962
    /// reference tests: transparency-dev/merkle, testonly/constants.go
    /// (LeafInputs() and RootHashes(), commit 582a6ad1), the same vectors as
    /// google/certificate-transparency's merkle tree tests.
    const LEAF_INPUTS: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
    const ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    #[test]
    fn rfc6962_reference_roots_for_0_to_8_leaves() {
        let leaves: Vec<Vec<u8>> = LEAF_INPUTS
            .iter()
            .map(|h| hex::decode(h).unwrap())
            .collect();
        for (n, want) in ROOTS.iter().enumerate() {
            assert_eq!(
                hex::encode(merkle_tree_hash(&leaves[..n])),
                *want,
                "tree of {n} leaves"
            );
        }
    }

    #[test]
    fn split_point_matches_naive_definition_for_larger_trees() {
        // Check the bit trick against "largest power of two < n" computed by a loop.
        fn naive(leaves: &[Vec<u8>]) -> [u8; 32] {
            match leaves.len() {
                0 => Sha256::digest([]).into(),
                1 => leaf_hash(&leaves[0]),
                n => {
                    let mut k = 1;
                    while k * 2 < n {
                        k *= 2;
                    }
                    node_hash(&naive(&leaves[..k]), &naive(&leaves[k..]))
                }
            }
        }
        let leaves: Vec<Vec<u8>> = (0u32..70).map(|i| i.to_be_bytes().to_vec()).collect();
        for n in 0..=leaves.len() {
            assert_eq!(merkle_tree_hash(&leaves[..n]), naive(&leaves[..n]), "n={n}");
        }
    }

    fn deps() -> Vec<ResourceDescriptor> {
        vec![
            ResourceDescriptor::from_uri("pkg:cargo/serde@1.0.228")
                .with_digest(DIGEST_SHA256, "aa".repeat(32)),
            ResourceDescriptor::from_uri("pkg:cargo/hex@0.4.3")
                .with_digest(DIGEST_SHA256, "bb".repeat(32)),
            ResourceDescriptor::from_uri("pkg:generic/rootfs@1")
                .with_digest(DIGEST_SHA256, "cc".repeat(32)),
        ]
    }

    #[test]
    fn input_root_is_mth_of_sorted_jcs_leaves() {
        let d = deps();
        let mut leaves: Vec<Vec<u8>> = d.iter().map(|rd| to_canonical_bytes(rd).unwrap()).collect();
        leaves.sort();
        // JCS puts "digest" before "uri", so the bytewise order follows the digests (aa < bb < cc).
        assert!(String::from_utf8_lossy(&leaves[0]).starts_with(r#"{"digest":{"sha256":"aaaa"#));
        assert!(String::from_utf8_lossy(&leaves[2]).contains("pkg:generic/rootfs@1"));
        assert_eq!(input_merkle_root(&d).unwrap(), merkle_tree_hash(&leaves));
        let mut reversed = d.clone();
        reversed.reverse();
        assert_eq!(
            input_merkle_root(&reversed).unwrap(),
            input_merkle_root(&d).unwrap(),
            "order-independent"
        );
        let mut changed = d.clone();
        changed[0]
            .digest
            .insert(DIGEST_SHA256.into(), "ab".repeat(32));
        assert_ne!(
            input_merkle_root(&changed).unwrap(),
            input_merkle_root(&d).unwrap()
        );
        assert_eq!(hex::encode(input_merkle_root(&[]).unwrap()), ROOTS[0]);
    }

    #[test]
    fn recorded_root_is_checked() {
        let mut p = Provenance {
            build_definition: BuildDefinition {
                build_type: "x:y".into(),
                resolved_dependencies: deps(),
                ..Default::default()
            },
            run_details: RunDetails::default(),
        };
        assert!(matches!(
            check_input_merkle_root(&p),
            Err(MerkleError::Missing)
        ));
        p.build_definition
            .internal_parameters
            .insert(INPUT_MERKLE_ROOT.into(), 5.into());
        assert!(matches!(
            check_input_merkle_root(&p),
            Err(MerkleError::NotAString(_))
        ));
        let root = input_merkle_root_hex(&deps()).unwrap();
        p.build_definition
            .internal_parameters
            .insert(INPUT_MERKLE_ROOT.into(), root.into());
        check_input_merkle_root(&p).unwrap();
        p.build_definition.resolved_dependencies.pop();
        assert!(matches!(
            check_input_merkle_root(&p),
            Err(MerkleError::Mismatch { .. })
        ));
    }
}
