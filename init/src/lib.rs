//! kettle-init: the guest's PID 1. Fetches the pinned inputs, verifies them,
//! builds in a sandbox, hashes the outputs, writes provenance and attests it.
