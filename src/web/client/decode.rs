//! Content decoding of gzip and deflate bodies as they stream in
//! (Twisted's `ContentDecoderAgent` with `GzipDecoder`).

use crate::web::http1::CodecError;

/// A streaming decoder for one body.
pub(crate) enum ContentDecoder {
    #[cfg(feature = "gzip")]
    Gzip(flate2::write::GzDecoder<Vec<u8>>),
    #[cfg(feature = "gzip")]
    Deflate(flate2::write::ZlibDecoder<Vec<u8>>),
}

impl ContentDecoder {
    /// A decoder for `Content-Encoding: coding`, if twined has one.
    pub(crate) fn for_coding(coding: &str) -> Option<ContentDecoder> {
        match coding.trim().to_ascii_lowercase().as_str() {
            #[cfg(feature = "gzip")]
            "gzip" | "x-gzip" => Some(ContentDecoder::Gzip(flate2::write::GzDecoder::new(
                Vec::new(),
            ))),
            #[cfg(feature = "gzip")]
            "deflate" => Some(ContentDecoder::Deflate(flate2::write::ZlibDecoder::new(
                Vec::new(),
            ))),
            _ => None,
        }
    }

    /// Decodes a first part of `data`: returns how many bytes of it were
    /// taken and the bytes decoded meanwhile. One step yields at most a few
    /// tens of KiB however well `data` compresses (flate2 inflates into a
    /// 32 KiB buffer), so the caller checks its limit between steps and a
    /// gzip bomb never sits in memory. Taking no input and yielding nothing
    /// means the compressed stream ended before `data` did.
    pub(crate) fn step(&mut self, data: &[u8]) -> Result<(usize, Vec<u8>), CodecError> {
        #[cfg(feature = "gzip")]
        {
            use std::io::Write;
            let bad = |e: std::io::Error| CodecError::BadContentEncoding(e.to_string());
            match self {
                ContentDecoder::Gzip(d) => {
                    let taken = d.write(data).map_err(bad)?;
                    Ok((taken, std::mem::take(d.get_mut())))
                }
                ContentDecoder::Deflate(d) => {
                    let taken = d.write(data).map_err(bad)?;
                    Ok((taken, std::mem::take(d.get_mut())))
                }
            }
        }
        #[cfg(not(feature = "gzip"))]
        {
            let _ = data;
            match *self {}
        }
    }

    /// The body ended: flushes what is left, or fails if it is truncated.
    pub(crate) fn finish(&mut self) -> Result<Vec<u8>, CodecError> {
        #[cfg(feature = "gzip")]
        {
            let bad = |e: std::io::Error| CodecError::BadContentEncoding(e.to_string());
            match self {
                ContentDecoder::Gzip(d) => {
                    d.try_finish().map_err(bad)?;
                    Ok(std::mem::take(d.get_mut()))
                }
                ContentDecoder::Deflate(d) => {
                    d.try_finish().map_err(bad)?;
                    Ok(std::mem::take(d.get_mut()))
                }
            }
        }
        #[cfg(not(feature = "gzip"))]
        match *self {}
    }
}
