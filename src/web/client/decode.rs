//! Content decoding of compressed bodies as they stream in (Twisted's
//! `ContentDecoderAgent` with `GzipDecoder`): gzip and deflate with the
//! `gzip` feature, brotli with `br`, zstd with `zstd`.
//!
//! Every coding is driven the same way: [`ContentDecoder::step`] takes a
//! first part of its input and yields at most [`STEP_OUTPUT`] bytes, so the
//! caller checks its size limit between steps and a decompression bomb never
//! sits in memory whatever the coding.

use crate::web::http1::CodecError;

/// Most bytes one [`ContentDecoder::step`] yields (flate2 inflates into a
/// buffer of this size; brotli and zstd are given one).
#[cfg_attr(not(any(feature = "br", feature = "zstd")), allow(dead_code))]
pub(crate) const STEP_OUTPUT: usize = 32 << 10;

/// Largest zstd window accepted: 8 MiB, the bound RFC 9659 sets for the
/// `zstd` content coding (a frame asking for more is refused, so a hostile
/// frame header cannot make the decoder allocate gigabytes).
#[cfg(feature = "zstd")]
const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// The `Accept-Encoding` value an agent that decodes sends: the codings
/// compiled in, best first.
pub(crate) fn accept_encoding() -> &'static str {
    match (cfg!(feature = "zstd"), cfg!(feature = "br")) {
        (true, true) => "gzip, br, zstd",
        (false, true) => "gzip, br",
        (true, false) => "gzip, zstd",
        (false, false) => "gzip",
    }
}

/// What a `Content-Encoding` field asks of the client.
pub(crate) enum Coding {
    /// No coding (absent, empty or `identity`): the body is as sent.
    Identity,
    /// One coding twined decodes.
    Decode(ContentDecoder),
    /// One coding twined has no decoder for: the body is handed on as
    /// sent, `Content-Encoding` kept, for the user to decode.
    Unknown,
    /// More than one coding (`gzip, br`): refused rather than handed on
    /// half understood. The field's value, for the error.
    Stacked(String),
}

impl Coding {
    /// Reads a `Content-Encoding` field: a comma-separated list of codings
    /// in the order they were applied, `identity` ignored.
    pub(crate) fn parse(field: &str) -> Coding {
        let codings: Vec<String> = field
            .split(',')
            .map(|c| c.trim().to_ascii_lowercase())
            .filter(|c| !c.is_empty() && c != "identity")
            .collect();
        match codings.as_slice() {
            [] => Coding::Identity,
            [one] => ContentDecoder::for_coding(one).map_or(Coding::Unknown, Coding::Decode),
            _ => Coding::Stacked(field.trim().to_string()),
        }
    }
}

/// A streaming decoder for one body (each boxed: a response's state stays
/// small whatever the coding).
pub(crate) enum ContentDecoder {
    #[cfg(feature = "gzip")]
    Gzip(Box<flate2::write::GzDecoder<Vec<u8>>>),
    #[cfg(feature = "gzip")]
    Deflate(Box<flate2::write::ZlibDecoder<Vec<u8>>>),
    #[cfg(feature = "br")]
    Brotli(Box<Brotli>),
    #[cfg(feature = "zstd")]
    Zstd(Box<Zstd>),
}

impl ContentDecoder {
    /// A decoder for the one coding `coding` (lowercase), if twined has one.
    pub(crate) fn for_coding(coding: &str) -> Option<ContentDecoder> {
        match coding {
            #[cfg(feature = "gzip")]
            "gzip" | "x-gzip" => Some(ContentDecoder::Gzip(Box::new(
                flate2::write::GzDecoder::new(Vec::new()),
            ))),
            #[cfg(feature = "gzip")]
            "deflate" => Some(ContentDecoder::Deflate(Box::new(
                flate2::write::ZlibDecoder::new(Vec::new()),
            ))),
            #[cfg(feature = "br")]
            "br" => Some(ContentDecoder::Brotli(Box::default())),
            #[cfg(feature = "zstd")]
            "zstd" => Zstd::new().map(|z| ContentDecoder::Zstd(Box::new(z))),
            _ => None,
        }
    }

    /// Decodes a first part of `data`: returns how many bytes of it were
    /// taken and the bytes decoded meanwhile, at most about
    /// [`STEP_OUTPUT`]. The caller steps until `data` is all taken and then
    /// once more with nothing, until a step yields nothing: output a step
    /// could not hand over waits for the next one. Taking none of a
    /// non-empty `data` and yielding nothing means the compressed stream
    /// ended before `data` did.
    pub(crate) fn step(&mut self, data: &[u8]) -> Result<(usize, Vec<u8>), CodecError> {
        let _ = data;
        match self {
            #[cfg(feature = "gzip")]
            ContentDecoder::Gzip(d) => {
                use std::io::Write;
                let taken = d.write(data).map_err(bad)?;
                Ok((taken, std::mem::take(d.get_mut())))
            }
            #[cfg(feature = "gzip")]
            ContentDecoder::Deflate(d) => {
                use std::io::Write;
                let taken = d.write(data).map_err(bad)?;
                Ok((taken, std::mem::take(d.get_mut())))
            }
            #[cfg(feature = "br")]
            ContentDecoder::Brotli(d) => d.step(data),
            #[cfg(feature = "zstd")]
            ContentDecoder::Zstd(d) => d.step(data),
            #[cfg(not(any(feature = "gzip", feature = "br", feature = "zstd")))]
            _ => unreachable!("no content decoder is compiled in"),
        }
    }

    /// The body ended: flushes what is left, or fails if it is truncated.
    /// Not called for an empty body (a HEAD, 204 or 304 response's), which
    /// is no truncated stream.
    pub(crate) fn finish(&mut self) -> Result<Vec<u8>, CodecError> {
        match self {
            #[cfg(feature = "gzip")]
            ContentDecoder::Gzip(d) => {
                d.try_finish().map_err(bad)?;
                Ok(std::mem::take(d.get_mut()))
            }
            #[cfg(feature = "gzip")]
            ContentDecoder::Deflate(d) => {
                d.try_finish().map_err(bad)?;
                Ok(std::mem::take(d.get_mut()))
            }
            #[cfg(feature = "br")]
            ContentDecoder::Brotli(d) => d.finish(),
            #[cfg(feature = "zstd")]
            ContentDecoder::Zstd(d) => d.finish(),
            #[cfg(not(any(feature = "gzip", feature = "br", feature = "zstd")))]
            _ => unreachable!("no content decoder is compiled in"),
        }
    }
}

#[cfg(feature = "gzip")]
fn bad(e: std::io::Error) -> CodecError {
    CodecError::BadContentEncoding(e.to_string())
}

/// The brotli decoder's state (the pure-Rust decoder of the `brotli` crate,
/// its window at most 16 MiB: large-window brotli is not an HTTP coding).
#[cfg(feature = "br")]
pub(crate) struct Brotli {
    state: brotli_decompressor::BrotliState<
        brotli_decompressor::StandardAlloc,
        brotli_decompressor::StandardAlloc,
        brotli_decompressor::StandardAlloc,
    >,
    /// The stream's last block was decoded and all its output handed over.
    done: bool,
}

#[cfg(feature = "br")]
impl Default for Brotli {
    fn default() -> Brotli {
        use brotli_decompressor::StandardAlloc;
        Brotli {
            state: brotli_decompressor::BrotliState::new(
                StandardAlloc::default(),
                StandardAlloc::default(),
                StandardAlloc::default(),
            ),
            done: false,
        }
    }
}

#[cfg(feature = "br")]
impl Brotli {
    fn step(&mut self, data: &[u8]) -> Result<(usize, Vec<u8>), CodecError> {
        use brotli_decompressor::BrotliResult;
        if self.done {
            return Ok((0, Vec::new()));
        }
        let mut out = vec![0u8; STEP_OUTPUT];
        let (mut available_in, mut in_offset) = (data.len(), 0);
        let (mut available_out, mut out_offset, mut total) = (out.len(), 0, 0);
        let result = brotli_decompressor::BrotliDecompressStream(
            &mut available_in,
            &mut in_offset,
            data,
            &mut available_out,
            &mut out_offset,
            &mut out,
            &mut total,
            &mut self.state,
        );
        out.truncate(out_offset);
        match result {
            BrotliResult::ResultSuccess => self.done = true,
            BrotliResult::NeedsMoreInput | BrotliResult::NeedsMoreOutput => {}
            BrotliResult::ResultFailure => {
                return Err(CodecError::BadContentEncoding(format!(
                    "brotli: {:?}",
                    self.state.error_code
                )))
            }
        }
        Ok((in_offset, out))
    }

    fn finish(&mut self) -> Result<Vec<u8>, CodecError> {
        // Everything decodable was handed over by the last empty step.
        match self.done {
            true => Ok(Vec::new()),
            false => Err(CodecError::BadContentEncoding(
                "brotli: the stream is truncated".into(),
            )),
        }
    }
}

/// libzstd's streaming decoder, its window limited to
/// [`ZSTD_WINDOW_LOG_MAX`]. A body may hold several frames, one after the
/// other (as the zstd format allows).
#[cfg(feature = "zstd")]
pub(crate) struct Zstd {
    decoder: zstd::stream::raw::Decoder<'static>,
    /// The last frame begun was decoded to its end and flushed.
    frame_done: bool,
}

#[cfg(feature = "zstd")]
impl Zstd {
    fn new() -> Option<Zstd> {
        let mut decoder = zstd::stream::raw::Decoder::new().ok()?;
        decoder
            .set_parameter(zstd::stream::raw::DParameter::WindowLogMax(
                ZSTD_WINDOW_LOG_MAX,
            ))
            .ok()?;
        Some(Zstd {
            decoder,
            frame_done: false,
        })
    }

    fn step(&mut self, data: &[u8]) -> Result<(usize, Vec<u8>), CodecError> {
        use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
        let mut out = vec![0u8; STEP_OUTPUT];
        let mut input = InBuffer::around(data);
        let mut output = OutBuffer::around(&mut out[..]);
        let hint = self
            .decoder
            .run(&mut input, &mut output)
            .map_err(|e| CodecError::BadContentEncoding(format!("zstd: {e}")))?;
        let written = output.pos();
        let taken = input.pos();
        out.truncate(written);
        if taken > 0 || written > 0 {
            // A hint of 0: the frame is complete and fully flushed.
            self.frame_done = hint == 0;
        }
        Ok((taken, out))
    }

    fn finish(&mut self) -> Result<Vec<u8>, CodecError> {
        match self.frame_done {
            true => Ok(Vec::new()),
            false => Err(CodecError::BadContentEncoding(
                "zstd: the stream is truncated".into(),
            )),
        }
    }
}
