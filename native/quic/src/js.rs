//! Plain N-API value builders for the hot paths (`send` returns one array,
//! one object and two addresses per packet) and address conversion.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::ptr;

use napi::bindgen_prelude::*;
use napi::sys;

/// `{host, port}` as the driver passes and receives it. The host must be an
/// IP literal (the driver resolves names itself).
pub struct HostPort(pub SocketAddr);

const BAD_HOST: &str = "Could not convert host to socket address";

unsafe fn prop(env: sys::napi_env, obj: sys::napi_value, name: &std::ffi::CStr) -> Result<sys::napi_value> {
    let mut v = ptr::null_mut();
    check_status!(
        unsafe { sys::napi_get_named_property(env, obj, name.as_ptr(), &mut v) },
        "{}",
        BAD_HOST
    )?;
    Ok(v)
}

impl FromNapiValue for HostPort {
    unsafe fn from_napi_value(env: sys::napi_env, v: sys::napi_value) -> Result<Self> {
        let host = unsafe { prop(env, v, c"host")? };
        let port = unsafe { prop(env, v, c"port")? };
        // An IP literal is at most 45 bytes (IPv6 with an embedded IPv4 address); longer is no IP.
        let mut buf = [0u8; 64];
        let mut len = 0usize;
        let st = unsafe { sys::napi_get_value_string_utf8(env, host, buf.as_mut_ptr().cast(), buf.len(), &mut len) };
        if st != sys::Status::napi_ok {
            return Err(Error::new(Status::StringExpected, BAD_HOST.to_owned()));
        }
        let mut p: u32 = 0;
        let st = unsafe { sys::napi_get_value_uint32(env, port, &mut p) };
        if st != sys::Status::napi_ok || p > 65535 {
            return Err(Error::new(Status::NumberExpected, BAD_HOST.to_owned()));
        }
        let ip: IpAddr = std::str::from_utf8(&buf[..len])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::from_reason(BAD_HOST))?;
        Ok(HostPort(SocketAddr::new(ip, p as u16)))
    }
}

impl TypeName for HostPort {
    fn type_name() -> &'static str {
        "HostPort"
    }
    fn value_type() -> ValueType {
        ValueType::Object
    }
}

impl ValidateNapiValue for HostPort {}

impl ToNapiValue for HostPort {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> Result<sys::napi_value> {
        unsafe { host_port(env, &val.0) }
    }
}

/// `{from, to}` of a received datagram.
pub struct RecvInfo {
    pub from: SocketAddr,
    pub to: SocketAddr,
}

impl FromNapiValue for RecvInfo {
    unsafe fn from_napi_value(env: sys::napi_env, v: sys::napi_value) -> Result<Self> {
        let from = unsafe { HostPort::from_napi_value(env, prop(env, v, c"from")?)? };
        let to = unsafe { HostPort::from_napi_value(env, prop(env, v, c"to")?)? };
        Ok(RecvInfo { from: from.0, to: to.0 })
    }
}

impl TypeName for RecvInfo {
    fn type_name() -> &'static str {
        "RecvInfo"
    }
    fn value_type() -> ValueType {
        ValueType::Object
    }
}

impl ValidateNapiValue for RecvInfo {}

pub(crate) unsafe fn check(st: sys::napi_status) -> Result<()> {
    if st == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(Error::new(Status::from(st), "N-API call failed".to_owned()))
    }
}

pub(crate) unsafe fn object(env: sys::napi_env) -> Result<sys::napi_value> {
    let mut o = ptr::null_mut();
    unsafe { check(sys::napi_create_object(env, &mut o))? };
    Ok(o)
}

pub(crate) unsafe fn set(env: sys::napi_env, o: sys::napi_value, name: &std::ffi::CStr, v: sys::napi_value) -> Result<()> {
    unsafe { check(sys::napi_set_named_property(env, o, name.as_ptr(), v)) }
}

pub(crate) unsafe fn number(env: sys::napi_env, n: f64) -> Result<sys::napi_value> {
    let mut v = ptr::null_mut();
    unsafe { check(sys::napi_create_double(env, n, &mut v))? };
    Ok(v)
}

pub(crate) unsafe fn string(env: sys::napi_env, s: &str) -> Result<sys::napi_value> {
    let mut v = ptr::null_mut();
    unsafe { check(sys::napi_create_string_utf8(env, s.as_ptr().cast(), s.len() as isize, &mut v))? };
    Ok(v)
}

/// `{host, port}` for an address (`host` as Rust prints the IP: `127.0.0.1`, `::1`).
pub(crate) unsafe fn host_port(env: sys::napi_env, a: &SocketAddr) -> Result<sys::napi_value> {
    let mut buf = [0u8; 64];
    let mut w = &mut buf[..];
    let _ = write!(w, "{}", a.ip());
    let n = 64 - w.len();
    let ip = unsafe { std::str::from_utf8_unchecked(&buf[..n]) };
    let o = unsafe { object(env)? };
    unsafe {
        set(env, o, c"host", string(env, ip)?)?;
        set(env, o, c"port", number(env, a.port() as f64)?)?;
    }
    Ok(o)
}

/// An opaque value in place of quiche's `SendInfo.at` (an `Instant`, which
/// JavaScript cannot read). The old binding gave a napi External holding the
/// Instant; this is an External holding nothing, so it costs no finalizer.
pub(crate) unsafe fn opaque(env: sys::napi_env) -> Result<sys::napi_value> {
    let mut v = ptr::null_mut();
    unsafe { check(sys::napi_create_external(env, ptr::null_mut(), None, ptr::null_mut(), &mut v))? };
    Ok(v)
}
