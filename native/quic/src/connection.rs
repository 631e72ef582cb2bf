//! `Connection`: one quiche connection, with the methods the driver calls
//! (src/quic/quiche.ts `QuicheConnection`) plus `probePath` (path-guard.ts).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ptr;

use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;

use crate::config::Config;
use crate::js::{check, host_port, number, object, opaque, set, HostPort, RecvInfo};
use crate::path::{PathEvent, PathStats};
use crate::quiche_err;

/// First word of every `Connection` (fast.rs checks it before trusting an unwrapped pointer).
pub(crate) const MAGIC: u64 = 0x6f6c_7175_6963_6865; // "olquiche"

#[napi]
#[repr(C)]
pub struct Connection {
    pub(crate) magic: u64,
    inner: quiche::Connection,
    /// Streams the peer stopped (STOP_SENDING) that quiche collected while
    /// reading their FIN, with the peer's code, until a write or capacity
    /// check reports it (see `stream_recv`).
    stopped: HashMap<u64, u64>,
    /// (local, peer) address pairs the driver names by index (sendPackets, recvPacket): addresses cross to JS
    /// once per path, not as strings per packet. Bounded: past MAX_PATHS it starts again, with a new generation.
    paths: Vec<(SocketAddr, SocketAddr)>,
    path_gen: i32,
    /// A path event `recv_packet` took from quiche to learn whether there is one (quiche cannot peek);
    /// `path_event_next` hands it out first.
    held_event: Option<quiche::PathEvent>,
    /// quiche's count of streams the peer stopped (STOP_SENDING) when `recv_packet` last looked.
    stopped_seen: u64,
}

const MAX_PATHS: usize = 64;

/// recvPacket's flags: quiche is down to one connection id of ours and may issue more (issue them before the next
/// datagram of the batch: a retransmitted RETIRE_CONNECTION_ID would otherwise end the connection).
const RECV_LAST_ID: i64 = 1;
/// recvPacket's flags: a path event or an id the peer retired waits (pathEventNext, retiredScidNext).
const RECV_PATH_WORK: i64 = 2;
/// recvPacket's flags: the peer stopped a stream of ours (STOP_SENDING), which quiche tells only to a write.
const RECV_STOPPED: i64 = 4;
/// pass_state: the connection is closed.
const PASS_CLOSED: i64 = -3;
/// pass_state: the connection is draining (RFC 9000 §10.2.2).
const PASS_DRAINING: i64 = -2;

fn is_bidi(id: u64) -> bool {
    id & 0x2 == 0
}

/// `{from, to}` of a path index (pathAddresses).
pub struct PathPair(SocketAddr, SocketAddr);

impl ToNapiValue for PathPair {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> Result<sys::napi_value> {
        unsafe {
            let o = object(env)?;
            set(env, o, c"from", host_port(env, &val.0)?)?;
            set(env, o, c"to", host_port(env, &val.1)?)?;
            Ok(o)
        }
    }
}

/// `[len, {from, to, at}]` from `send`.
pub struct SendOut(usize, quiche::SendInfo);

impl ToNapiValue for SendOut {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> Result<sys::napi_value> {
        unsafe {
            let info = object(env)?;
            set(env, info, c"from", host_port(env, &val.1.from)?)?;
            set(env, info, c"to", host_port(env, &val.1.to)?)?;
            set(env, info, c"at", opaque(env)?)?;
            let mut arr = ptr::null_mut();
            check(sys::napi_create_array_with_length(env, 2, &mut arr))?;
            check(sys::napi_set_element(env, arr, 0, number(env, val.0 as f64)?))?;
            check(sys::napi_set_element(env, arr, 1, info))?;
            Ok(arr)
        }
    }
}

/// `[len, fin]` from `streamRecv`.
pub struct RecvOut(usize, bool);

impl ToNapiValue for RecvOut {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> Result<sys::napi_value> {
        unsafe {
            let mut arr = ptr::null_mut();
            let mut fin = ptr::null_mut();
            check(sys::napi_create_array_with_length(env, 2, &mut arr))?;
            check(sys::napi_get_boolean(env, val.1, &mut fin))?;
            check(sys::napi_set_element(env, arr, 0, number(env, val.0 as f64)?))?;
            check(sys::napi_set_element(env, arr, 1, fin))?;
            Ok(arr)
        }
    }
}

#[napi(object)]
pub struct ConnectionError {
    pub is_app: bool,
    pub error_code: f64,
    pub reason: Uint8Array,
}

impl From<&quiche::ConnectionError> for ConnectionError {
    fn from(e: &quiche::ConnectionError) -> Self {
        ConnectionError { is_app: e.is_app, error_code: e.error_code as f64, reason: Uint8Array::new(e.reason.clone()) }
    }
}

/// The old binding's `stats()`: quiche's connection counters and the peer's
/// transport parameters (quiche 0.18 kept both in `Stats`; newer quiche has
/// `peer_transport_params()`, None before they arrived: the defaults of
/// RFC 9000 §18.2 are given then, as 0.18 did).
#[napi(object)]
pub struct Stats {
    pub recv: f64,
    pub sent: f64,
    pub lost: f64,
    pub retrans: f64,
    pub sent_bytes: f64,
    pub recv_bytes: f64,
    pub lost_bytes: f64,
    pub stream_retrans_bytes: f64,
    pub paths_count: f64,
    pub peer_max_idle_timeout: f64,
    pub peer_max_udp_payload_size: f64,
    pub peer_initial_max_data: f64,
    pub peer_initial_max_stream_data_bidi_local: f64,
    pub peer_initial_max_stream_data_bidi_remote: f64,
    pub peer_initial_max_stream_data_uni: f64,
    pub peer_initial_max_streams_bidi: f64,
    pub peer_initial_max_streams_uni: f64,
    pub peer_ack_delay_exponent: f64,
    pub peer_max_ack_delay: f64,
    pub peer_disable_active_migration: bool,
    pub peer_active_conn_id_limit: f64,
    pub peer_max_datagram_frame_size: Option<f64>,
    /// DATA_BLOCKED / STREAM_DATA_BLOCKED frames we sent (our sending held by the peer's flow control) and received.
    pub data_blocked_sent: f64,
    pub stream_data_blocked_sent: f64,
    pub data_blocked_recv: f64,
    pub stream_data_blocked_recv: f64,
}

fn stream(id: i64) -> u64 {
    id as u64
}

fn keylog(conn: &mut quiche::Connection, config: &Config) {
    if !config.log_keys {
        return;
    }
    let Some(path) = std::env::var_os("SSLKEYLOGFILE").filter(|p| !p.is_empty()) else { return };
    if let Ok(f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        conn.set_keylog(Box::new(f));
    }
}

/**
 * QLOGDIR set (the convention of quiche's own tools): this connection's qlog (JSON-SEQ, quiche's base level: packets,
 * frames, recovery metrics, congestion state) goes to `<QLOGDIR>/<role>-<scid hex>.sqlog`. A file that cannot be
 * made leaves the connection without one.
 */
fn qlog(conn: &mut quiche::Connection, role: &str, scid: &[u8]) {
    let Some(dir) = std::env::var_os("QLOGDIR").filter(|p| !p.is_empty()) else { return };
    let hex: String = scid.iter().map(|b| format!("{b:02x}")).collect();
    if let Ok(f) = std::fs::File::create(std::path::Path::new(&dir).join(format!("{role}-{hex}.sqlog"))) {
        // Written a record (a line) at a time: the file is whole at any moment, not when the connection object is
        // collected, which for a napi object is whenever the JS garbage collector gets to it.
        conn.set_qlog(Box::new(std::io::LineWriter::new(f)), format!("originlink {role}"), String::new());
    }
}

#[napi]
impl Connection {
    /// A client connection. `serverName` is the SNI and the name verified in
    /// the server's certificate (null: neither).
    #[napi(factory)]
    pub fn connect(
        server_name: Option<String>,
        scid: &[u8],
        local: HostPort,
        remote: HostPort,
        config: &mut Config,
    ) -> Result<Self> {
        let scid = quiche::ConnectionId::from_ref(scid);
        let mut inner =
            quiche::connect(server_name.as_deref(), &scid, local.0, remote.0, &mut config.inner).map_err(quiche_err)?;
        keylog(&mut inner, config);
        qlog(&mut inner, "client", scid.as_ref());
        Ok(Connection { magic: MAGIC, inner, stopped: HashMap::new(), paths: Vec::new(), path_gen: 0, held_event: None, stopped_seen: 0 })
    }

    /// A server connection; `odcid` is the client's original destination
    /// connection id after a Retry (null otherwise). `reset_token`: the
    /// stateless reset token of `scid` (RFC 9000 §10.3), sent in the transport
    /// parameters; null: none.
    #[napi(factory)]
    pub fn accept(
        scid: &[u8],
        odcid: Option<&[u8]>,
        local: HostPort,
        remote: HostPort,
        config: &mut Config,
        reset_token: Option<BigInt>,
    ) -> Result<Self> {
        let scid = quiche::ConnectionId::from_ref(scid);
        let odcid = odcid.map(|d| quiche::ConnectionId::from_vec(d.to_vec()));
        // quiche takes the token from the config: set for this accept only (the config is shared).
        let token = reset_token.map(|t| t.get_u128().1);
        if token.is_some() {
            config.inner.set_stateless_reset_token(token);
        }
        let made = quiche::accept(&scid, odcid.as_ref(), local.0, remote.0, &mut config.inner);
        if token.is_some() {
            config.inner.set_stateless_reset_token(None);
        }
        let mut inner = made.map_err(quiche_err)?;
        keylog(&mut inner, config);
        qlog(&mut inner, "server", scid.as_ref());
        Ok(Connection { magic: MAGIC, inner, stopped: HashMap::new(), paths: Vec::new(), path_gen: 0, held_event: None, stopped_seen: 0 })
    }

    #[napi]
    pub fn set_session(&mut self, session: &[u8]) -> Result<()> {
        self.inner.set_session(session).map_err(quiche_err)
    }

    /// Processes one datagram (decrypted in place); bytes read.
    #[napi]
    pub fn recv(&mut self, mut data: Uint8ArraySlice, info: RecvInfo) -> Result<i64> {
        self.recv_from(unsafe { data.as_mut() }, info)
    }

    /// Writes one packet into `out`: `[len, {from, to, at}]`, or null when
    /// there is nothing to send.
    #[napi(ts_return_type = "[number, SendInfo] | null")]
    pub fn send(&mut self, mut out: Uint8ArraySlice) -> Result<Option<SendOut>> {
        self.send_into(unsafe { out.as_mut() })
    }

    /// `[len, fin]`, or null when the stream has nothing to read.
    ///
    /// quiche >= 0.19 marks a stopped stream's send side complete at once
    /// (`SendBuf::reset` acks exactly up to the final size), so reading the
    /// FIN of a stream the peer stopped collects it, and a later
    /// `stream_send` says `Done` instead of `StreamStopped(code)`: the
    /// driver, which learns of a peer's STOP_SENDING from its writes, never
    /// would. quiche 0.18 kept such a stream until a write reported the stop.
    /// So a bidi stream's stop code is read before the read and kept when the
    /// read collects the stream; `streamSend`/`streamCapacity` report it once.
    #[napi(ts_return_type = "[number, boolean] | null")]
    pub fn stream_recv(&mut self, stream_id: i64, mut out: Uint8ArraySlice) -> Result<Option<RecvOut>> {
        self.stream_recv_into(stream_id, unsafe { out.as_mut() })
    }

    /// A stop kept by `stream_recv` for a stream quiche no longer has.
    fn kept_stop(&mut self, id: u64) -> Option<napi::Error> {
        if self.stopped.is_empty() {
            return None;
        }
        self.stopped.remove(&id).map(|code| quiche_err(quiche::Error::StreamStopped(code)))
    }

    /// Bytes accepted, or null when none could be (no credit / capacity).
    #[napi]
    pub fn stream_send(&mut self, stream_id: i64, data: &[u8], fin: bool) -> Result<Option<i64>> {
        let id = stream(stream_id);
        match self.inner.stream_send(id, data, fin) {
            Ok(n) => Ok(Some(n as i64)),
            Err(quiche::Error::Done) => match self.kept_stop(id) {
                Some(e) => Err(e),
                None => Ok(None),
            },
            Err(e) => Err(self.kept_stop(id).unwrap_or_else(|| quiche_err(e))),
        }
    }

    #[napi]
    pub fn stream_priority(&mut self, stream_id: i64, urgency: u32, incremental: bool) -> Result<()> {
        self.inner
            .stream_priority(stream(stream_id), urgency.min(255) as u8, incremental)
            .map_err(quiche_err)
    }

    /// `direction`: `Shutdown.Read` (STOP_SENDING) or `Shutdown.Write`
    /// (RESET_STREAM). null when quiche says Done (already shut down).
    #[napi]
    pub fn stream_shutdown(&mut self, stream_id: i64, direction: u32, code: f64) -> Result<Option<()>> {
        let dir = if direction == 0 { quiche::Shutdown::Read } else { quiche::Shutdown::Write };
        match self.inner.stream_shutdown(stream(stream_id), dir, code as u64) {
            Ok(()) => Ok(Some(())),
            Err(quiche::Error::Done) => Ok(None),
            Err(e) => Err(quiche_err(e)),
        }
    }

    #[napi]
    pub fn stream_capacity(&mut self, stream_id: i64) -> Result<i64> {
        let id = stream(stream_id);
        match self.inner.stream_capacity(id) {
            Ok(n) => Ok(n as i64),
            Err(e @ quiche::Error::InvalidStreamState(_)) => Err(self.kept_stop(id).unwrap_or_else(|| quiche_err(e))),
            Err(e) => Err(quiche_err(e)),
        }
    }

    #[napi]
    pub fn stream_readable(&self, stream_id: i64) -> bool {
        self.inner.stream_readable(stream(stream_id))
    }

    #[napi]
    pub fn stream_writable(&mut self, stream_id: i64, len: f64) -> Result<bool> {
        self.inner.stream_writable(stream(stream_id), len as usize).map_err(quiche_err)
    }

    #[napi]
    pub fn stream_finished(&self, stream_id: i64) -> bool {
        self.inner.stream_finished(stream(stream_id))
    }

    #[napi]
    pub fn peer_streams_left_bidi(&self) -> i64 {
        self.inner.peer_streams_left_bidi() as i64
    }

    /// The peer's initial_max_streams_bidi transport parameter (RFC 9000 §18.2); 0 before it is known. `stats()`
    /// carries it too, among ~40 fields: this is the handshake's one read of it without building them all.
    #[napi]
    pub fn peer_initial_max_streams_bidi(&self) -> f64 {
        self.inner.peer_transport_params().map_or(0.0, |p| p.initial_max_streams_bidi as f64)
    }

    #[napi]
    pub fn peer_streams_left_uni(&self) -> i64 {
        self.inner.peer_streams_left_uni() as i64
    }

    /// Readable stream ids (an array; the old binding gave an iterator object).
    #[napi]
    pub fn readable(&self) -> Vec<i64> {
        self.inner.readable().map(|id| id as i64).collect()
    }

    #[napi]
    pub fn is_readable(&self) -> bool {
        self.inner.is_readable()
    }

    /// Writable stream ids (an array; the old binding gave an iterator object).
    #[napi]
    pub fn writable(&self) -> Vec<i64> {
        self.inner.writable().map(|id| id as i64).collect()
    }

    #[napi]
    pub fn max_send_udp_payload_size(&self) -> i64 {
        self.inner.max_send_udp_payload_size() as i64
    }

    /// Milliseconds (whole, rounded down) until `onTimeout` is due; null: no timer.
    #[napi]
    pub fn timeout(&self) -> Option<i64> {
        self.inner.timeout().map(|t| t.as_millis() as i64)
    }

    /// Microseconds until quiche's pacer releases the next packet (its release times: BBR's pacing rate with
    /// gcongestion): 0 = now (due, or it may join the burst before it); -1 = quiche keeps no release times
    /// for this connection (reno/cubic) or has no active path — the driver paces by itself then.
    pub fn next_release_us(&self) -> i64 {
        if self.inner.gcongestion_enabled() != Some(true) {
            return -1;
        }
        match self.inner.get_next_release_time() {
            None => -1,
            Some(d) => {
                if d.can_burst() {
                    return 0;
                }
                let now = std::time::Instant::now();
                match d.time(now) {
                    Some(t) => t.saturating_duration_since(now).as_micros() as i64,
                    None => 0,
                }
            }
        }
    }

    /// The (local, peer) pair a path index names: `{from, to}` as `send()`'s SendInfo gives them (from = local).
    #[napi(ts_return_type = "{ from: { host: string; port: number }; to: { host: string; port: number } }")]
    pub fn path_addresses(&self, index: i32) -> Result<PathPair> {
        let &(l, p) = self.paths.get(index as usize).ok_or_else(|| napi::Error::new(Status::InvalidArg, "unknown path index".to_owned()))?;
        Ok(PathPair(l, p))
    }

    /// The index of the (local, peer) pair datagrams arrive on, for recvPacket; and the table's generation.
    #[napi]
    pub fn register_path(&mut self, local: HostPort, peer: HostPort) -> i32 {
        self.path_index(local.0, peer.0)
    }

    /// The path table's generation: a new one means every index the driver knew is void.
    #[napi(getter)]
    pub fn path_generation(&self) -> i32 {
        self.path_gen
    }

    #[napi]
    pub fn on_timeout(&mut self) {
        self.inner.on_timeout();
    }

    /// null when the connection is already closing (quiche's Done).
    #[napi]
    pub fn close(&mut self, app: bool, code: f64, reason: &[u8]) -> Result<Option<()>> {
        match self.inner.close(app, code as u64, reason) {
            Ok(()) => Ok(Some(())),
            Err(quiche::Error::Done) => Ok(None),
            Err(e) => Err(quiche_err(e)),
        }
    }

    #[napi]
    pub fn application_proto(&self) -> Uint8Array {
        Uint8Array::new(self.inner.application_proto().to_vec())
    }

    #[napi]
    pub fn server_name(&self) -> Option<String> {
        self.inner.server_name().map(|s| s.to_owned())
    }

    #[napi]
    pub fn peer_cert_chain(&self) -> Option<Vec<Uint8Array>> {
        self.inner
            .peer_cert_chain()
            .map(|c| c.into_iter().map(|der| Uint8Array::new(der.to_vec())).collect())
    }

    #[napi]
    pub fn session(&self) -> Option<Uint8Array> {
        self.inner.session().map(|s| Uint8Array::new(s.to_vec()))
    }

    #[napi]
    pub fn source_id(&self) -> Uint8Array {
        Uint8Array::new(self.inner.source_id().to_vec())
    }

    #[napi]
    pub fn destination_id(&self) -> Uint8Array {
        Uint8Array::new(self.inner.destination_id().to_vec())
    }

    #[napi]
    pub fn trace_id(&self) -> String {
        self.inner.trace_id().to_owned()
    }

    #[napi]
    pub fn is_established(&self) -> bool {
        self.inner.is_established()
    }

    #[napi]
    pub fn is_resumed(&self) -> bool {
        self.inner.is_resumed()
    }

    #[napi]
    pub fn is_in_early_data(&self) -> bool {
        self.inner.is_in_early_data()
    }

    /// BoringSSL's early data reason (`ssl_early_data_reason_t`: 0 unknown,
    /// 1 disabled, 2 accepted, 3 protocol version, 4 peer declined, …).
    /// New: quiche 0.18 had no such call.
    #[napi]
    pub fn early_data_reason(&self) -> u32 {
        self.inner.early_data_reason()
    }

    #[napi]
    pub fn is_draining(&self) -> bool {
        self.inner.is_draining()
    }

    #[napi]
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// What a driver's pass ends on, in one crossing instead of `isClosed`, `isDraining` and `timeout`:
    /// PASS_CLOSED (-3), PASS_DRAINING (-2), -1 when no timer is due, else `timeout()`'s whole milliseconds
    /// (fast.rs only).
    pub(crate) fn pass_state(&self) -> i64 {
        if self.inner.is_closed() {
            return PASS_CLOSED;
        }
        if self.inner.is_draining() {
            return PASS_DRAINING;
        }
        self.timeout().unwrap_or(-1)
    }

    #[napi]
    pub fn is_timed_out(&self) -> bool {
        self.inner.is_timed_out()
    }

    #[napi]
    pub fn peer_error(&self) -> Option<ConnectionError> {
        self.inner.peer_error().map(ConnectionError::from)
    }

    #[napi]
    pub fn local_error(&self) -> Option<ConnectionError> {
        self.inner.local_error().map(ConnectionError::from)
    }

    /// Whether `buf` ends with the stateless reset token the peer gave in its
    /// transport parameters (RFC 9000 §10.3.1): a datagram for no connection
    /// ID of ours may be the peer's stateless reset. (quiche checks the same
    /// one token only, when `recv` cannot decrypt a packet.)
    #[napi]
    pub fn is_stateless_reset(&self, buf: &[u8]) -> bool {
        let n = buf.len();
        if n < 21 {
            return false;
        }
        match self.inner.peer_transport_params().and_then(|p| p.stateless_reset_token) {
            Some(t) => {
                let want = t.to_be_bytes();
                // Constant time: the token is a secret of the peer's.
                want.iter().zip(&buf[n - 16..]).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
            },
            None => false,
        }
    }

    #[napi]
    pub fn stats(&self) -> Stats {
        let s = self.inner.stats();
        let dflt;
        let p = match self.inner.peer_transport_params() {
            Some(p) => p,
            None => {
                dflt = quiche::TransportParams::default();
                &dflt
            },
        };
        Stats {
            recv: s.recv as f64,
            sent: s.sent as f64,
            lost: s.lost as f64,
            retrans: s.retrans as f64,
            sent_bytes: s.sent_bytes as f64,
            recv_bytes: s.recv_bytes as f64,
            lost_bytes: s.lost_bytes as f64,
            stream_retrans_bytes: s.stream_retrans_bytes as f64,
            paths_count: s.paths_count as f64,
            peer_max_idle_timeout: p.max_idle_timeout as f64,
            peer_max_udp_payload_size: p.max_udp_payload_size as f64,
            peer_initial_max_data: p.initial_max_data as f64,
            peer_initial_max_stream_data_bidi_local: p.initial_max_stream_data_bidi_local as f64,
            peer_initial_max_stream_data_bidi_remote: p.initial_max_stream_data_bidi_remote as f64,
            peer_initial_max_stream_data_uni: p.initial_max_stream_data_uni as f64,
            peer_initial_max_streams_bidi: p.initial_max_streams_bidi as f64,
            peer_initial_max_streams_uni: p.initial_max_streams_uni as f64,
            peer_ack_delay_exponent: p.ack_delay_exponent as f64,
            peer_max_ack_delay: p.max_ack_delay as f64,
            peer_disable_active_migration: p.disable_active_migration,
            peer_active_conn_id_limit: p.active_conn_id_limit as f64,
            peer_max_datagram_frame_size: p.max_datagram_frame_size.map(|v| v as f64),
            data_blocked_sent: s.data_blocked_sent_count as f64,
            stream_data_blocked_sent: s.stream_data_blocked_sent_count as f64,
            data_blocked_recv: s.data_blocked_recv_count as f64,
            stream_data_blocked_recv: s.stream_data_blocked_recv_count as f64,
        }
    }

    #[napi]
    pub fn path_stats(&self) -> Vec<PathStats> {
        self.inner.path_stats().map(PathStats::from).collect()
    }

    /// The active path's congestion-controller state (bandwidth estimate, startup exit); null without an active path.
    #[napi]
    pub fn cc_stats(&self) -> Option<crate::path::CcStats> {
        self.inner.path_stats().find(|p| p.active).as_ref().map(crate::path::CcStats::from)
    }

    #[napi]
    pub fn send_ack_eliciting(&mut self) -> Result<()> {
        self.inner.send_ack_eliciting().map_err(quiche_err)
    }

    // ---- paths and connection ids ----

    #[napi]
    pub fn available_dcids(&self) -> i64 {
        self.inner.available_dcids() as i64
    }

    /// Moves the active path to a new local address; the destination
    /// connection id sequence number it uses.
    #[napi]
    pub fn migrate_source(&mut self, local: HostPort) -> Result<i64> {
        self.inner.migrate_source(local.0).map(|n| n as i64).map_err(quiche_err)
    }

    #[napi]
    pub fn migrate(&mut self, local: HostPort, peer: HostPort) -> Result<i64> {
        self.inner.migrate(local.0, peer.0).map(|n| n as i64).map_err(quiche_err)
    }

    /// Requests validation of the path (local, peer), creating it on a client.
    #[napi]
    pub fn probe_path(&mut self, local: HostPort, peer: HostPort) -> Result<i64> {
        self.inner.probe_path(local.0, peer.0).map(|n| n as i64).map_err(quiche_err)
    }

    #[napi]
    pub fn is_path_validated(&self, local: HostPort, peer: HostPort) -> Result<bool> {
        self.inner.is_path_validated(local.0, peer.0).map_err(quiche_err)
    }

    /// quiche's `scids_left` (named `source_cids_left` in quiche 0.18).
    #[napi]
    pub fn source_cids_left(&self) -> i64 {
        self.inner.scids_left() as i64
    }

    #[napi]
    pub fn active_source_cids(&self) -> i64 {
        self.inner.active_scids() as i64
    }

    /// quiche's `new_scid` (`new_source_cid` in quiche 0.18); its sequence number.
    #[napi]
    pub fn new_source_cid(&mut self, scid: &[u8], reset_token: BigInt, retire_if_needed: bool) -> Result<i64> {
        let cid = quiche::ConnectionId::from_ref(scid);
        self.inner
            .new_scid(&cid, reset_token.get_u128().1, retire_if_needed)
            .map(|n| n as i64)
            .map_err(quiche_err)
    }

    #[napi]
    pub fn retire_destination_cid(&mut self, seq: f64) -> Result<()> {
        self.inner.retire_dcid(seq as u64).map_err(quiche_err)
    }

    #[napi]
    pub fn retired_scid_next(&mut self) -> Option<Uint8Array> {
        self.inner.retired_scid_next().map(|c| Uint8Array::new(c.to_vec()))
    }

    #[napi(ts_return_type = "object | null")]
    pub fn path_event_next(&mut self) -> Option<PathEvent> {
        self.held_event.take().or_else(|| self.inner.path_event_next()).map(PathEvent)
    }
}

/// Plain Rust entry points shared by the napi-derive methods and fast.rs.
impl Connection {
    pub(crate) fn recv_from(&mut self, data: &mut [u8], info: RecvInfo) -> Result<i64> {
        let ri = quiche::RecvInfo { from: info.from, to: info.to };
        self.inner.recv(data, ri).map(|n| n as i64).map_err(quiche_err)
    }

    fn path_index(&mut self, local: SocketAddr, peer: SocketAddr) -> i32 {
        if let Some(i) = self.paths.iter().position(|&(l, p)| l == local && p == peer) {
            return i as i32;
        }
        if self.paths.len() >= MAX_PATHS {
            self.paths.clear();
            self.path_gen = self.path_gen.wrapping_add(1);
        }
        self.paths.push((local, peer));
        (self.paths.len() - 1) as i32
    }

    /// Up to `max` packets written one after another into `out`, each with room for the largest datagram
    /// quiche may send. `meta[0]` = the path table's generation, then per packet its length and path index
    /// (pathAddresses names it). The count; 0 when quiche has nothing to send (Done). One crossing for a
    /// flight instead of one per packet, and no address strings per packet.
    pub(crate) fn send_packets(&mut self, out: &mut [u8], max: usize, meta: &mut [i32]) -> Result<i64> {
        if meta.is_empty() {
            return Err(napi::Error::new(Status::InvalidArg, "meta needs room for the generation".to_owned()));
        }
        // quiche applies the peer's max_udp_payload_size (RFC 9000 §18.2) only to the path active when the transport
        // parameters arrive: a path made later (the peer migrated) starts from our configured size (65488 on
        // loopback, 16383 after quiche's cap), and Chromium, which allows 1472, drops every such datagram
        // (ERR_MSG_TOO_BIG). quiche never writes a packet longer than the buffer it is given.
        let mut slot = self.inner.max_send_udp_payload_size();
        if let Some(tp) = self.inner.peer_transport_params() {
            slot = slot.min((tp.max_udp_payload_size as usize).max(1200));
        }
        let max = max.min((meta.len() - 1) / 2).min(MAX_PATHS);
        // Every index of one batch names the same generation: a table that could fill mid-batch starts again first.
        if self.paths.len() + max > MAX_PATHS {
            self.paths.clear();
            self.path_gen = self.path_gen.wrapping_add(1);
        }
        let mut off = 0usize;
        let mut n = 0usize;
        while n < max && off + slot <= out.len() {
            match self.inner.send(&mut out[off..off + slot]) {
                Ok((len, info)) => {
                    let pi = self.path_index(info.from, info.to);
                    meta[1 + 2 * n] = len as i32;
                    meta[2 + 2 * n] = pi;
                    off += len;
                    n += 1;
                }
                Err(quiche::Error::Done) => break,
                Err(e) if n == 0 => return Err(quiche_err(e)),
                Err(_) => break,
            }
        }
        meta[0] = self.path_gen;
        Ok(n as i64)
    }

    /// One datagram that arrived on path `index` of table generation `gen` (registerPath, pathGeneration).
    /// Flags, or the quiche error; `StalePath` when the table started again since (register again).
    /// RECV_LAST_ID when the connection is down to one source connection id with room for more: the
    /// caller issues one before the next datagram, since quiche fails the connection (PROTOCOL_VIOLATION) when a
    /// RETIRE_CONNECTION_ID arrives while it holds a single id, even a retransmitted one for an id already retired
    /// (quiche's `ConnectionIdDeque::remove` checks the count before the sequence number). RECV_PATH_WORK when a
    /// path event or a retired id of ours waits: without it the driver has no path work to do for this datagram,
    /// and skips the crossings that would ask. RECV_STOPPED when the peer stopped a stream (STOP_SENDING): the
    /// driver then probes the streams that owe a reply.
    pub(crate) fn recv_packet(&mut self, data: &mut [u8], index: i64, gen: i64) -> Result<i64> {
        if gen != self.path_gen as i64 {
            return Err(napi::Error::new(Status::GenericFailure, "StalePath".to_owned()));
        }
        let &(local, peer) = self.paths.get(index as usize).ok_or_else(|| napi::Error::new(Status::InvalidArg, "unknown path index".to_owned()))?;
        self.inner.recv(data, quiche::RecvInfo { from: peer, to: local }).map_err(quiche_err)?;
        let mut flags = 0;
        if self.inner.active_scids() <= 1 && self.inner.scids_left() > 0 {
            flags |= RECV_LAST_ID;
        }
        if self.held_event.is_none() {
            self.held_event = self.inner.path_event_next();
        }
        if self.held_event.is_some() || self.inner.retired_scids() > 0 {
            flags |= RECV_PATH_WORK;
        }
        let stopped = self.inner.stats().stopped_stream_count_remote;
        if stopped != self.stopped_seen {
            self.stopped_seen = stopped;
            flags |= RECV_STOPPED;
        }
        Ok(flags)
    }

    pub(crate) fn send_into(&mut self, out: &mut [u8]) -> Result<Option<SendOut>> {
        match self.inner.send(out) {
            Ok((n, info)) => Ok(Some(SendOut(n, info))),
            Err(quiche::Error::Done) => Ok(None),
            Err(e) => Err(quiche_err(e)),
        }
    }

    /// The readable streams' ids written into `out` (as many as fit), in quiche's order; how many are readable.
    pub(crate) fn readable_into(&self, out: &mut [f64]) -> i64 {
        let mut n = 0usize;
        for id in self.inner.readable() {
            if let Some(slot) = out.get_mut(n) {
                *slot = id as f64;
            }
            n += 1;
        }
        n as i64
    }

    /// `stream_recv_into` as one number: -1 when nothing is readable (Done), else bytes × 2 + 1 at the stream's end.
    pub(crate) fn stream_read(&mut self, stream_id: i64, out: &mut [u8]) -> Result<i64> {
        Ok(match self.stream_recv_into(stream_id, out)? {
            None => -1,
            Some(RecvOut(n, fin)) => n as i64 * 2 + fin as i64,
        })
    }

    pub(crate) fn stream_recv_into(&mut self, stream_id: i64, out: &mut [u8]) -> Result<Option<RecvOut>> {
        let id = stream(stream_id);
        let stop = if is_bidi(id) {
            // Side-effect free on a readable stream (quiche collects only a non-readable one here).
            match self.inner.stream_readable(id).then(|| self.inner.stream_capacity(id)) {
                Some(Err(quiche::Error::StreamStopped(code))) => Some(code),
                _ => None,
            }
        } else {
            None
        };
        let r = self.inner.stream_recv(id, out);
        // Only after a successful read (its FIN): a read that reports the peer's reset collected the
        // stream in quiche 0.18 too, and a write then said Done there as well.
        if let (Some(code), Ok(_)) = (stop, &r) {
            if matches!(self.inner.stream_capacity(id), Err(quiche::Error::InvalidStreamState(_))) {
                // Bounded: a stream nobody writes to again keeps its entry; past 1024 the oldest knowledge goes.
                if self.stopped.len() >= 1024 {
                    self.stopped.clear();
                }
                self.stopped.insert(id, code);
            }
        }
        match r {
            Ok((n, fin)) => Ok(Some(RecvOut(n, fin))),
            Err(quiche::Error::Done) => Ok(None),
            Err(e) => Err(quiche_err(e)),
        }
    }

}
