//! napi-rs link setup, and the quiche version (from Cargo.lock) as QUICHE_VERSION.
fn main() {
    napi_build::setup();
    let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
    let mut version = "unknown".to_owned();
    let mut in_quiche = false;
    for line in lock.lines() {
        if line == "name = \"quiche\"" {
            in_quiche = true;
        } else if in_quiche {
            if let Some(v) = line.strip_prefix("version = \"").and_then(|v| v.strip_suffix('"')) {
                version = v.to_owned();
            }
            break;
        }
    }
    println!("cargo:rustc-env=QUICHE_VERSION={version}");
    println!("cargo:rerun-if-changed=Cargo.lock");
}
