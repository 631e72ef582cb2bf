//! Path events and per-path statistics, in the old binding's shapes:
//! events are `{type: 'New' | 'Validated' | 'FailedValidation' | 'Closed',
//! local, peer}`, `{type: 'PeerMigrated', old, new}` (old = our local
//! address, new = the peer's new address, as quiche names them),
//! `{type: 'ReusedSourceConnectionId', seq, old: [local, peer], new: [local, peer]}`,
//! and, new in quiche 0.2x, `{type: 'PmtuUpdated', local, peer, pmtu}`.

use std::net::SocketAddr;

use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;

use crate::js::{host_port, number, object, set, string};

pub struct PathEvent(pub quiche::PathEvent);

unsafe fn pair(env: sys::napi_env, a: &SocketAddr, b: &SocketAddr) -> Result<sys::napi_value> {
    let mut arr = std::ptr::null_mut();
    unsafe {
        crate::js::check(sys::napi_create_array_with_length(env, 2, &mut arr))?;
        crate::js::check(sys::napi_set_element(env, arr, 0, host_port(env, a)?))?;
        crate::js::check(sys::napi_set_element(env, arr, 1, host_port(env, b)?))?;
    }
    Ok(arr)
}

impl ToNapiValue for PathEvent {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> Result<sys::napi_value> {
        use quiche::PathEvent as E;
        let o = unsafe { object(env)? };
        unsafe {
            let two = |name: &str, l: &SocketAddr, p: &SocketAddr| -> Result<()> {
                set(env, o, c"type", string(env, name)?)?;
                set(env, o, c"local", host_port(env, l)?)?;
                set(env, o, c"peer", host_port(env, p)?)
            };
            match &val.0 {
                E::New(l, p) => two("New", l, p)?,
                E::Validated(l, p) => two("Validated", l, p)?,
                E::FailedValidation(l, p) => two("FailedValidation", l, p)?,
                E::Closed(l, p) => two("Closed", l, p)?,
                E::ReusedSourceConnectionId(seq, old, new) => {
                    set(env, o, c"type", string(env, "ReusedSourceConnectionId")?)?;
                    set(env, o, c"seq", number(env, *seq as f64)?)?;
                    set(env, o, c"old", pair(env, &old.0, &old.1)?)?;
                    set(env, o, c"new", pair(env, &new.0, &new.1)?)?;
                }
                E::PeerMigrated(old, new) => {
                    set(env, o, c"type", string(env, "PeerMigrated")?)?;
                    set(env, o, c"old", host_port(env, old)?)?;
                    set(env, o, c"new", host_port(env, new)?)?;
                }
                E::PmtuUpdated { local, peer, pmtu } => {
                    two("PmtuUpdated", local, peer)?;
                    set(env, o, c"pmtu", number(env, *pmtu as f64)?)?;
                }
                // A variant added by a later quiche: its name, as the old binding's serde tag would give.
                other => {
                    let dbg = format!("{other:?}");
                    let name = dbg.split(|c: char| !c.is_ascii_alphanumeric()).next().unwrap_or("Unknown");
                    set(env, o, c"type", string(env, name)?)?;
                }
            }
        }
        Ok(o)
    }
}

/// quiche::PathStats with the old binding's fields (`rtt` in whole ms).
#[napi(object)]
pub struct PathStats {
    pub local_host: crate::js::HostPort,
    pub peer_host: crate::js::HostPort,
    pub active: bool,
    pub recv: f64,
    pub sent: f64,
    pub lost: f64,
    pub retrans: f64,
    pub rtt: f64,
    pub cwnd: f64,
    pub sent_bytes: f64,
    pub recv_bytes: f64,
    pub lost_bytes: f64,
    pub stream_retrans_bytes: f64,
    pub pmtu: f64,
    pub delivery_rate: f64,
}

/// quiche::StartupExit: the window and bandwidth estimate when the controller first left startup, and why.
#[napi(object)]
pub struct StartupExit {
    pub cwnd: f64,
    pub bandwidth: Option<f64>,
    /// `Loss`, `BandwidthPlateau`, `PersistentQueue` or `ConservativeSlowStartRounds`.
    pub reason: String,
}

/// The active path's congestion controller, as far as quiche tells it (Connection.ccStats). Apart from PathStats,
/// which the driver reads on its send path: these cost a string and are read only for stats.
#[napi(object)]
pub struct CcStats {
    /// bbr2_gcongestion's bandwidth estimate, bytes/s (null for other controllers).
    pub max_bandwidth: Option<f64>,
    /// Why and where the controller first left startup (null while in it).
    pub startup_exit: Option<StartupExit>,
}

impl From<&quiche::PathStats> for CcStats {
    fn from(s: &quiche::PathStats) -> Self {
        CcStats {
            max_bandwidth: s.max_bandwidth.map(|b| b as f64),
            startup_exit: s.startup_exit.as_ref().map(|e| StartupExit {
                cwnd: e.cwnd as f64,
                bandwidth: e.bandwidth.map(|b| b as f64),
                reason: format!("{:?}", e.reason),
            }),
        }
    }
}

impl From<quiche::PathStats> for PathStats {
    fn from(s: quiche::PathStats) -> Self {
        PathStats {
            local_host: crate::js::HostPort(s.local_addr),
            peer_host: crate::js::HostPort(s.peer_addr),
            active: s.active,
            recv: s.recv as f64,
            sent: s.sent as f64,
            lost: s.lost as f64,
            retrans: s.retrans as f64,
            rtt: s.rtt.as_millis() as f64,
            cwnd: s.cwnd as f64,
            sent_bytes: s.sent_bytes as f64,
            recv_bytes: s.recv_bytes as f64,
            lost_bytes: s.lost_bytes as f64,
            stream_retrans_bytes: s.stream_retrans_bytes as f64,
            pmtu: s.pmtu as f64,
            delivery_rate: s.delivery_rate as f64,
        }
    }
}
