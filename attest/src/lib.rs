//! SEV-SNP evidence: the report format, the guest's report request, offline
//! verification of the trust chain, and a simulated PSP for machines without SNP.
