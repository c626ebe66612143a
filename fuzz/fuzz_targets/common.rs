//! What the fuzz targets check, shared with the ordinary tests
//! (`tests/http1_codec.rs`, `tests/fuzz_corpus.rs`) so the seed corpus runs
//! in CI too. Drives the codec exactly as the client does.
#![allow(dead_code)]

use twined::web::http1::{
    check_host, parse_request_head, parse_response_head, request_framing, response_framing,
    BodyDecoder, CodecError, Framing, Headers, ResponseHead,
};

/// A response as the client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// Interim (1xx) heads, then the final one.
    pub heads: Vec<ResponseHead>,
    pub body: Vec<u8>,
    pub trailers: Headers,
    /// Bytes after the response (the next pipelined message).
    pub rest: Vec<u8>,
}

/// Decodes one response to `method` from `input` delivered in pieces cut at
/// `splits` (positions, in any order; out-of-range ones are ignored), then
/// end of stream. `limit` bounds the head; the buffer held for the head never
/// exceeds `limit` plus one piece.
pub fn decode_response(
    method: &str,
    input: &[u8],
    splits: &[usize],
    limit: usize,
) -> Result<Decoded, CodecError> {
    let mut cuts: Vec<usize> = splits
        .iter()
        .copied()
        .filter(|&s| s > 0 && s < input.len())
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut pieces = Vec::new();
    let mut start = 0;
    for cut in cuts {
        pieces.push(&input[start..cut]);
        start = cut;
    }
    pieces.push(&input[start..]);

    let mut buf: Vec<u8> = Vec::new();
    let mut heads = Vec::new();
    let mut decoder: Option<BodyDecoder> = None;
    let mut body = Vec::new();
    let mut rest = Vec::new();
    for piece in pieces {
        if let Some(d) = decoder.as_mut() {
            if d.is_done() {
                rest.extend_from_slice(piece);
                continue;
            }
            let used = d.decode(piece, &mut |b| body.extend_from_slice(b))?;
            rest.extend_from_slice(&piece[used.consumed..]);
            continue;
        }
        buf.extend_from_slice(piece);
        assert!(
            buf.len() <= limit + piece.len(),
            "head buffer grew past the limit"
        );
        while let Some((head, len)) = parse_response_head(&buf, limit)? {
            buf.drain(..len);
            if head.status == 101 {
                return Err(CodecError::UpgradeUnsupported);
            }
            if (100..200).contains(&head.status) {
                heads.push(head);
                continue;
            }
            let framing = response_framing(method, head.status, &head.headers)?;
            heads.push(head);
            let mut d = BodyDecoder::new(framing);
            let used = d.decode(&buf, &mut |b| body.extend_from_slice(b))?;
            rest.extend_from_slice(&buf[used.consumed..]);
            buf.clear();
            decoder = Some(d);
            break;
        }
    }
    match decoder.as_mut() {
        Some(d) => d.eof()?,
        None => {
            return Err(CodecError::Truncated {
                received: 0,
                expected: None,
            })
        }
    }
    let trailers = decoder.map(|d| d.trailers()).unwrap_or_default();
    Ok(Decoded {
        heads,
        body,
        trailers,
        rest,
    })
}

/// The head parsers never panic and never accept more than the limit.
pub fn check_heads(data: &[u8]) {
    for limit in [16, 256, 64 * 1024] {
        if let Ok(Some((_, len))) = parse_response_head(data, limit) {
            assert!(len <= limit && len <= data.len());
        }
        if let Ok(Some((head, len))) = parse_request_head(data, limit) {
            assert!(len <= limit && len <= data.len());
            let _ = request_framing(&head);
            let _ = check_host(&head);
        }
    }
}

/// A chunked body decodes the same whatever the cuts.
pub fn check_chunked(data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let step = usize::from(data[0]).max(1);
    let data = &data[1..];
    let once = decode_chunked(data, &[]);
    let cuts: Vec<usize> = (step..data.len()).step_by(step).collect();
    assert_eq!(once, decode_chunked(data, &cuts), "cut every {step} bytes");
}

fn decode_chunked(data: &[u8], cuts: &[usize]) -> Result<(Vec<u8>, bool, usize), CodecError> {
    let mut d = BodyDecoder::new(Framing::Chunked);
    let mut body = Vec::new();
    let mut start = 0;
    let mut consumed = 0;
    for &end in cuts.iter().chain(std::iter::once(&data.len())) {
        if d.is_done() {
            break;
        }
        let used = d.decode(&data[start..end], &mut |b| body.extend_from_slice(b))?;
        consumed += used.consumed;
        if used.consumed < end - start {
            break;
        }
        start = end;
    }
    Ok((body, d.is_done(), consumed))
}

/// A response decodes the same in one piece as in any cuts; the first two
/// bytes choose the cut step.
pub fn check_splits(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let step = usize::from(u16::from_le_bytes([data[0], data[1]])).max(1);
    let input = &data[2..];
    for method in ["GET", "HEAD"] {
        let once = decode_response(method, input, &[], 1024);
        let cuts: Vec<usize> = (step..input.len()).step_by(step).collect();
        let split = decode_response(method, input, &cuts, 1024);
        match (&once, &split) {
            // A head over the limit may be noticed before or after a bad
            // byte further on, depending on the cuts: both are errors.
            (Err(CodecError::HeadTooLarge { .. }), Err(_))
            | (Err(_), Err(CodecError::HeadTooLarge { .. })) => {}
            _ => assert_eq!(once, split, "{method}, cut every {step} bytes"),
        }
    }
}
