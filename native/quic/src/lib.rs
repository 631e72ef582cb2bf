//! originlink's QUIC binding: quiche (crates.io) behind the N-API surface that
//! `src/quic/quiche.ts` declares, with the conventions of the binding it
//! replaces (`@matrixai/quic-linux-x64` 2.0.9, quiche 0.18):
//!
//! - `send`, `streamRecv`, `streamSend` (and `streamShutdown`, `close`)
//!   return null for quiche's `Done`;
//! - every other quiche error is thrown as an `Error` whose message is the
//!   Rust Debug form (`StreamReset(268)`, `InvalidStreamState(4)`, `TlsFail`);
//! - hosts are IP literals (`{host, port}`), `timeout()` is relative whole
//!   milliseconds, `pathStats()[i].rtt` whole milliseconds.
//!
//! native-notes/quic-addon.md says what differs from the old binding.

mod config;
mod fast;
mod connection;
mod header;
mod js;
mod lookup;
mod path;

use napi::bindgen_prelude::*;
use napi_derive::napi;

pub(crate) fn quiche_err(e: quiche::Error) -> napi::Error {
    napi::Error::from_reason(format!("{e:?}"))
}

/// The quiche release this addon was built with (the old binding had no such export).
#[napi]
pub const QUICHE_VERSION: &str = env!("QUICHE_VERSION");

/// Installs fast.rs's callbacks over the hot `Connection` methods once the classes exist.
#[napi(module_exports)]
pub fn install_fast_paths(exports: Object, env: Env) -> Result<()> {
    unsafe { fast::install(env.raw(), exports.raw()) }
}

#[napi]
pub fn version_is_supported(version: u32) -> bool {
    quiche::version_is_supported(version)
}

/// Fills `out` from BoringSSL's random generator (RAND_bytes): the connection IDs and reset tokens a QUIC endpoint
/// makes (RFC 9000 §5.1, §10.3) without loading `node:crypto` in a process that needs nothing else of it.
#[napi]
pub fn fill_random(mut out: Uint8ArraySlice) -> Result<()> {
    boring::rand::rand_bytes(unsafe { out.as_mut() }).map_err(|e| napi::Error::from_reason(format!("{e}")))
}

/// SHA-256 of `data` into the first 32 bytes of `out` (BoringSSL's): util/digest.ts hashes with it once this binding
/// is loaded (quic/quiche.ts registers it), so an HTTP/3 client's content ids (its CA's, for the pool key and the
/// session store's) are not computed by the JavaScript SHA-256 in a fresh process, where that code runs interpreted.
#[napi]
pub fn sha256_into(data: &[u8], mut out: Uint8ArraySlice) -> Result<()> {
    let out = unsafe { out.as_mut() };
    if out.len() < 32 {
        return Err(napi::Error::from_reason("sha256Into: out holds fewer than 32 bytes"));
    }
    out[..32].copy_from_slice(&boring::sha::sha256(data));
    Ok(())
}

/// Whether the DER certificate `der` names the IP address `ip` in its subjectAltName (X509_check_ip_asc): the
/// client's check of a server reached by an IP literal, which is never sent as SNI (RFC 6066 §3) so BoringSSL's own
/// name check does not cover it. Throws for a certificate it cannot parse.
#[napi]
pub fn cert_matches_ip(der: &[u8], ip: String) -> Result<bool> {
    let cert = boring::x509::X509::from_der(der).map_err(|e| napi::Error::from_reason(format!("{e}")))?;
    cert.check_ip_asc(&ip).map_err(|e| napi::Error::from_reason(format!("{e}")))
}

/// Writes a Version Negotiation packet into `out`; its length.
#[napi]
pub fn negotiate_version(scid: &[u8], dcid: &[u8], mut out: Uint8ArraySlice) -> Result<i64> {
    let scid = quiche::ConnectionId::from_ref(scid);
    let dcid = quiche::ConnectionId::from_ref(dcid);
    quiche::negotiate_version(&scid, &dcid, unsafe { out.as_mut() })
        .map(|n| n as i64)
        .map_err(quiche_err)
}

/// Writes a stateless Retry packet into `out`; its length.
#[napi]
pub fn retry(
    scid: &[u8],
    dcid: &[u8],
    new_scid: &[u8],
    token: &[u8],
    version: u32,
    mut out: Uint8ArraySlice,
) -> Result<i64> {
    let scid = quiche::ConnectionId::from_ref(scid);
    let dcid = quiche::ConnectionId::from_ref(dcid);
    let new_scid = quiche::ConnectionId::from_ref(new_scid);
    quiche::retry(&scid, &dcid, &new_scid, token, version, unsafe { out.as_mut() })
        .map(|n| n as i64)
        .map_err(quiche_err)
}

/// quiche::Shutdown.
#[napi]
pub enum Shutdown {
    Read = 0,
    Write = 1,
}

/// quiche::Type (packet types of a parsed header).
#[napi]
pub enum Type {
    Initial = 0,
    Retry = 1,
    Handshake = 2,
    ZeroRTT = 3,
    VersionNegotiation = 4,
    Short = 5,
}
