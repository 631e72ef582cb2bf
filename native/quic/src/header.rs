//! `Header.fromSlice`: a parsed long or short header, as the old binding's
//! `Header` class (getters `ty`, `version`, `dcid`, `scid`, `token`, `versions`).

use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::quiche_err;

#[napi]
pub struct Header {
    /// `Type` value (Initial 0 … Short 5).
    pub ty: u32,
    pub version: u32,
    pub dcid: Uint8Array,
    pub scid: Uint8Array,
    pub token: Option<Uint8Array>,
    pub versions: Option<Vec<u32>>,
}

fn ty(t: quiche::Type) -> u32 {
    match t {
        quiche::Type::Initial => 0,
        quiche::Type::Retry => 1,
        quiche::Type::Handshake => 2,
        quiche::Type::ZeroRTT => 3,
        quiche::Type::VersionNegotiation => 4,
        quiche::Type::Short => 5,
    }
}

#[napi]
impl Header {
    /// Parses the header at the start of `data` (short headers need the
    /// connection id length). quiche may rewrite nothing here, but takes the
    /// buffer mutably, as the old binding did.
    #[napi(factory)]
    pub fn from_slice(mut data: Uint8ArraySlice, dcid_len: u32) -> Result<Self> {
        let h = quiche::Header::from_slice(unsafe { data.as_mut() }, dcid_len as usize).map_err(quiche_err)?;
        Ok(Header {
            ty: ty(h.ty),
            version: h.version,
            dcid: Uint8Array::new(h.dcid.to_vec()),
            scid: Uint8Array::new(h.scid.to_vec()),
            token: h.token.map(Uint8Array::new),
            versions: h.versions,
        })
    }
}
