//! The simulated PSP: a software stand-in for machines without SEV-SNP.

mod client;

pub use client::PspClient;
