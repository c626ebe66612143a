//! Content codings through the agent, against the project's own server and
//! raw servers on loopback: each coding compiled in round-trips, is
//! advertised in `Accept-Encoding`, and a corrupt or truncated stream is a
//! typed protocol error (Twisted's `ContentDecoderAgent` tests, with brotli
//! and zstd beside gzip). The bombs live in `web_client_bomb.rs`.

mod support;

use std::io::Write;
use std::time::Duration;

use support::{raw_server, wait, web_error, Then};
use twined::defer::Deferred;
use twined::reactor;
use twined::web::client::{get_page, get_page_with, read_body, Agent, PageOptions};
use twined::web::server::{Request, Response, Site};
use twined::web::{ErrorKind, Headers};

/// An HTML-like body of some 40 KiB: several decode steps' worth.
fn page() -> Vec<u8> {
    (0..2000)
        .map(|i| format!("<li><a href=\"/item/{i}\">item {i}</a></li>\n"))
        .collect::<String>()
        .into_bytes()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[cfg(feature = "br")]
fn br(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
        w.write_all(data).unwrap();
    }
    out
}

#[cfg(feature = "zstd")]
fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

/// The body encoded in `coding`, if this build has an encoder for it.
fn encode(coding: &str, data: &[u8]) -> Option<Vec<u8>> {
    match coding {
        "gzip" => Some(gzip(data)),
        #[cfg(feature = "br")]
        "br" => Some(br(data)),
        #[cfg(feature = "zstd")]
        "zstd" => Some(zstd(data)),
        _ => None,
    }
}

/// The codings this build decodes.
fn codings() -> Vec<&'static str> {
    let mut all = vec!["gzip"];
    if cfg!(feature = "br") {
        all.push("br");
    }
    if cfg!(feature = "zstd") {
        all.push("zstd");
    }
    all
}

/// Serves `/<coding>` as the page encoded in that coding, `/headers` as
/// the request's `Accept-Encoding`.
fn serve() -> (String, reactor::Port) {
    let site = Site::new(|req: Request| -> Deferred<Response> {
        let path = req.path().trim_start_matches('/').to_string();
        let r = if path == "headers" {
            let sent = req.headers.get("accept-encoding").unwrap_or("").to_string();
            Response::new(200).body(sent)
        } else if let Some(body) = encode(&path, &page()) {
            Response::new(200)
                .header("Content-Encoding", path)
                .body(body)
        } else {
            Response::new(404)
        };
        twined::defer::succeed(r)
    });
    let port = reactor::listen_tcp("127.0.0.1:0", site).unwrap();
    (format!("http://{}", port.address()), port)
}

/// A raw server answering with `body` under `Content-Encoding: coding`.
fn raw(coding: &str, body: &[u8]) -> (String, reactor::Port) {
    let mut wire = format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: {coding}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    wire.extend_from_slice(body);
    raw_server(
        vec![Box::leak(wire.into_boxed_slice())],
        Duration::ZERO,
        Then::Stay,
    )
}

#[test]
fn accept_encoding_lists_the_codings_compiled_in() {
    let (base, port) = serve();
    let sent = wait(get_page(format!("{base}/headers"))).unwrap();
    assert_eq!(String::from_utf8(sent).unwrap(), codings().join(", "));
    port.stop_listening();
}

#[test]
fn every_coding_compiled_in_round_trips() {
    let (base, port) = serve();
    for coding in codings() {
        let agent = Agent::new();
        let response =
            wait(agent.request("GET", format!("{base}/{coding}"), Headers::new(), None)).unwrap();
        // Decoded: the coding and the encoded length are gone.
        assert_eq!(response.headers.get("content-encoding"), None, "{coding}");
        assert_eq!(response.headers.get("content-length"), None, "{coding}");
        let body = wait(read_body(response)).unwrap();
        assert!(body == page(), "{coding}: {} bytes decoded", body.len());
    }
    port.stop_listening();
}

#[test]
fn a_request_with_its_own_accept_encoding_gets_the_body_as_sent() {
    let (base, port) = serve();
    for coding in codings() {
        let options = PageOptions {
            headers: [("Accept-Encoding", coding)].into_iter().collect(),
            ..Default::default()
        };
        let body = wait(get_page_with(format!("{base}/{coding}"), options)).unwrap();
        assert_eq!(Some(body), encode(coding, &page()), "{coding}");
    }
    port.stop_listening();
}

#[test]
fn a_corrupt_stream_is_a_protocol_error_in_every_coding() {
    for coding in codings() {
        let mut body = encode(coding, &page()).unwrap();
        // Garbage in the middle of the stream.
        let middle = body.len() / 2;
        for b in &mut body[middle..middle + 16] {
            *b ^= 0x5a;
        }
        assert_protocol_error(coding, &body);
    }
}

/// `body` served with `Content-Encoding: coding` fails the fetch with a
/// protocol error.
fn assert_protocol_error(coding: &str, body: &[u8]) {
    let (base, port) = raw(coding, body);
    let failure = wait(get_page(format!("{base}/"))).unwrap_err();
    assert_eq!(
        web_error(&failure).kind(),
        ErrorKind::Protocol,
        "{coding}: {failure}"
    );
    port.stop_listening();
}

#[test]
fn a_truncated_stream_is_a_protocol_error_in_every_coding() {
    for coding in codings() {
        let body = encode(coding, &page()).unwrap();
        let (base, port) = raw(coding, &body[..body.len() - 8]);
        let failure = wait(get_page(format!("{base}/"))).unwrap_err();
        assert_eq!(
            web_error(&failure).kind(),
            ErrorKind::Protocol,
            "{coding}: {failure}"
        );
        assert!(
            failure.to_string().contains("does not decode"),
            "{coding}: {failure}"
        );
        port.stop_listening();
    }
}

#[test]
fn data_after_the_end_of_the_stream_is_a_protocol_error() {
    for coding in codings() {
        let mut body = encode(coding, b"short").unwrap();
        body.extend_from_slice(b"trailing garbage");
        assert_protocol_error(coding, &body);
    }
}

#[test]
fn stacked_codings_are_refused_with_a_clear_error() {
    let body = gzip(&gzip(b"twice"));
    let (base, port) = raw("gzip, gzip", &body);
    let failure = wait(get_page(format!("{base}/"))).unwrap_err();
    assert_eq!(web_error(&failure).kind(), ErrorKind::Protocol, "{failure}");
    assert!(
        failure.to_string().contains("more than one content coding"),
        "{failure}"
    );
    port.stop_listening();
}

#[test]
fn identity_beside_one_coding_is_ignored() {
    let (base, port) = raw("identity, gzip", &gzip(b"once"));
    assert_eq!(wait(get_page(format!("{base}/"))).unwrap(), b"once");
    port.stop_listening();
}

#[test]
fn an_unknown_coding_is_delivered_as_sent() {
    let (base, port) = raw("compress", b"LZW bytes");
    let agent = Agent::new();
    let response = wait(agent.request("GET", format!("{base}/"), Headers::new(), None)).unwrap();
    assert_eq!(response.headers.get("content-encoding"), Some("compress"));
    assert_eq!(wait(read_body(response)).unwrap(), b"LZW bytes");
    port.stop_listening();
}

#[cfg(feature = "zstd")]
#[test]
fn a_zstd_window_above_8_mib_is_refused() {
    // 16 MiB window declared (no pledged size, so the encoder keeps it).
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
    encoder
        .set_parameter(zstd::stream::raw::CParameter::WindowLog(24))
        .unwrap();
    encoder.write_all(&page()).unwrap();
    let body = encoder.finish().unwrap();
    let (base, port) = raw("zstd", &body);
    let failure = wait(get_page(&format!("{base}/"))).unwrap_err();
    assert_eq!(web_error(&failure).kind(), ErrorKind::Protocol, "{failure}");
    port.stop_listening();
}

#[test]
fn a_head_response_in_any_coding_has_an_empty_body() {
    for coding in codings() {
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Encoding: {coding}\r\nContent-Length: 1000\r\n\r\n"
        );
        let (base, port) = raw_server(
            vec![Box::leak(head.into_bytes().into_boxed_slice())],
            Duration::ZERO,
            Then::Stay,
        );
        let agent = Agent::new();
        let response =
            wait(agent.request("HEAD", format!("{base}/"), Headers::new(), None)).unwrap();
        let body = wait(read_body(response));
        assert_eq!(body.map_err(|f| f.to_string()), Ok(Vec::new()), "{coding}");
        port.stop_listening();
    }
}
