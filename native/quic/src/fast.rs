//! Plain N-API callbacks for the calls the driver makes per packet and per
//! pass, installed over the napi-derive methods of `Connection.prototype`
//! when the module loads.
//!
//! Why: napi-rs 3 checks the receiver of every class method call with a
//! type tag (`napi_check_object_type_tag`, or a class registry behind a
//! mutex without N-API 8), ~220 ns per call here — a getter cost ~300 ns
//! against ~85 ns through the old binding (napi-rs 2). These callbacks
//! unwrap `this` directly and check a magic word at the start of the
//! wrapped `Connection` instead (Node already refuses a foreign receiver for
//! methods defined with the class; a callback installed this way is checked
//! by the magic word). Semantics are those of the methods in connection.rs,
//! which they call.

use std::ffi::CStr;
use std::ptr;

use napi::bindgen_prelude::*;
use napi::sys;

use crate::connection::Connection;
use crate::js::{self, check, number, RecvInfo};

type Cb = unsafe extern "C" fn(sys::napi_env, sys::napi_callback_info) -> sys::napi_value;

/// Up to 3 arguments and `this`.
unsafe fn args(env: sys::napi_env, info: sys::napi_callback_info) -> (sys::napi_value, [sys::napi_value; 3]) {
    let mut argv = [ptr::null_mut(); 3];
    let mut argc = 3usize;
    let mut this = ptr::null_mut();
    unsafe { sys::napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), &mut this, ptr::null_mut()) };
    if argc < 3 {
        // Missing arguments read as undefined.
        let mut undef = ptr::null_mut();
        unsafe { sys::napi_get_undefined(env, &mut undef) };
        for a in argv.iter_mut().skip(argc) {
            *a = undef;
        }
    }
    (this, argv)
}

unsafe fn throw(env: sys::napi_env, code: &CStr, msg: &str) -> sys::napi_value {
    let msg = std::ffi::CString::new(msg).unwrap_or_default();
    unsafe { sys::napi_throw_error(env, code.as_ptr(), msg.as_ptr()) };
    ptr::null_mut()
}

/// Throws a napi-rs error the way its generated wrappers do (`Error` with `code` = the status name).
unsafe fn throw_err(env: sys::napi_env, e: napi::Error) -> sys::napi_value {
    let status = e.status.as_ref().to_owned();
    let code = std::ffi::CString::new(status).unwrap_or_default();
    unsafe { throw(env, &code, &e.reason) }
}

unsafe fn conn<'a>(env: sys::napi_env, this: sys::napi_value) -> Option<&'a mut Connection> {
    let mut p: *mut std::ffi::c_void = ptr::null_mut();
    if unsafe { sys::napi_unwrap(env, this, &mut p) } != sys::Status::napi_ok || p.is_null() {
        return None;
    }
    if (p as usize) % std::mem::align_of::<Connection>() != 0 {
        return None;
    }
    let c = p.cast::<Connection>();
    // The magic word is the first field (repr(C)): readable through any wrapped napi-rs value of ours.
    if unsafe { (*c).magic } != crate::connection::MAGIC {
        return None;
    }
    Some(unsafe { &mut *c })
}

macro_rules! this_conn {
    ($env:expr, $this:expr) => {
        match unsafe { conn($env, $this) } {
            Some(c) => c,
            None => return unsafe { throw($env, c"InvalidArg", "Illegal invocation: not a Connection") },
        }
    };
}

unsafe fn boolean(env: sys::napi_env, b: bool) -> sys::napi_value {
    let mut v = ptr::null_mut();
    unsafe { sys::napi_get_boolean(env, b, &mut v) };
    v
}

unsafe fn null(env: sys::napi_env) -> sys::napi_value {
    let mut v = ptr::null_mut();
    unsafe { sys::napi_get_null(env, &mut v) };
    v
}

unsafe fn undefined(env: sys::napi_env) -> sys::napi_value {
    let mut v = ptr::null_mut();
    unsafe { sys::napi_get_undefined(env, &mut v) };
    v
}

unsafe fn int(env: sys::napi_env, v: sys::napi_value) -> Result<i64> {
    let mut n = 0i64;
    unsafe { check(sys::napi_get_value_int64(env, v, &mut n)) }
        .map_err(|_| napi::Error::new(Status::NumberExpected, "expected a number".to_owned()))?;
    Ok(n)
}

unsafe fn boolean_arg(env: sys::napi_env, v: sys::napi_value) -> Result<bool> {
    let mut b = false;
    unsafe { check(sys::napi_get_value_bool(env, v, &mut b)) }
        .map_err(|_| napi::Error::new(Status::BooleanExpected, "expected a boolean".to_owned()))?;
    Ok(b)
}

/// The elements of a typed array of type `want` (`what` names it in the error), borrowed for the call.
unsafe fn typed<'a, T>(env: sys::napi_env, v: sys::napi_value, want: sys::napi_typedarray_type, what: &str) -> Result<&'a mut [T]> {
    let mut ty = 0;
    let mut len = 0usize;
    let mut data = ptr::null_mut();
    let mut ab = ptr::null_mut();
    let mut off = 0usize;
    let st = unsafe { sys::napi_get_typedarray_info(env, v, &mut ty, &mut len, &mut data, &mut ab, &mut off) };
    if st != sys::Status::napi_ok || ty != want {
        return Err(napi::Error::new(Status::InvalidArg, format!("expected {what}")));
    }
    Ok(if len == 0 { &mut [] } else { unsafe { std::slice::from_raw_parts_mut(data.cast::<T>(), len) } })
}

/// The bytes of a Uint8Array (a Buffer included), borrowed for the call.
unsafe fn bytes<'a>(env: sys::napi_env, v: sys::napi_value) -> Result<&'a mut [u8]> {
    unsafe { typed(env, v, sys::TypedarrayType::uint8_array, "a Uint8Array") }
}

/// The words of an Int32Array, borrowed for the call.
unsafe fn i32s<'a>(env: sys::napi_env, v: sys::napi_value) -> Result<&'a mut [i32]> {
    unsafe { typed(env, v, sys::TypedarrayType::int32_array, "an Int32Array") }
}

unsafe fn ret<T: ToNapiValue>(env: sys::napi_env, r: Result<T>) -> sys::napi_value {
    match r.and_then(|v| unsafe { T::to_napi_value(env, v) }) {
        Ok(v) => v,
        Err(e) => unsafe { throw_err(env, e) },
    }
}

macro_rules! getter {
    ($name:ident, $body:expr) => {
        unsafe extern "C" fn $name(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
            let (this, _) = unsafe { args(env, info) };
            let c = this_conn!(env, this);
            #[allow(clippy::redundant_closure_call)]
            unsafe {
                ($body)(env, c)
            }
        }
    };
}

getter!(is_closed, |env, c: &mut Connection| boolean(env, c.is_closed()));
getter!(is_established, |env, c: &mut Connection| boolean(env, c.is_established()));
getter!(is_in_early_data, |env, c: &mut Connection| boolean(env, c.is_in_early_data()));
getter!(is_draining, |env, c: &mut Connection| boolean(env, c.is_draining()));
getter!(is_timed_out, |env, c: &mut Connection| boolean(env, c.is_timed_out()));
getter!(is_resumed, |env, c: &mut Connection| boolean(env, c.is_resumed()));
getter!(peer_streams_left_bidi, |env, c: &mut Connection| number(env, c.peer_streams_left_bidi() as f64)
    .unwrap_or(ptr::null_mut()));
getter!(peer_streams_left_uni, |env, c: &mut Connection| number(env, c.peer_streams_left_uni() as f64)
    .unwrap_or(ptr::null_mut()));
getter!(timeout, |env, c: &mut Connection| match c.timeout() {
    Some(ms) => number(env, ms as f64).unwrap_or(ptr::null_mut()),
    None => null(env),
});
getter!(pass_state, |env, c: &mut Connection| number(env, c.pass_state() as f64).unwrap_or(ptr::null_mut()));
getter!(next_release_us, |env, c: &mut Connection| number(env, c.next_release_us() as f64).unwrap_or(ptr::null_mut()));
getter!(on_timeout, |env, c: &mut Connection| {
    c.on_timeout();
    undefined(env)
});

unsafe extern "C" fn stream_finished(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let (this, a) = unsafe { args(env, info) };
    let c = this_conn!(env, this);
    match unsafe { int(env, a[0]) } {
        Ok(id) => unsafe { boolean(env, c.stream_finished(id)) },
        Err(e) => unsafe { throw_err(env, e) },
    }
}

unsafe extern "C" fn stream_capacity(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let (this, a) = unsafe { args(env, info) };
    let c = this_conn!(env, this);
    let r = unsafe { int(env, a[0]) }.and_then(|id| c.stream_capacity(id));
    unsafe { ret(env, r) }
}

unsafe extern "C" fn send(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let (this, a) = unsafe { args(env, info) };
    let c = this_conn!(env, this);
    let r = unsafe { bytes(env, a[0]) }.and_then(|out| c.send_into(out));
    unsafe { ret(env, r) }
}

unsafe extern "C" fn recv(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let (this, a) = unsafe { args(env, info) };
    let c = this_conn!(env, this);
    let r = unsafe { bytes(env, a[0]) }
        .and_then(|data| Ok((data, unsafe { RecvInfo::from_napi_value(env, a[1]) }?)))
        .and_then(|(data, ri)| c.recv_from(data, ri));
    unsafe { ret(env, r) }
}

unsafe extern "C" fn stream_send(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let (this, a) = unsafe { args(env, info) };
    let c = this_conn!(env, this);
    let r = (|| -> Result<Option<i64>> {
        let id = unsafe { int(env, a[0]) }?;
        let data = unsafe { bytes(env, a[1]) }?;
        let fin = unsafe { boolean_arg(env, a[2]) }?;
        c.stream_send(id, data, fin)
    })();
    unsafe { ret(env, r) }
}

/// readableInto(out: Float64Array) → how many streams are readable; their ids fill `out` (as many as fit).
unsafe extern "C" fn readable_into(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let (this, a) = unsafe { args(env, info) };
    let c = this_conn!(env, this);
    let r = unsafe { typed::<f64>(env, a[0], sys::TypedarrayType::float64_array, "a Float64Array") }
        .map(|out| c.readable_into(out));
    unsafe { ret(env, r) }
}

/// streamRead(id, out) → -1 (nothing to read) or bytes × 2 + fin (see Connection::stream_read).
unsafe extern "C" fn stream_read(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let (this, a) = unsafe { args(env, info) };
    let c = this_conn!(env, this);
    let r = unsafe { int(env, a[0]) }
        .and_then(|id| Ok((id, unsafe { bytes(env, a[1]) }?)))
        .and_then(|(id, out)| c.stream_read(id, out));
    unsafe { ret(env, r) }
}

/// sendPackets(out, max, meta) → count (see Connection::send_packets).
unsafe extern "C" fn send_packets(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let (this, a) = unsafe { args(env, info) };
    let c = this_conn!(env, this);
    let r = (|| -> Result<i64> {
        let out = unsafe { bytes(env, a[0]) }?;
        let max = unsafe { int(env, a[1]) }?.max(0) as usize;
        let meta = unsafe { i32s(env, a[2]) }?;
        c.send_packets(out, max, meta)
    })();
    unsafe { ret(env, r) }
}

/// recvPacket(data, pathIndex, generation) → flags (see Connection::recv_packet).
unsafe extern "C" fn recv_packet(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let (this, a) = unsafe { args(env, info) };
    let c = this_conn!(env, this);
    let r = (|| -> Result<i64> {
        let data = unsafe { bytes(env, a[0]) }?;
        let index = unsafe { int(env, a[1]) }?;
        let gen = unsafe { int(env, a[2]) }?;
        c.recv_packet(data, index, gen)
    })();
    unsafe { ret(env, r) }
}

const FAST: &[(&CStr, Cb)] = &[
    (c"isClosed", is_closed),
    (c"isEstablished", is_established),
    (c"isInEarlyData", is_in_early_data),
    (c"isDraining", is_draining),
    (c"isTimedOut", is_timed_out),
    (c"isResumed", is_resumed),
    (c"peerStreamsLeftBidi", peer_streams_left_bidi),
    (c"peerStreamsLeftUni", peer_streams_left_uni),
    (c"timeout", timeout),
    (c"passState", pass_state),
    (c"onTimeout", on_timeout),
    (c"nextReleaseUs", next_release_us),
    (c"streamFinished", stream_finished),
    (c"streamCapacity", stream_capacity),
    (c"send", send),
    (c"recv", recv),
    (c"sendPackets", send_packets),
    (c"recvPacket", recv_packet),
    (c"streamSend", stream_send),
    (c"streamRead", stream_read),
    (c"readableInto", readable_into),
];

/// Replaces the methods in FAST on `exports.Connection.prototype`.
pub(crate) unsafe fn install(env: sys::napi_env, exports: sys::napi_value) -> Result<()> {
    let mut ctor = ptr::null_mut();
    let mut proto = ptr::null_mut();
    unsafe {
        check(sys::napi_get_named_property(env, exports, c"Connection".as_ptr(), &mut ctor))?;
        check(sys::napi_get_named_property(env, ctor, c"prototype".as_ptr(), &mut proto))?;
        for (name, cb) in FAST {
            let mut f = ptr::null_mut();
            let bytes = name.to_bytes();
            check(sys::napi_create_function(env, bytes.as_ptr().cast(), bytes.len() as isize, Some(*cb), ptr::null_mut(), &mut f))?;
            js::set(env, proto, name, f)?;
        }
    }
    Ok(())
}
