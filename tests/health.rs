//! `/livez` and `/readyz` as etcd 3.5.11+/3.6 serve them (etcd 3.4, the reference binary
//! here, has neither): the named checks, `?verbose`, `?exclude=`, the text and the
//! status codes, on the client port and on `--listen-metrics-urls`. Requests are written
//! by hand on a TCP connection, as curl sends them.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::{free_port, Kind, Server};

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request, `Connection: close`, the answer read to its end.
fn request(port: u16, method: &str, path: &str) -> Answer {
    request_to(port, &format!("127.0.0.1:{port}"), method, path)
}

/// As [`request`], naming `host` in the Host header.
fn request_to(port: u16, host: &str, method: &str, path: &str) -> Answer {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}

fn ok(a: &Answer, body: &str) {
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body, body);
    assert_eq!(a.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(a.header("x-content-type-options"), Some("nosniff"));
}

const ALL_OK: &str =
    "[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\n[+]non_learner ok\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn livez_and_readyz_as_etcd() {
    let metrics = free_port();
    let metrics_url = format!("http://127.0.0.1:{metrics}");
    let server = tokio::task::spawn_blocking(move || {
        Server::start(Kind::Metastore, &["--listen-metrics-urls", &metrics_url])
    })
    .await
    .unwrap();
    let port = server.port();
    for p in [port, metrics] {
        ok(&request(p, "GET", "/livez"), "ok\n");
        ok(
            &request(p, "GET", "/livez?verbose"),
            "[+]serializable_read ok\nok\n",
        );
        ok(&request(p, "GET", "/readyz"), "ok\n");
        ok(
            &request(p, "GET", "/readyz?verbose"),
            &format!("{ALL_OK}ok\n"),
        );
        ok(
            &request(
                p,
                "GET",
                "/readyz?verbose&exclude=linearizable_read&exclude=no_such_check",
            ),
            "[+]data_corruption ok\n[+]serializable_read ok\n[+]non_learner ok\nok\n",
        );
        ok(
            &request(p, "GET", "/readyz/linearizable_read?verbose"),
            "[+]linearizable_read ok\nok\n",
        );
        ok(&request(p, "GET", "/livez/serializable_read"), "ok\n");
        for path in ["/livez", "/readyz", "/readyz/non_learner"] {
            let a = request(p, "POST", path);
            assert_eq!(a.status, 405);
            assert_eq!(a.body, "Method Not Allowed\n");
            assert_eq!(a.header("allow"), Some("GET"));
        }
    }

    // A raised CORRUPT alarm fails data_corruption: 503 and every line, verbose or not.
    let mut client = etcd_client::Client::connect([server.endpoint.clone()], None)
        .await
        .unwrap();
    let status = client.status().await.unwrap();
    let member_id = status.header().unwrap().member_id();
    let mut options = etcd_client::AlarmOptions::new();
    options.with_member(member_id);
    client
        .alarm(
            etcd_client::AlarmAction::Activate,
            etcd_client::AlarmType::Corrupt,
            Some(options),
        )
        .await
        .unwrap();
    let failed = "[-]data_corruption failed: alarm activated: CORRUPT\n\
                  [+]serializable_read ok\n[+]linearizable_read ok\n[+]non_learner ok\n\n";
    for p in [port, metrics] {
        for path in ["/readyz", "/readyz?verbose"] {
            let a = request(p, "GET", path);
            assert_eq!(a.status, 503, "{path}");
            assert_eq!(a.body, failed, "{path}");
            assert_eq!(a.header("content-type"), Some("text/plain; charset=utf-8"));
        }
        let a = request(p, "GET", "/readyz/data_corruption");
        assert_eq!(a.status, 503);
        assert_eq!(
            a.body,
            "[-]data_corruption failed: alarm activated: CORRUPT\n\n"
        );
        ok(
            &request(p, "GET", "/readyz?exclude=data_corruption"),
            "ok\n",
        );
        ok(&request(p, "GET", "/livez"), "ok\n");
    }
    drop(server);
}

/// `--host-whitelist`: a plain-HTTP request naming another host gets etcd's 421 and text;
/// the listed hosts (with any port) are served; the metrics port is not checked.
#[test]
fn host_whitelist_as_etcd() {
    let metrics = free_port();
    let metrics_url = format!("http://127.0.0.1:{metrics}");
    let server = Server::start(
        Kind::Metastore,
        &[
            "--host-whitelist",
            "127.0.0.1,localhost",
            "--listen-metrics-urls",
            &metrics_url,
        ],
    );
    let port = server.port();
    ok(&request(port, "GET", "/livez"), "ok\n");
    ok(&request_to(port, "localhost", "GET", "/livez"), "ok\n");
    let a = request_to(port, "evil.example:2379", "GET", "/health");
    assert_eq!(a.status, 421);
    assert_eq!(
        a.body,
        "\netcd received your request, but the Host header was unrecognized.\n\n\
         To fix this, choose one of the following options:\n\
         - Enable TLS, then any HTTPS request will be allowed.\n\
         - Add the hostname you want to use to the whitelist in settings.\n  \
         - e.g. etcd --host-whitelist \"evil.example\"\n\n\
         This requirement has been added to help prevent \"DNS Rebinding\" attacks \
         (CVE-2018-5702).\n\n"
    );
    ok(
        &request_to(metrics, "evil.example", "GET", "/livez"),
        "ok\n",
    );
    // gRPC is not checked
    assert_eq!(server.etcdctl(&["put", "k", "v"], None).code, 0);
}
