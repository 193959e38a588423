//! Origin ids end to end: a line read from a file (and one from a pipe)
//! gets its id at the client, travels over RELP and TCP in RFC 5424
//! (`[logrelay@32473 id="..."]`) and comes out of the server's `json`
//! format as `origin`, the same on both paths.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;

use crate::harness::{wait_lines, Server, TestDir};

#[test]
fn file_and_pipe_lines_arrive_with_their_origin_ids_over_relp_and_tcp() {
    let data = TestDir::new();
    let out = data.path().join("out.json");
    let server = Server::start(&format!(
        r#"
[sources.tcp]
type = "tcp"
listen = "127.0.0.1:0"
[sources.relp]
type = "relp"
listen = "127.0.0.1:0"
[destinations.out]
type = "file"
path = "{}"
format = "json"
[[paths]]
sources = ["tcp", "relp"]
destinations = ["out"]
"#,
        out.display()
    ));

    let inbox = data.path().join("inbox");
    std::fs::create_dir(&inbox).expect("mkdir");
    let log = inbox.join("app.log");
    // A plain line, an RFC 3164 line, and a line long enough that the
    // next one starts past the 256-byte fingerprint.
    let long = format!("long {}", "x".repeat(300));
    let content =
        format!("first plain line\n<13>Nov 27 07:00:00 h app[7]: bsd line\n{long}\nlast\n");
    std::fs::write(&log, &content).expect("write");
    let fifo = data.path().join("in.fifo");
    let client = Server::start(&format!(
        r#"
[global]
hostname = "client-1"
state_dir = "state"
[sources.files]
type = "file"
paths = ["{}/*.log"]
start_at = "beginning"
[sources.pipe]
type = "pipe"
path = "{}"
[destinations.relp]
type = "relp"
servers = ["127.0.0.1:{}"]
[destinations.tcp]
type = "tcp"
servers = ["127.0.0.1:{}"]
[[paths]]
sources = ["files", "pipe"]
destinations = ["relp", "tcp"]
"#,
        inbox.display(),
        fifo.display(),
        server.port("relp"),
        server.port("tcp"),
    ));
    std::fs::write(&fifo, "from the pipe\n").expect("write to the FIFO");

    let lines = wait_lines(&out, 10);
    assert_eq!(lines.len(), 10, "each of 5 messages once per path");
    let mut by_message: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in &lines {
        let value: serde_json::Value = serde_json::from_slice(line).expect("json");
        let message = value["message"].as_str().expect("message").to_owned();
        let origin = value["origin"].as_str().expect("origin").to_owned();
        by_message.entry(message).or_default().push(origin);
    }

    let meta = std::fs::metadata(&log).expect("stat");
    let bytes = content.as_bytes();
    let file_id = |start: usize, end: usize| {
        let crc = crc32fast::hash(&bytes[..end.min(256)]);
        format!(
            "client-1:f:{:x}-{:x}-{crc:08x}:{start}",
            meta.dev(),
            meta.ino()
        )
    };
    let starts: Vec<usize> = std::iter::once(0)
        .chain(content.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let expected_file = [
        ("first plain line".to_owned(), file_id(starts[0], starts[1])),
        ("bsd line".to_owned(), file_id(starts[1], starts[2])),
        (long.clone(), file_id(starts[2], starts[3])),
        ("last".to_owned(), file_id(starts[3], starts[4])),
    ];
    for (message, id) in &expected_file {
        assert_eq!(
            by_message.get(message),
            Some(&vec![id.clone(), id.clone()]),
            "{message}: {by_message:?}"
        );
    }
    let pipe_ids = by_message.get("from the pipe").expect("the pipe line");
    assert_eq!(pipe_ids.len(), 2);
    assert_eq!(pipe_ids[0], pipe_ids[1], "one id on both paths");
    let (prefix, seq) = pipe_ids[0].rsplit_once(':').expect("HOST:p:RUN:SEQ");
    assert_eq!(seq, "0");
    let run = prefix.strip_prefix("client-1:p:").expect("pipe prefix");
    assert_eq!(run.len(), 16, "{run}");
    assert!(run.bytes().all(|b| b.is_ascii_hexdigit()), "{run}");
    drop(client);
}

/// A RELP source gives messages that arrive without an origin id one of
/// its own (`HOST:r:RUN:SEQ`), counting up; one that arrives with an id
/// keeps it.
#[test]
fn relp_source_numbers_messages_without_an_origin_and_keeps_existing_ones() {
    let data = TestDir::new();
    let out = data.path().join("out.json");
    let server = Server::start(&format!(
        r#"
[global]
hostname = "server-1"
[sources.relp]
type = "relp"
listen = "127.0.0.1:0"
[destinations.out]
type = "file"
path = "{}"
format = "json"
[[paths]]
sources = ["relp"]
destinations = ["out"]
"#,
        out.display()
    ));
    let client = Server::start(&format!(
        r#"
[sources.tcp]
type = "tcp"
listen = "127.0.0.1:0"
[destinations.relp]
type = "relp"
servers = ["127.0.0.1:{}"]
[[paths]]
sources = ["tcp"]
destinations = ["relp"]
"#,
        server.port("relp")
    ));
    client.send_tcp(
        "tcp",
        b"<14>1 2026-11-27T07:00:00Z h a - - - one\n\
          <14>1 2026-11-27T07:00:01Z h a - - [logrelay@32473 id=\"up:f:1-2-3:4\"] two\n\
          <14>1 2026-11-27T07:00:02Z h a - - - three\n",
    );
    let lines = wait_lines(&out, 3);
    let origins: Vec<(String, String)> = lines
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_slice(l).expect("json");
            (
                v["message"].as_str().expect("message").to_owned(),
                v["origin"].as_str().expect("origin").to_owned(),
            )
        })
        .collect();
    assert_eq!(origins.len(), 3);
    assert_eq!(origins[1], ("two".to_owned(), "up:f:1-2-3:4".to_owned()));
    let run = origins[0]
        .1
        .strip_prefix("server-1:r:")
        .and_then(|rest| rest.strip_suffix(":0"))
        .expect("HOST:r:RUN:0");
    assert_eq!(run.len(), 16, "{run}");
    assert_eq!(origins[0].0, "one");
    assert_eq!(
        origins[2],
        ("three".to_owned(), format!("server-1:r:{run}:1"))
    );
    drop(client);
}
