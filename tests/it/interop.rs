//! Real peers over TCP and TLS: rsyslog's `omfwd` (RFC 5424, octet
//! counted) into logrelay, logrelay's `tcp` and `tls` destinations into
//! syslog-ng's `syslog()` source, and syslog-ng's `loggen` into logrelay.
//! rsyslog runs from `target/peers/rsyslog` (unpacked by tests/run.sh with
//! its gtls driver); syslog-ng and loggen are Debian's (syslog-ng-core).
//! Every peer runs in the foreground on a private config in a temp dir,
//! on free loopback ports, and is killed when the test ends.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::harness::{read_lines, wait_for, Server, TestDir};
use crate::pki::Ca;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn wait_count(path: &Path, n: usize, limit: Duration) -> Vec<String> {
    let mut lines = Vec::new();
    let ok = wait_for(limit, || {
        lines = read_lines(path);
        lines.len() >= n
    });
    assert!(
        ok,
        "{}: {} lines, expected {n}: {:?}",
        path.display(),
        lines.len(),
        lines.iter().take(3).collect::<Vec<_>>()
    );
    lines
}

/// A peer process, killed on drop.
struct Peer {
    child: Child,
    name: &'static str,
    _dir: TestDir,
}

impl Peer {
    /// Waits (bounded) until the peer accepts connections on `port`.
    fn wait_listening(&mut self, port: u16) {
        let up = wait_for(Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        if !up {
            let _ = self.child.kill();
            let out = self.child.wait_with_output_lossy();
            panic!("{} does not listen on {port}: {out}", self.name);
        }
    }
}

trait ChildOutput {
    fn wait_with_output_lossy(&mut self) -> String;
}

impl ChildOutput for Child {
    fn wait_with_output_lossy(&mut self) -> String {
        use std::io::Read;
        let _ = self.wait();
        let mut text = String::new();
        if let Some(mut err) = self.stderr.take() {
            let _ = err.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `rsyslogd` and its module dir (with the gtls netstream driver).
fn rsyslog() -> (PathBuf, PathBuf) {
    let private = crate::harness::repo().join("target/peers/rsyslog");
    for root in [private, PathBuf::from("/")] {
        let bin = root.join("usr/sbin/rsyslogd");
        let modules = root.join("usr/lib/x86_64-linux-gnu/rsyslog");
        if bin.exists() && modules.join("lmnsd_gtls.so").exists() {
            return (bin, modules);
        }
    }
    panic!("rsyslogd with the gtls driver not found: run tests/run.sh (as root it unpacks rsyslog and rsyslog-gnutls into target/peers/rsyslog)");
}

/// A foreground rsyslogd on `config` (after a `global(workDirectory)`).
fn start_rsyslog(global: &str, config: &str, wait_port: u16) -> Peer {
    let (bin, modules) = rsyslog();
    let dir = TestDir::new();
    std::fs::create_dir_all(dir.path().join("work")).expect("work dir");
    let text = format!(
        "global(workDirectory=\"{}\" {global})\n{config}",
        dir.path().join("work").display()
    );
    let conf = dir.write("rsyslog.conf", &text);
    let child = Command::new(bin)
        .arg("-n")
        .arg("-f")
        .arg(&conf)
        .arg("-i")
        .arg(dir.path().join("rsyslog.pid"))
        .arg("-M")
        .arg(modules)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rsyslogd");
    let mut peer = Peer {
        child,
        name: "rsyslogd",
        _dir: dir,
    };
    peer.wait_listening(wait_port);
    peer
}

/// A foreground syslog-ng on `config`, with its state files in its dir.
fn start_syslog_ng(config: &str, wait_port: u16) -> Peer {
    let bin = ["/usr/sbin/syslog-ng", "/usr/bin/syslog-ng"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("syslog-ng not found: run tests/run.sh (as root it installs syslog-ng-core)");
    let dir = TestDir::new();
    let conf = dir.write("syslog-ng.conf", &format!("@version: 3.38\n{config}"));
    let child = Command::new(bin)
        .arg("-F")
        .arg("--no-caps")
        .arg("-f")
        .arg(&conf)
        .arg("--persist-file")
        .arg(dir.path().join("syslog-ng.persist"))
        .arg("--pidfile")
        .arg(dir.path().join("syslog-ng.pid"))
        .arg("--control")
        .arg(dir.path().join("syslog-ng.ctl"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn syslog-ng");
    let mut peer = Peer {
        child,
        name: "syslog-ng",
        _dir: dir,
    };
    peer.wait_listening(wait_port);
    peer
}

/// A logrelay server: `source` (a table body, named `in`) -> `${HOST}
/// ${PROGRAM} ${PID} ${MSGID} ${MESSAGE}` lines in `out`.
fn logrelay_sink(source: &str, out: &Path) -> Server {
    Server::start(&format!(
        r#"
[sources.in]
{source}
[destinations.out]
type = "file"
path = "{}"
template = "${{HOST}} ${{PROGRAM}} ${{PID}} ${{MSGID}} ${{MESSAGE}}"
[[paths]]
sources = ["in"]
destinations = ["out"]
"#,
        out.display()
    ))
}

/// RFC 5424 lines from host `peer`, program `app`, pid 42, msgid `ID7`.
fn rfc5424_lines(tag: &str, n: usize) -> String {
    (0..n)
        .map(|i| format!("<13>1 2026-11-27T10:00:00Z peer app 42 ID7 - {tag}-{i}\n"))
        .collect()
}

fn expected(tag: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("peer app 42 ID7 {tag}-{i}"))
        .collect()
}

/// rsyslog: imtcp on a free port (the test writes there) -> omfwd with
/// `action` settings (target and port added).
fn rsyslog_forwarder(global: &str, action: &str, port: u16) -> (Peer, u16) {
    let input = free_port();
    let config = format!(
        "module(load=\"imtcp\")\ninput(type=\"imtcp\" port=\"{input}\" address=\"127.0.0.1\")\n\
         action(type=\"omfwd\" target=\"127.0.0.1\" port=\"{port}\" protocol=\"tcp\" \
         TCP_Framing=\"octet-counted\" template=\"RSYSLOG_SyslogProtocol23Format\" {action})\n"
    );
    (start_rsyslog(global, &config, input), input)
}

fn send(port: u16, text: &str) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.write_all(text.as_bytes()).expect("send");
}

#[test]
fn rsyslog_omfwd_octet_counted_rfc5424_over_tcp() {
    let data = TestDir::new();
    let out = data.path().join("out.log");
    // Octet counting only: a newline-framed stream would not parse.
    let mut sink = logrelay_sink(
        "type = \"tcp\"\nlisten = \"127.0.0.1:0\"\nframing = \"octet_counting\"",
        &out,
    );
    let (_rsyslog, input) = rsyslog_forwarder("", "", sink.addr("in").port());
    send(input, &rfc5424_lines("tcp", 1000));
    let got = wait_count(&out, 1000, Duration::from_secs(30));
    assert_eq!(got, expected("tcp", 1000));
    let stderr = sink.stop();
    assert!(stderr.contains("received=1000"), "{stderr}");
    assert!(!stderr.contains("bad_frames"), "{stderr}");
    assert!(!stderr.contains("malformed"), "{stderr}");
}

#[test]
fn rsyslog_omfwd_over_tls_with_client_certificates() {
    let ca = Ca::new("ca");
    let server = ca.leaf("server", &["logrelay.test", "127.0.0.1"]);
    let client = ca.leaf("client", &["rsyslog.test"]);
    let data = TestDir::new();
    let out = data.path().join("out.log");
    let mut sink = logrelay_sink(
        &format!(
            "type = \"tls\"\nlisten = \"127.0.0.1:0\"\nframing = \"octet_counting\"\n\
             cert = \"{}\"\nkey = \"{}\"\nca = \"{}\"\nverify_client = true\npeer_names = [\"rsyslog.test\"]",
            server.cert.display(),
            server.key.display(),
            ca.cert.display()
        ),
        &out,
    );
    let global = format!(
        "DefaultNetstreamDriverCAFile=\"{}\" DefaultNetstreamDriverCertFile=\"{}\" DefaultNetstreamDriverKeyFile=\"{}\"",
        ca.cert.display(),
        client.cert.display(),
        client.key.display()
    );
    let (_rsyslog, input) = rsyslog_forwarder(
        &global,
        "StreamDriver=\"gtls\" StreamDriverMode=\"1\" StreamDriverAuthMode=\"x509/name\" StreamDriverPermittedPeers=\"logrelay.test\"",
        sink.addr("in").port(),
    );
    send(input, &rfc5424_lines("tls", 1000));
    let got = wait_count(&out, 1000, Duration::from_secs(30));
    assert_eq!(got, expected("tls", 1000));
    let stderr = sink.stop();
    assert!(stderr.contains("received=1000"), "{stderr}");
    assert!(!stderr.contains("tls_handshake_failures"), "{stderr}");
}

/// A logrelay forwarder: tcp source `in` on port 0 -> destination `dest`.
fn forwarder(dest: &str) -> Server {
    Server::start(&format!(
        r#"
[global]
shutdown_grace = "2s"
[sources.in]
type = "tcp"
listen = "127.0.0.1:0"
[destinations.fwd]
{dest}
[[paths]]
sources = ["in"]
destinations = ["fwd"]
"#
    ))
}

const SYSLOG_NG_OUT: &str = "${HOST} ${PROGRAM} ${PID} ${MSGID} ${MSG}\\n";

#[test]
fn tcp_destination_delivers_to_syslog_ng_syslog_source() {
    let data = TestDir::new();
    let out = data.path().join("syslog-ng.log");
    let port = free_port();
    let _syslog_ng = start_syslog_ng(
        &format!(
            "options {{ keep_hostname(yes); }};\n\
             source s {{ syslog(ip(\"127.0.0.1\") port({port}) transport(\"tcp\")); }};\n\
             destination d {{ file(\"{}\" template(\"{SYSLOG_NG_OUT}\")); }};\n\
             log {{ source(s); destination(d); }};\n",
            out.display()
        ),
        port,
    );
    let mut fwd = forwarder(&format!("type = \"tcp\"\nservers = [\"127.0.0.1:{port}\"]"));
    send(fwd.addr("in").port(), &rfc5424_lines("tcp", 1000));
    let got = wait_count(&out, 1000, Duration::from_secs(30));
    assert_eq!(got, expected("tcp", 1000));
    let stderr = fwd.stop();
    assert!(stderr.contains("written=1000"), "{stderr}");
}

#[test]
fn tls_destination_delivers_to_syslog_ng_with_mutual_tls() {
    let ca = Ca::new("ca");
    let server = ca.leaf("server", &["127.0.0.1"]);
    let client = ca.leaf("client", &["logrelay.test"]);
    let data = TestDir::new();
    let out = data.path().join("syslog-ng.log");
    let port = free_port();
    let _syslog_ng = start_syslog_ng(
        &format!(
            "options {{ keep_hostname(yes); }};\n\
             source s {{ syslog(ip(\"127.0.0.1\") port({port}) transport(\"tls\")\n\
               tls(key-file(\"{}\") cert-file(\"{}\") ca-file(\"{}\") peer-verify(required-trusted))); }};\n\
             destination d {{ file(\"{}\" template(\"{SYSLOG_NG_OUT}\")); }};\n\
             log {{ source(s); destination(d); }};\n",
            server.key.display(),
            server.cert.display(),
            ca.cert.display(),
            out.display()
        ),
        port,
    );
    let mut fwd = forwarder(&format!(
        "type = \"tls\"\nservers = [\"127.0.0.1:{port}\"]\ntls = {{ ca = \"{}\", cert = \"{}\", key = \"{}\" }}",
        ca.cert.display(),
        client.cert.display(),
        client.key.display()
    ));
    send(fwd.addr("in").port(), &rfc5424_lines("tls", 1000));
    let got = wait_count(&out, 1000, Duration::from_secs(30));
    assert_eq!(got, expected("tls", 1000));
    let stderr = fwd.stop();
    assert!(stderr.contains("written=1000"), "{stderr}");
}

/// Runs loggen with `args` against `port`; returns the count it reports
/// having sent.
fn loggen(args: &[&str], port: u16) -> u64 {
    loggen_sent(spawn_loggen(args, port), args)
}

/// Starts loggen with `args` against `port`, in the background.
fn spawn_loggen(args: &[&str], port: u16) -> Child {
    let bin = ["/usr/bin/loggen", "/usr/sbin/loggen"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("loggen not found: run tests/run.sh (as root it installs syslog-ng-core)");
    Command::new(bin)
        .args(args)
        .arg("127.0.0.1")
        .arg(port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn loggen")
}

/// Waits (bounded) for loggen to end well; the count it reports.
fn loggen_sent(mut child: Child, args: &[&str]) -> u64 {
    let done = wait_for(Duration::from_secs(60), || {
        matches!(child.try_wait(), Ok(Some(_)))
    });
    if !done {
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("loggen output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(done && out.status.success(), "loggen {args:?}: {text}");
    // The last count= is the total (runs over a second print progress).
    text.split(|c: char| c == ',' || c.is_whitespace())
        .rev()
        .find_map(|w| w.strip_prefix("count="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count= in loggen's output: {text}"))
}

/// The sequence numbers of loggen's messages (`seq: 0000000042, ...`).
fn loggen_seqs(lines: &[String]) -> BTreeSet<u64> {
    lines
        .iter()
        .filter_map(|l| {
            let rest = &l[l.find("seq: ")? + 5..];
            rest.get(..10)?.parse().ok()
        })
        .collect()
}

fn loggen_into(source: &str, args: &[&str]) {
    let n = 20_000usize;
    let data = TestDir::new();
    let out = data.path().join("out.log");
    let mut sink = logrelay_sink(source, &out);
    let number = n.to_string();
    let mut all = vec!["--rate", "50000", "--size", "200"];
    all.extend_from_slice(&["--number", &number, "--interval", "60"]);
    all.extend_from_slice(args);
    let sent = loggen(&all, sink.addr("in").port());
    assert_eq!(sent, n as u64, "loggen sent what it was asked to");
    check_loggen_lines(&mut sink, &out, n);
}

/// All `n` of loggen's lines are in `out`, each sequence number once,
/// and `sink` counted exactly `n` received.
fn check_loggen_lines(sink: &mut Server, out: &Path, n: usize) {
    let got = wait_count(out, n, Duration::from_secs(30));
    let stderr = sink.stop();
    assert_eq!(read_lines(out).len(), n, "nothing more arrives");
    let seqs = loggen_seqs(&got);
    assert_eq!(seqs.len(), n, "every sequence number once");
    assert_eq!(seqs.first().copied(), Some(0));
    assert_eq!(seqs.last().copied(), Some(n as u64 - 1));
    assert!(stderr.contains(&format!("received={n}")), "{stderr}");
    assert!(!stderr.contains("malformed"), "{stderr}");
}

#[test]
fn loggen_rfc5424_into_the_tcp_source() {
    loggen_into(
        "type = \"tcp\"\nlisten = \"127.0.0.1:0\"",
        &["--inet", "--stream", "--syslog-proto"],
    );
}

#[test]
fn loggen_over_tls_into_the_tls_source() {
    let ca = Ca::new("ca");
    let server = ca.leaf("server", &["127.0.0.1"]);
    loggen_into(
        &format!(
            "type = \"tls\"\nlisten = \"127.0.0.1:0\"\ncert = \"{}\"\nkey = \"{}\"",
            server.cert.display(),
            server.key.display()
        ),
        &["--use-ssl", "--syslog-proto"],
    );
}

/// loggen closes its TLS connection while logrelay is behind (stopped
/// here, while thousands of lines still sit in loggen's socket): all of
/// them arrive. loggen never reads, so TLS 1.3 session tickets from the
/// listener would sit unread in its socket, and Linux resets a socket
/// closed with unread data, throwing away what it had not sent yet (CI
/// once lost 718 of 20,000 lines that way; this test, 3,600 of 5,000).
#[test]
fn loggen_over_tls_closing_while_logrelay_is_behind_loses_nothing() {
    let ca = Ca::new("ca");
    let server = ca.leaf("server", &["127.0.0.1"]);
    let source = format!(
        "type = \"tls\"\nlisten = \"127.0.0.1:0\"\ncert = \"{}\"\nkey = \"{}\"",
        server.cert.display(),
        server.key.display()
    );
    let n = 5_000usize;
    let data = TestDir::new();
    let out = data.path().join("out.log");
    let mut sink = logrelay_sink(&source, &out);
    let number = n.to_string();
    let args = [
        "--rate",
        "2000",
        "--size",
        "200",
        "--number",
        &number,
        "--interval",
        "60",
        "--use-ssl",
        "--syslog-proto",
    ];
    let mut child = spawn_loggen(&args, sink.addr("in").port());
    // The first lines are stored: the handshake is over.
    let flowing = wait_for(Duration::from_secs(20), || !read_lines(&out).is_empty());
    sink.signal("STOP");
    // The rest (under 1 MB) fits the socket buffers: loggen ends.
    let ended = wait_for(Duration::from_secs(20), || {
        matches!(child.try_wait(), Ok(Some(_)))
    });
    let stored_while_stopped = read_lines(&out).len();
    sink.signal("CONT");
    assert!(flowing, "no line from loggen within 20 s");
    assert!(
        ended,
        "loggen did not end while logrelay was stopped (socket buffers too small for this test)"
    );
    assert!(
        stored_while_stopped < n,
        "loggen's lines were all stored before it ended: the close was not exercised"
    );
    assert_eq!(loggen_sent(child, &args), n as u64);
    check_loggen_lines(&mut sink, &out, n);
}

#[test]
fn rsyslog_omrelp_over_tls_into_the_relp_source() {
    let ca = Ca::new("ca");
    let server = ca.leaf("server", &["logrelay.test", "127.0.0.1"]);
    let client = ca.leaf("client", &["rsyslog.test"]);
    let data = TestDir::new();
    let out = data.path().join("out.log");
    let mut sink = logrelay_sink(
        &format!(
            "type = \"relp\"\nlisten = \"127.0.0.1:0\"\n\
             tls = {{ cert = \"{}\", key = \"{}\", ca = \"{}\", verify_client = true, peer_names = [\"rsyslog.test\"] }}",
            server.cert.display(),
            server.key.display(),
            ca.cert.display()
        ),
        &out,
    );
    let input = free_port();
    let config = format!(
        "module(load=\"imtcp\")\nmodule(load=\"omrelp\")\n\
         input(type=\"imtcp\" port=\"{input}\" address=\"127.0.0.1\")\n\
         action(type=\"omrelp\" target=\"127.0.0.1\" port=\"{}\" tls=\"on\" tls.cacert=\"{}\" \
         tls.mycert=\"{}\" tls.myprivkey=\"{}\" tls.authmode=\"name\" tls.permittedpeer=[\"logrelay.test\"] \
         template=\"RSYSLOG_SyslogProtocol23Format\")\n",
        sink.addr("in").port(),
        ca.cert.display(),
        client.cert.display(),
        client.key.display()
    );
    let _rsyslog = start_rsyslog("", &config, input);
    send(input, &rfc5424_lines("relp-tls", 1000));
    let got = wait_count(&out, 1000, Duration::from_secs(30));
    assert_eq!(got, expected("relp-tls", 1000));
    let stderr = sink.stop();
    assert!(stderr.contains("received=1000"), "{stderr}");
    assert!(!stderr.contains("tls_handshake_failures"), "{stderr}");
}

#[test]
fn relp_over_tls_destination_delivers_to_rsyslog_imrelp() {
    let ca = Ca::new("ca");
    let server = ca.leaf("server", &["127.0.0.1"]);
    let client = ca.leaf("client", &["logrelay.test"]);
    let data = TestDir::new();
    let out = data.path().join("rsyslog.log");
    let port = free_port();
    let config = format!(
        "module(load=\"imrelp\")\n\
         input(type=\"imrelp\" port=\"{port}\" address=\"127.0.0.1\" tls=\"on\" tls.cacert=\"{}\" \
         tls.mycert=\"{}\" tls.myprivkey=\"{}\" tls.authmode=\"name\" tls.permittedpeer=[\"logrelay.test\"])\n\
         template(name=\"m\" type=\"string\" string=\"%hostname% %app-name% %procid% %msgid% %msg%\\n\")\n\
         action(type=\"omfile\" file=\"{}\" template=\"m\")\n",
        ca.cert.display(),
        server.cert.display(),
        server.key.display(),
        out.display()
    );
    let _rsyslog = start_rsyslog("", &config, port);
    let mut fwd = forwarder(&format!(
        "type = \"relp\"\nservers = [\"127.0.0.1:{port}\"]\ntls = {{ ca = \"{}\", cert = \"{}\", key = \"{}\" }}",
        ca.cert.display(),
        client.cert.display(),
        client.key.display()
    ));
    send(fwd.addr("in").port(), &rfc5424_lines("relp-tls", 1000));
    let got = wait_count(&out, 1000, Duration::from_secs(30));
    assert_eq!(got, expected("relp-tls", 1000));
    let stderr = fwd.stop();
    assert!(stderr.contains("written=1000"), "{stderr}");
}

#[test]
fn tls_destination_delivers_to_rsyslog_gtls() {
    let ca = Ca::new("ca");
    let server = ca.leaf("server", &["127.0.0.1"]);
    let data = TestDir::new();
    let out = data.path().join("rsyslog.log");
    let port = free_port();
    let global = format!(
        "DefaultNetstreamDriver=\"gtls\" DefaultNetstreamDriverCAFile=\"{}\" DefaultNetstreamDriverCertFile=\"{}\" DefaultNetstreamDriverKeyFile=\"{}\"",
        ca.cert.display(),
        server.cert.display(),
        server.key.display()
    );
    let config = format!(
        "module(load=\"imtcp\" StreamDriver.Name=\"gtls\" StreamDriver.Mode=\"1\" StreamDriver.AuthMode=\"anon\")\n\
         input(type=\"imtcp\" port=\"{port}\" address=\"127.0.0.1\")\n\
         template(name=\"m\" type=\"string\" string=\"%hostname% %app-name% %procid% %msgid% %msg%\\n\")\n\
         action(type=\"omfile\" file=\"{}\" template=\"m\")\n",
        out.display()
    );
    let _rsyslog = start_rsyslog(&global, &config, port);
    let mut fwd = forwarder(&format!(
        "type = \"tls\"\nservers = [\"127.0.0.1:{port}\"]\ntls = {{ ca = \"{}\" }}",
        ca.cert.display()
    ));
    send(fwd.addr("in").port(), &rfc5424_lines("gtls", 1000));
    let got = wait_count(&out, 1000, Duration::from_secs(30));
    assert_eq!(got, expected("gtls", 1000));
    let stderr = fwd.stop();
    assert!(stderr.contains("written=1000"), "{stderr}");
}
