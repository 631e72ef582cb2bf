//! The system resolver (getaddrinfo) on libuv's thread pool, for `src/net/resolver.ts` once this binding is loaded.
//!
//! Why here: `node:dns`'s `lookup` first tests the name with `net.isIP`, whose IPv6 regular expression V8 compiles and
//! optimizes at its first use: several milliseconds of a fresh process's first request to a named origin. An HTTP/3
//! client needs nothing else of `node:net`, so the lookup it needs is made here. It asks what Node's asks —
//! `getaddrinfo(name, NULL)` with `AF_UNSPEC`, `SOCK_STREAM` and no flags — and keeps the answer's order
//! (`verbatim`), so both give the same addresses.

use std::ffi::{CStr, CString};
use std::net::{Ipv4Addr, Ipv6Addr};

use napi::bindgen_prelude::*;
use napi::{Env, Task};
use napi_derive::napi;

pub struct SystemLookup {
    host: String,
}

impl Task for SystemLookup {
    /// The addresses in getaddrinfo's order, or the error's code as `node:dns` names it.
    type Output = std::result::Result<Vec<String>, String>;
    type JsValue = Either<Vec<String>, String>;

    fn compute(&mut self) -> Result<Self::Output> {
        Ok(getaddrinfo(&self.host))
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> Result<Self::JsValue> {
        Ok(match output {
            Ok(addresses) => Either::A(addresses),
            Err(code) => Either::B(code),
        })
    }
}

/// The addresses of `host` from the system resolver (/etc/hosts, DNS as nsswitch.conf says): a promise of the
/// address strings, or of a string that is the failure's code (`ENOTFOUND` for no such name, as `node:dns`; else
/// `EAI_AGAIN`, `EAI_FAIL`, ...).
#[napi]
pub fn lookup_system(host: String) -> AsyncTask<SystemLookup> {
    AsyncTask::new(SystemLookup { host })
}

fn getaddrinfo(host: &str) -> std::result::Result<Vec<String>, String> {
    let name = CString::new(host).map_err(|_| "ENOTFOUND".to_owned())?;
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_family = libc::AF_UNSPEC;
    hints.ai_socktype = libc::SOCK_STREAM;
    let mut list: *mut libc::addrinfo = std::ptr::null_mut();
    let rc = unsafe { libc::getaddrinfo(name.as_ptr(), std::ptr::null(), &hints, &mut list) };
    if rc != 0 {
        return Err(eai_code(rc));
    }
    let mut out = Vec::new();
    let mut p = list;
    while !p.is_null() {
        let ai = unsafe { &*p };
        if !ai.ai_addr.is_null() {
            match ai.ai_family {
                libc::AF_INET => {
                    let sa = unsafe { &*(ai.ai_addr as *const libc::sockaddr_in) };
                    out.push(Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr)).to_string());
                }
                libc::AF_INET6 => {
                    let sa = unsafe { &*(ai.ai_addr as *const libc::sockaddr_in6) };
                    out.push(Ipv6Addr::from(sa.sin6_addr.s6_addr).to_string());
                }
                _ => {}
            }
        }
        p = ai.ai_next;
    }
    unsafe { libc::freeaddrinfo(list) };
    Ok(out)
}

/// A getaddrinfo failure as `node:dns` reports it (lib/internal/errors.js `dnsException`: no such name or no address
/// of the family is `ENOTFOUND`).
fn eai_code(rc: i32) -> String {
    // glibc's EAI_NODATA (-5) is outside POSIX: compared by value.
    if rc == libc::EAI_NONAME || rc == -5 {
        return "ENOTFOUND".to_owned();
    }
    match rc {
        libc::EAI_AGAIN => "EAI_AGAIN".to_owned(),
        libc::EAI_FAIL => "EAI_FAIL".to_owned(),
        libc::EAI_MEMORY => "EAI_MEMORY".to_owned(),
        libc::EAI_SYSTEM => "EAI_SYSTEM".to_owned(),
        _ => {
            let text = unsafe { CStr::from_ptr(libc::gai_strerror(rc)) };
            format!("EAI_FAIL ({})", text.to_string_lossy())
        }
    }
}
