//! `Config`: quiche::Config with the setters the driver calls (and the other
//! plain ones the old binding had). Errors are quiche's Debug names
//! (`TlsFail`, `CongestionControl`).

use napi::bindgen_prelude::*;
use napi_derive::napi;

use boring::error::ErrorStack;
use boring::pkey::PKey;
use boring::ssl::{SslContextBuilder, SslMethod};
use boring::x509::store::{X509Store, X509StoreBuilder};
use boring::x509::X509;
use std::sync::OnceLock;

use crate::quiche_err;

/// PEM data a config's TLS context loads at its making (`new Config(systemRoots, pems)`).
#[napi(object)]
pub struct Pems {
    /// CA certificates the peer's chain may end at (a client's origin CAs, a server's client CAs).
    pub ca: Option<Buffer>,
    /// This end's certificate chain, leaf first.
    pub cert: Option<Buffer>,
    /// Its private key.
    pub key: Option<Buffer>,
}

#[napi]
pub struct Config {
    pub(crate) inner: quiche::Config,
    /// `logKeys()` was called: connections made with this config write their
    /// TLS secrets to `SSLKEYLOGFILE` when that variable names a file.
    pub(crate) log_keys: bool,
}

/// JavaScript numbers for counters and sizes: negative or fractional values
/// are clamped/truncated as the old binding's `i64 as u64` casts did for the
/// values the driver passes (non-negative integers).
fn u(v: f64) -> u64 {
    if v.is_nan() || v <= 0.0 {
        0
    } else if v >= u64::MAX as f64 {
        u64::MAX
    } else {
        v as u64
    }
}

/// The system's trust store (`SSL_CERT_FILE`/`SSL_CERT_DIR`, else BoringSSL's
/// default paths), parsed once per process at its first use and shared by
/// every context that verifies by it (`SSL_CTX_set_cert_store` of one
/// reference-counted store): the CA bundle is ~140 certificates, ~6 ms to
/// parse, which each config paid before. A store BoringSSL could not load is
/// an error each time it is asked for. Changes to the bundle on disk are seen
/// by the next process, as Node's own root store is.
fn system_store() -> std::result::Result<X509Store, String> {
    static ROOTS: OnceLock<std::result::Result<X509Store, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut b = X509StoreBuilder::new().map_err(|e| e.to_string())?;
            b.set_default_paths().map_err(|e| e.to_string())?;
            Ok(b.build())
        })
        .clone()
}

#[napi]
impl Config {
    /// The TLS context is made here (a boring `SslContextBuilder`, then
    /// `Config::with_boring_ssl_ctx_builder`), with what `pems` gives loaded
    /// from memory: no temporary files for keys. `system_roots` false: without
    /// the system's trust store — quiche's `Config::new` loads it into every
    /// context (`SSL_CTX_set_default_verify_paths`: the whole CA bundle
    /// parsed, ~6 ms here, for each config), and a CA loaded after it is added
    /// to it, not put in its place: a client given its own CA also trusted
    /// every system root, where Node's `ca` (the h1/h2 path) replaces them. The
    /// system store is loaded once per process and shared (`system_store`);
    /// with a CA of its own besides, a context gets a store of its own, both
    /// in it. A failure names what failed: `ca: …`, `cert: …`, `key: …`.
    #[napi(constructor)]
    pub fn new(system_roots: Option<bool>, pems: Option<Pems>) -> Result<Self> {
        let tls = |what: &str, e: ErrorStack| Error::from_reason(format!("{what}: {e}"));
        let mut b = SslContextBuilder::new(SslMethod::tls()).map_err(|e| tls("TlsFail", e))?;
        let own_ca = pems.as_ref().is_some_and(|p| p.ca.is_some());
        if system_roots.unwrap_or(true) {
            if own_ca {
                b.set_default_verify_paths().map_err(|e| tls("TlsFail", e))?;
            } else {
                b.set_cert_store(system_store().map_err(|e| Error::from_reason(format!("TlsFail: {e}")))?);
            }
        }
        if let Some(p) = pems {
            if let Some(ca) = p.ca {
                let certs = X509::stack_from_pem(&ca).map_err(|e| tls("ca", e))?;
                if certs.is_empty() {
                    return Err(Error::from_reason("ca: no certificate in the PEM data"));
                }
                for c in certs {
                    b.cert_store_mut().add_cert(c).map_err(|e| tls("ca", e))?;
                }
            }
            if let Some(cert) = p.cert {
                let mut chain = X509::stack_from_pem(&cert).map_err(|e| tls("cert", e))?.into_iter();
                let leaf = chain
                    .next()
                    .ok_or_else(|| Error::from_reason("cert: no certificate in the PEM data"))?;
                b.set_certificate(&leaf).map_err(|e| tls("cert", e))?;
                for c in chain {
                    b.add_extra_chain_cert(c).map_err(|e| tls("cert", e))?;
                }
            }
            if let Some(key) = p.key {
                let k = PKey::private_key_from_pem(&key).map_err(|e| tls("key", e))?;
                b.set_private_key(&k).map_err(|e| tls("key", e))?;
                b.check_private_key().map_err(|e| tls("key", e))?;
            }
        }
        let inner = quiche::Config::with_boring_ssl_ctx_builder(quiche::PROTOCOL_VERSION, b).map_err(quiche_err)?;
        Ok(Config { inner, log_keys: false })
    }

    #[napi]
    pub fn load_cert_chain_from_pem_file(&mut self, file: String) -> Result<()> {
        self.inner.load_cert_chain_from_pem_file(&file).map_err(quiche_err)
    }

    #[napi]
    pub fn load_priv_key_from_pem_file(&mut self, file: String) -> Result<()> {
        self.inner.load_priv_key_from_pem_file(&file).map_err(quiche_err)
    }

    #[napi]
    pub fn load_verify_locations_from_file(&mut self, file: String) -> Result<()> {
        self.inner.load_verify_locations_from_file(&file).map_err(quiche_err)
    }

    #[napi]
    pub fn load_verify_locations_from_directory(&mut self, dir: String) -> Result<()> {
        self.inner.load_verify_locations_from_directory(&dir).map_err(quiche_err)
    }

    /// TLS key exchange groups, BoringSSL's colon-separated names. New (the
    /// old binding had none). BoringSSL 5's default list leads with the
    /// post-quantum hybrid X25519MLKEM768, whose key share makes a client's
    /// ClientHello span two Initial datagrams; "X25519:P-256:P-384" keeps
    /// it in one, as quiche 0.18 did.
    #[napi]
    pub fn set_curves_list(&mut self, curves: String) -> Result<()> {
        self.inner.set_curves_list(&curves).map_err(quiche_err)
    }

    #[napi]
    pub fn verify_peer(&mut self, verify: bool) {
        self.inner.verify_peer(verify);
    }

    #[napi]
    pub fn grease(&mut self, grease: bool) {
        self.inner.grease(grease);
    }

    /// Enables BoringSSL's key log callback; each connection made with this
    /// config then appends its secrets (NSS key log format) to the file named
    /// by `SSLKEYLOGFILE` at connect/accept time. Without the variable nothing
    /// is written.
    #[napi]
    pub fn log_keys(&mut self) {
        self.inner.log_keys();
        self.log_keys = true;
    }

    #[napi]
    pub fn set_ticket_key(&mut self, key: &[u8]) -> Result<()> {
        self.inner.set_ticket_key(key).map_err(quiche_err)
    }

    #[napi]
    pub fn enable_early_data(&mut self) {
        self.inner.enable_early_data();
    }

    #[napi]
    pub fn set_application_protos(&mut self, protos: Vec<String>) -> Result<()> {
        let list: Vec<&[u8]> = protos.iter().map(|p| p.as_bytes()).collect();
        self.inner.set_application_protos(&list).map_err(quiche_err)
    }

    #[napi]
    pub fn set_application_protos_wire_format(&mut self, protos: &[u8]) -> Result<()> {
        self.inner.set_application_protos_wire_format(protos).map_err(quiche_err)
    }

    #[napi]
    pub fn set_max_idle_timeout(&mut self, ms: f64) {
        self.inner.set_max_idle_timeout(u(ms));
    }

    #[napi]
    pub fn set_max_recv_udp_payload_size(&mut self, size: f64) {
        self.inner.set_max_recv_udp_payload_size(u(size) as usize);
    }

    #[napi]
    pub fn set_max_send_udp_payload_size(&mut self, size: f64) {
        self.inner.set_max_send_udp_payload_size(u(size) as usize);
    }

    #[napi]
    pub fn set_initial_max_data(&mut self, v: f64) {
        self.inner.set_initial_max_data(u(v));
    }

    #[napi]
    pub fn set_initial_max_stream_data_bidi_local(&mut self, v: f64) {
        self.inner.set_initial_max_stream_data_bidi_local(u(v));
    }

    #[napi]
    pub fn set_initial_max_stream_data_bidi_remote(&mut self, v: f64) {
        self.inner.set_initial_max_stream_data_bidi_remote(u(v));
    }

    #[napi]
    pub fn set_initial_max_stream_data_uni(&mut self, v: f64) {
        self.inner.set_initial_max_stream_data_uni(u(v));
    }

    #[napi]
    pub fn set_initial_max_streams_bidi(&mut self, v: f64) {
        self.inner.set_initial_max_streams_bidi(u(v));
    }

    #[napi]
    pub fn set_initial_max_streams_uni(&mut self, v: f64) {
        self.inner.set_initial_max_streams_uni(u(v));
    }

    #[napi]
    pub fn set_ack_delay_exponent(&mut self, v: f64) {
        self.inner.set_ack_delay_exponent(u(v));
    }

    #[napi]
    pub fn set_max_ack_delay(&mut self, v: f64) {
        self.inner.set_max_ack_delay(u(v));
    }

    #[napi]
    pub fn set_max_connection_window(&mut self, v: f64) {
        self.inner.set_max_connection_window(u(v));
    }

    #[napi]
    pub fn set_max_stream_window(&mut self, v: f64) {
        self.inner.set_max_stream_window(u(v));
    }

    #[napi]
    pub fn set_active_connection_id_limit(&mut self, v: f64) {
        self.inner.set_active_connection_id_limit(u(v));
    }

    #[napi]
    pub fn set_disable_active_migration(&mut self, v: bool) {
        self.inner.set_disable_active_migration(v);
    }

    /// quiche's names: "reno", "cubic", and "bbr" / "bbr2" / "bbr2_gcongestion",
    /// which are all quiche's BBRv2 (gcongestion) since quiche 0.2x dropped
    /// its BBR (v1). Unknown names throw `CongestionControl`.
    #[napi]
    pub fn set_cc_algorithm_name(&mut self, name: String) -> Result<()> {
        self.inner.set_cc_algorithm_name(&name).map_err(quiche_err)
    }

    /// quiche's BBR (bbr2_gcongestion) tuning, for this pinned quiche only (its `internal` API; it may go in a later
    /// release): the loss rate per round above which BBR lowers its inflight ceiling (default 0.015), and how many
    /// loss events end STARTUP (default 8). Applies when the controller is BBR.
    /// `bw_lo_reduction`: how loss lowers BBR's short-term bounds — `default` (every round with a loss: bandwidth_lo
    /// and inflight_lo to at least 0.7× themselves, and the window capped by inflight_lo), `minrtt`, `inflight` or
    /// `cwnd` (bandwidth_lo lowered in proportion to the bytes lost, never below the latest delivery rate,
    /// inflight_lo unused); an unknown name is an error.
    #[napi]
    pub fn set_bbr_params(&mut self, loss_threshold: Option<f64>, startup_full_loss_count: Option<u32>, bw_lo_reduction: Option<String>) -> Result<()> {
        let bw_lo_reduction_strategy = match bw_lo_reduction {
            Some(name) => Some(name.parse::<quiche::BbrBwLoReductionStrategy>().map_err(|_| {
                Error::new(Status::InvalidArg, format!("unknown BBR bandwidth_lo reduction {name:?}"))
            })?),
            None => None,
        };
        let params = quiche::BbrParams {
            loss_threshold: loss_threshold.map(|v| v as f32),
            startup_full_loss_count: startup_full_loss_count.map(|v| v as usize),
            bw_lo_reduction_strategy,
            ..Default::default()
        };
        self.inner.set_custom_bbr_params(params);
        Ok(())
    }

    #[napi]
    pub fn enable_hystart(&mut self, v: bool) {
        self.inner.enable_hystart(v);
    }

    #[napi]
    pub fn enable_pacing(&mut self, v: bool) {
        self.inner.enable_pacing(v);
    }

    #[napi]
    pub fn set_disable_dcid_reuse(&mut self, v: bool) {
        self.inner.set_disable_dcid_reuse(v);
    }

    #[napi]
    pub fn enable_dgram(&mut self, enabled: bool, recv_queue_len: u32, send_queue_len: u32) {
        self.inner.enable_dgram(enabled, recv_queue_len as usize, send_queue_len as usize);
    }
}
