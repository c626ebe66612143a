//! The sans-IO HTTP/1.1 codec on byte slices: every sample gives the same
//! result split at every byte position and byte by byte; malformed input
//! gives the right error; writers refuse header injection.

#[path = "../fuzz/fuzz_targets/common.rs"]
mod common;

use common::{decode_response, Decoded};
use proptest::prelude::*;
use twined::web::http1::{
    check_host, encode_chunk, encode_last_chunk, parse_request_head, request_framing,
    write_request_head, write_response_head, BodyDecoder, CodecError, Framing, Headers,
    RequestHead, Version, USER_AGENT,
};

const LIMIT: usize = 64 * 1024;

/// Decodes `input` in one piece, at every two-piece split, and byte by byte;
/// all must agree. Returns the one-piece result.
fn every_split(method: &str, input: &[u8]) -> Result<Decoded, CodecError> {
    let once = decode_response(method, input, &[], LIMIT);
    for cut in 1..input.len() {
        assert_eq!(
            once,
            decode_response(method, input, &[cut], LIMIT),
            "split at {cut}"
        );
    }
    let all: Vec<usize> = (1..input.len()).collect();
    assert_eq!(
        once,
        decode_response(method, input, &all, LIMIT),
        "byte by byte"
    );
    once
}

#[test]
fn content_length_body() {
    let d = every_split(
        "GET",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello",
    )
    .unwrap();
    assert_eq!(d.heads.len(), 1);
    assert_eq!(d.heads[0].status, 200);
    assert_eq!(d.heads[0].reason, "OK");
    assert_eq!(d.heads[0].version, Version::Http11);
    assert_eq!(d.heads[0].headers.get("x-a"), Some("1"));
    assert_eq!(d.body, b"hello");
}

#[test]
fn chunked_body_with_extensions_and_trailers() {
    let d = every_split(
        "GET",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;name=val\r\nhello\r\n6;q=\"x y\"\r\n world\r\n0\r\nX-Checksum: abc\r\nX-Other: 2\r\n\r\n",
    )
    .unwrap();
    assert_eq!(d.body, b"hello world");
    assert_eq!(d.trailers.get("x-checksum"), Some("abc"));
    assert_eq!(d.trailers.get("x-other"), Some("2"));
}

#[test]
fn close_delimited_body() {
    let d = every_split(
        "GET",
        b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nall of this until close",
    )
    .unwrap();
    assert_eq!(d.body, b"all of this until close");
}

#[test]
fn continue_then_the_real_response() {
    let d = every_split(
        "GET",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    )
    .unwrap();
    let statuses: Vec<u16> = d.heads.iter().map(|h| h.status).collect();
    assert_eq!(statuses, [100, 103, 200]);
    assert_eq!(d.body, b"ok");
}

#[test]
fn head_204_and_304_have_no_body() {
    let d = every_split("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n").unwrap();
    assert!(d.body.is_empty());
    for status in ["204 No Content", "304 Not Modified"] {
        let wire = format!("HTTP/1.1 {status}\r\nContent-Length: 10\r\n\r\nNEXT");
        let d = every_split("GET", wire.as_bytes()).unwrap();
        assert!(d.body.is_empty());
        assert_eq!(
            d.rest, b"NEXT",
            "bytes after a bodiless response are the next message"
        );
    }
}

#[test]
fn repeated_headers_keep_their_order() {
    let d = every_split(
        "GET",
        b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n",
    )
    .unwrap();
    let cookies: Vec<&str> = d.heads[0].headers.get_all("set-cookie").collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
}

#[test]
fn pipelined_responses_leave_the_rest() {
    let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
    let first = every_split("GET", wire).unwrap();
    assert_eq!(first.body, b"abc");
    let second = every_split("GET", &first.rest).unwrap();
    assert_eq!(second.heads[0].status, 404);
}

#[test]
fn garbage_status_lines_are_bad_heads() {
    for wire in [
        &b"SPAM SPAM SPAM\r\n\r\n"[..],
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/9 200\r\n\r\n",
    ] {
        let e = every_split("GET", wire).unwrap_err();
        assert!(matches!(e, CodecError::BadHead(_)), "{wire:?}: {e:?}");
    }
}

#[test]
fn invalid_chunk_sizes_and_ends() {
    let e = every_split(
        "GET",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhi\r\n0\r\n\r\n",
    )
    .unwrap_err();
    assert_eq!(e, CodecError::BadChunkSize);
    assert_eq!(e.to_string(), "invalid chunk size line");
    let e = every_split(
        "GET",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhiXX0\r\n\r\n",
    )
    .unwrap_err();
    assert_eq!(e, CodecError::BadChunkEnd);
    let e = every_split(
        "GET",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n",
    )
    .unwrap_err();
    assert_eq!(e, CodecError::BadChunkSize, "a size that overflows");
}

#[test]
fn conflicting_content_lengths_and_unknown_codings() {
    let e = every_split(
        "GET",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    )
    .unwrap_err();
    assert!(matches!(e, CodecError::BadContentLength(_)), "{e:?}");
    let e = every_split("GET", b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n").unwrap_err();
    assert!(matches!(e, CodecError::BadContentLength(_)), "{e:?}");
    let e = every_split("GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n").unwrap_err();
    assert!(
        matches!(e, CodecError::UnsupportedTransferEncoding(_)),
        "{e:?}"
    );
    // Agreeing duplicates are fine.
    let d = every_split("GET", b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok").unwrap();
    assert_eq!(d.body, b"ok");
}

#[test]
fn a_truncated_body_names_what_arrived() {
    let e = every_split("GET", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello").unwrap_err();
    assert_eq!(
        e,
        CodecError::Truncated {
            received: 5,
            expected: Some(10)
        }
    );
    assert_eq!(e.to_string(), "connection closed after 5 of 10 body bytes");
    let e = every_split(
        "GET",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            CodecError::Truncated {
                received: 3,
                expected: None
            }
        ),
        "{e:?}"
    );
}

#[test]
fn a_4_mib_header_is_refused_with_bounded_memory() {
    let mut wire = b"HTTP/1.1 200 OK\r\nX-Huge: ".to_vec();
    wire.extend(std::iter::repeat_n(b'a', 4 << 20));
    wire.extend_from_slice(b"\r\n\r\n");
    // 64 KiB pieces: decode_response asserts the head buffer never holds
    // more than the limit plus one piece.
    let cuts: Vec<usize> = (1..wire.len() / 65536 + 1).map(|i| i * 65536).collect();
    let e = decode_response("GET", &wire, &cuts, LIMIT).unwrap_err();
    assert_eq!(e, CodecError::HeadTooLarge { limit: LIMIT });
    // Many fields are no problem below the limit.
    let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..300 {
        many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    let d = decode_response("GET", &many, &[], LIMIT).unwrap();
    assert_eq!(d.heads[0].headers.len(), 301);
}

#[test]
fn request_heads_and_bodies_at_every_split() {
    let wire = b"POST /submit?x=1 HTTP/1.1\r\nHost: example.org\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwiki\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n";
    for cut in 0..=wire.len() {
        let mut buf = wire[..cut].to_vec();
        let mut parsed = parse_request_head(&buf, LIMIT).unwrap();
        if parsed.is_none() {
            buf.extend_from_slice(&wire[cut..]);
            parsed = parse_request_head(&buf, LIMIT).unwrap();
        } else {
            buf.extend_from_slice(&wire[cut..]);
        }
        let (head, len) = parsed.unwrap();
        assert_eq!(
            (head.method.as_str(), head.target.as_str()),
            ("POST", "/submit?x=1")
        );
        assert_eq!(head.headers.get("host"), Some("example.org"));
        let framing = request_framing(&head).unwrap();
        assert_eq!(framing, Framing::Chunked);
        let mut d = BodyDecoder::new(framing);
        let mut body = Vec::new();
        let used = d
            .decode(&buf[len..], &mut |b| body.extend_from_slice(b))
            .unwrap();
        assert!(used.done);
        assert_eq!(body, b"wiki");
        assert_eq!(&buf[len + used.consumed..], b"GET / HTTP/1.1\r\n\r\n");
    }
    assert_eq!(
        request_framing(&request(&["Content-Length: 7"])).unwrap(),
        Framing::Length(7)
    );
    assert_eq!(request_framing(&request(&[])).unwrap(), Framing::Empty);
}

/// An HTTP/1.1 request head with `fields`.
fn request(fields: &[&str]) -> RequestHead {
    request_version("1.1", fields)
}

fn request_version(version: &str, fields: &[&str]) -> RequestHead {
    let mut wire = format!("POST / HTTP/{version}\r\n");
    for f in fields {
        wire.push_str(f);
        wire.push_str("\r\n");
    }
    wire.push_str("\r\n");
    parse_request_head(wire.as_bytes(), LIMIT)
        .unwrap()
        .unwrap()
        .0
}

#[test]
fn request_framing_refuses_what_could_smuggle_a_request() {
    use CodecError::{BadContentLength, BadFraming, UnsupportedTransferEncoding};
    type Check = fn(&Result<Framing, CodecError>) -> bool;
    let bad_framing: Check = |r| matches!(r, Err(BadFraming(_)));
    let bad_length: Check = |r| matches!(r, Err(BadContentLength(_)));
    let unsupported: Check = |r| matches!(r, Err(UnsupportedTransferEncoding(_)));
    let table: &[(&str, &[&str], Check)] = &[
        // RFC 9112 6.1: both fields is an attack, not a choice to make.
        (
            "1.1",
            &["Content-Length: 5", "Transfer-Encoding: chunked"],
            bad_framing,
        ),
        (
            "1.1",
            &["Transfer-Encoding: chunked", "Content-Length: 0"],
            bad_framing,
        ),
        // HTTP/1.0 has no transfer codings: faulty framing.
        ("1.0", &["Transfer-Encoding: chunked"], bad_framing),
        // chunked must be last, and only once.
        ("1.1", &["Transfer-Encoding: chunked, gzip"], bad_framing),
        ("1.1", &["Transfer-Encoding: gzip"], bad_framing),
        (
            "1.1",
            &["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"],
            bad_framing,
        ),
        ("1.1", &["Transfer-Encoding: chunked, chunked"], bad_framing),
        ("1.1", &["Transfer-Encoding: identity"], bad_framing),
        // A coding the server does not decode before chunked: 501.
        ("1.1", &["Transfer-Encoding: gzip, chunked"], unsupported),
        // Content-Length values that disagree or are not numbers.
        (
            "1.1",
            &["Content-Length: 5", "Content-Length: 6"],
            bad_length,
        ),
        ("1.1", &["Content-Length: 5, 6"], bad_length),
        ("1.1", &["Content-Length: +5"], bad_length),
        ("1.1", &["Content-Length: 0x10"], bad_length),
        (
            "1.1",
            &["Content-Length: 99999999999999999999999"],
            bad_length,
        ),
        ("1.1", &["Content-Length: "], bad_length),
    ];
    for (version, fields, check) in table {
        let got = request_framing(&request_version(version, fields));
        assert!(check(&got), "HTTP/{version} {fields:?}: {got:?}");
    }
    // What stays accepted.
    for (fields, want) in [
        (&["Transfer-Encoding: chunked"][..], Framing::Chunked),
        (&["Transfer-Encoding: Chunked"][..], Framing::Chunked),
        (
            &["Content-Length: 5", "Content-Length: 5"][..],
            Framing::Length(5),
        ),
        (&["Content-Length: 5, 5"][..], Framing::Length(5)),
    ] {
        assert_eq!(
            request_framing(&request(fields)).unwrap(),
            want,
            "{fields:?}"
        );
    }
}

#[test]
fn a_request_has_one_valid_host() {
    for (version, fields, ok) in [
        ("1.1", &["Host: example.org"][..], true),
        ("1.1", &["Host: example.org:8080"][..], true),
        ("1.1", &["Host: [::1]:80"][..], true),
        ("1.1", &["Host:"][..], true),
        ("1.0", &[][..], true),
        ("1.1", &[][..], false),
        ("1.1", &["Host: a", "Host: a"][..], false),
        ("1.0", &["Host: a", "Host: b"][..], false),
        ("1.1", &["Host: a b"][..], false),
        ("1.1", &["Host: a/b"][..], false),
    ] {
        let got = check_host(&request_version(version, fields));
        assert_eq!(got.is_ok(), ok, "HTTP/{version} {fields:?}: {got:?}");
        if let Err(e) = got {
            assert!(matches!(e, CodecError::BadHost(_)), "{e:?}");
        }
    }
}

#[test]
fn chunk_sizes_are_hex_digits_then_an_extension_or_the_line_end() {
    for bad in [
        &b"0x10\r\n"[..],
        b"5xyz\r\nhello\r\n0\r\n\r\n",
        b"5 x\r\nhello\r\n0\r\n\r\n",
        b"-5\r\n",
        b"+5\r\n",
        b"5\rx\nhello\r\n0\r\n\r\n",
        b"\r\n",
    ] {
        let mut d = BodyDecoder::new(Framing::Chunked);
        let got = d.decode(bad, &mut |_| {});
        assert_eq!(
            got,
            Err(CodecError::BadChunkSize),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    for good in [
        &b"5\r\nhello\r\n0\r\n\r\n"[..],
        b"5 \r\nhello\r\n0\r\n\r\n",
        b"5 ; a=b\r\nhello\r\n0\r\n\r\n",
        b"5;a=\"x y\"\r\nhello\r\n0;z\r\n\r\n",
        b"5\nhello\n0\n\n",
    ] {
        let mut d = BodyDecoder::new(Framing::Chunked);
        let mut body = Vec::new();
        let got = d.decode(good, &mut |b| body.extend_from_slice(b)).unwrap();
        assert!(got.done, "{:?}", String::from_utf8_lossy(good));
        assert_eq!(body, b"hello");
    }
}

#[test]
fn header_values_stay_bytes() {
    let wire = b"GET / HTTP/1.1\r\nHost: x\r\nX-Name: J\xf6rg\r\n\r\n";
    let (head, _) = parse_request_head(wire, LIMIT).unwrap().unwrap();
    assert_eq!(head.headers.get_bytes("x-name"), Some(&b"J\xf6rg"[..]));
    assert_eq!(head.headers.get("x-name"), None);
    assert_eq!(head.headers.get("host"), Some("x"));
    let mut out = Vec::new();
    write_response_head(&mut out, Version::Http11, 200, "OK", &head.headers).unwrap();
    assert_eq!(
        out,
        b"HTTP/1.1 200 OK\r\nHost: x\r\nX-Name: J\xf6rg\r\n\r\n"
    );
    // Trailers too, parsed with httparse as heads are.
    let body = b"0\r\nX-Sum: \xff\xfe\r\nX-B: 2\r\n\r\n";
    let mut d = BodyDecoder::new(Framing::Chunked);
    assert!(d.decode(body, &mut |_| {}).unwrap().done);
    assert_eq!(d.trailers().get_bytes("x-sum"), Some(&b"\xff\xfe"[..]));
    assert_eq!(d.trailers().get("x-b"), Some("2"));
    let mut d = BodyDecoder::new(Framing::Chunked);
    let got = d.decode(b"0\r\nno colon here\r\n\r\n", &mut |_| {});
    assert!(matches!(got, Err(CodecError::BadTrailer(_))), "{got:?}");
}

/// A response head with `n` short fields, then a 5-byte body.
fn many_fields(n: usize) -> Vec<u8> {
    let mut wire = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n".to_vec();
    for i in 0..n {
        wire.extend_from_slice(format!("X-F{i}: {i}\r\n").as_bytes());
    }
    wire.extend_from_slice(b"\r\nhello");
    wire
}

#[test]
fn heads_with_more_than_48_fields_parse_however_they_are_split() {
    for n in [47, 48, 49, 62, 200, 511] {
        let wire = many_fields(n);
        let d = every_split("GET", &wire).unwrap();
        assert_eq!(d.heads[0].headers.len(), n + 1);
        assert_eq!(d.body, b"hello");
        // And with a lot of body bytes buffered behind the head.
        let mut long = wire.clone();
        long.truncate(long.len() - 5);
        long.extend_from_slice(b"hello");
        long.extend(std::iter::repeat_n(b'x', 2 * LIMIT));
        let once = decode_response("GET", &long, &[], LIMIT).unwrap();
        assert_eq!(once.heads[0].headers.len(), n + 1);
        let split = decode_response("GET", &long, &[50], LIMIT).unwrap();
        assert_eq!(once, split);
    }
    // More fields than the parser keeps: an error, the same at every split.
    let wire = many_fields(600);
    let once = decode_response("GET", &wire, &[], LIMIT);
    assert!(
        matches!(once, Err(CodecError::HeadTooLarge { .. })),
        "{once:?}"
    );
    for cut in (1..wire.len()).step_by(97) {
        assert_eq!(once, decode_response("GET", &wire, &[cut], LIMIT));
    }
    // The same for request heads.
    let mut req = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..62 {
        req.extend_from_slice(format!("X-F{i}: {i}\r\n").as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    let whole = parse_request_head(&req, LIMIT).unwrap().unwrap();
    assert_eq!(whole.0.headers.len(), 63);
    assert_eq!(parse_request_head(&req[..50], LIMIT).unwrap(), None);
    let mut padded = req.clone();
    padded.extend(std::iter::repeat_n(b'x', 2 * LIMIT));
    assert_eq!(parse_request_head(&padded, LIMIT).unwrap().unwrap(), whole);
}

#[test]
fn the_request_writer() {
    let mut buf = Vec::new();
    let headers: Headers = [
        ("Host", "example.org:8080"),
        ("User-Agent", USER_AGENT),
        ("Content-Length", "3"),
    ]
    .into_iter()
    .collect();
    write_request_head(&mut buf, "POST", "/a?b=c", &headers).unwrap();
    assert_eq!(
        String::from_utf8(buf).unwrap(),
        format!(
            "POST /a?b=c HTTP/1.1\r\nHost: example.org:8080\r\nUser-Agent: twined/{}\r\nContent-Length: 3\r\n\r\n",
            env!("CARGO_PKG_VERSION")
        )
    );
}

#[test]
fn header_injection_is_refused_and_the_buffer_kept() {
    for (name, value) in [
        ("X-Evil", "a\r\nSet-Cookie: pwned"),
        ("X-Evil", "a\nb"),
        ("X-Evil", "nul\0"),
        ("Bad Name", "v"),
        ("Bad:Name", "v"),
        ("", "v"),
    ] {
        let mut buf = b"kept".to_vec();
        let headers: Headers = [(name, value)].into_iter().collect();
        let e = write_request_head(&mut buf, "GET", "/", &headers).unwrap_err();
        assert!(matches!(e, CodecError::InvalidHeader(_)), "{name:?}: {e:?}");
        assert_eq!(buf, b"kept");
        let e = write_response_head(&mut buf, Version::Http11, 200, "OK", &headers).unwrap_err();
        assert!(matches!(e, CodecError::InvalidHeader(_)));
        assert_eq!(buf, b"kept");
    }
    let mut buf = Vec::new();
    assert!(write_request_head(&mut buf, "GET", "/a b", &Headers::new()).is_err());
    assert!(write_request_head(&mut buf, "G T", "/", &Headers::new()).is_err());
    assert!(buf.is_empty());
}

#[test]
fn the_response_writer_and_chunk_encoder() {
    let mut buf = Vec::new();
    let headers: Headers = [("Content-Type", "text/plain")].into_iter().collect();
    write_response_head(&mut buf, Version::Http10, 404, "Not Found", &headers).unwrap();
    assert_eq!(
        buf,
        b"HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\n\r\n"
    );
    let mut body = Vec::new();
    encode_chunk(&mut body, b"hello world, sixteen+");
    encode_chunk(&mut body, b""); // nothing: an empty chunk would end the body
    encode_last_chunk(&mut body, &[("X-T", "1")].into_iter().collect()).unwrap();
    assert_eq!(body, b"15\r\nhello world, sixteen+\r\n0\r\nX-T: 1\r\n\r\n");
}

proptest! {
    #[test]
    fn chunked_round_trip(
        body in proptest::collection::vec(any::<u8>(), 0..20_000),
        chunk_sizes in proptest::collection::vec(1usize..5_000, 1..20),
        cut_every in 1usize..3_000,
        trailer in "[A-Za-z]{1,10}",
    ) {
        let mut wire = Vec::new();
        let mut rest = &body[..];
        let mut sizes = chunk_sizes.iter().cycle();
        while !rest.is_empty() {
            let n = (*sizes.next().unwrap()).min(rest.len());
            encode_chunk(&mut wire, &rest[..n]);
            rest = &rest[n..];
        }
        let trailers: Headers = [("X-Trailer", trailer.as_str())].into_iter().collect();
        encode_last_chunk(&mut wire, &trailers).unwrap();
        let mut d = BodyDecoder::new(Framing::Chunked);
        let mut out = Vec::new();
        for piece in wire.chunks(cut_every) {
            let used = d.decode(piece, &mut |b| out.extend_from_slice(b)).unwrap();
            prop_assert_eq!(used.consumed, piece.len());
        }
        prop_assert!(d.is_done());
        prop_assert_eq!(out, body);
        let got = d.trailers();
        prop_assert_eq!(got.get("x-trailer"), Some(trailer.as_str()));
    }
}
