//! Regenerates attest/simulated/ark.pem and ask.pem from the committed TEST keys.
//! Run once after changing the keys or the certificate layout:
//! `cargo run -p kettle-attest --example regenerate_simulated_ca`.

use kettle_attest::simulated::certs::{build_ark, build_ask};
use x509_cert::der::{pem::LineEnding, EncodePem};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("simulated");
    std::fs::write(dir.join("ark.pem"), build_ark()?.to_pem(LineEnding::LF)?)?;
    std::fs::write(dir.join("ask.pem"), build_ask()?.to_pem(LineEnding::LF)?)?;
    println!(
        "wrote {}/ark.pem and ask.pem (SIMULATED test CA)",
        dir.display()
    );
    Ok(())
}
