//! The Kafka side of the Kafka tests: a real Kafka-API broker (tansu,
//! built by `tests/run.sh` into `target/peers/tansu`) on a free loopback
//! port in a temp dir, stopped on drop, and an rdkafka client of our own
//! for the independent reads and writes (Debian's kcat cannot talk to
//! tansu).
//!
//! tansu's gaps the tests work around (from its own compatibility notes
//! and seen here): topics are never created on first use (tests create
//! them), and ListOffsets / offset-reset queries can hang librdkafka, so
//! the reader assigns explicit offsets instead of asking for "beginning".

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::harness::{repo, TestDir};

/// Whether process `pid` holds the listening socket of 127.0.0.1:`port`
/// (`/proc/net/tcp`'s LISTEN rows, the socket inodes among its fds).
fn listens(pid: u32, port: u16) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return true; // no procfs: trust the connect
    };
    let local = format!("0100007F:{port:04X}");
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() > 9 && f[1] == local && f[3] == "0A")
        .map(|f| format!("socket:[{}]", f[9]))
        .collect();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.flatten().any(|fd| {
                std::fs::read_link(fd.path())
                    .is_ok_and(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
            })
        })
        .unwrap_or(false)
}

/// The broker's binary: `tests/run.sh` builds it once.
pub fn tansu() -> PathBuf {
    let path = repo().join("target/peers/tansu/bin/tansu");
    assert!(
        path.exists(),
        "{} is missing: tests/run.sh builds it (cargo install tansu --version 0.6.0 --features dynostore,libsql --root target/peers/tansu)",
        path.display()
    );
    path
}

/// Where the broker keeps its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// In memory: lost when the broker stops.
    Memory,
    /// An SQLite file in the broker's directory: survives a restart.
    Sqlite,
}

/// How [`Broker::start_with`] starts a broker ([`Broker::start`] takes
/// the storage and leaves the rest off).
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub storage: Storage,
    /// `--authentication`: every client must pass SASL SCRAM (tansu
    /// 0.6.0 has no PLAIN). Users are made without it first
    /// ([`Broker::create_user`], then [`Broker::require_authentication`]).
    pub authentication: bool,
    /// The port advertised to clients in metadata when it is not the
    /// broker's own: a TLS terminator's in front of it.
    pub advertised_port: Option<u16>,
}

pub struct Broker {
    pub dir: TestDir,
    port: u16,
    storage: Storage,
    authentication: bool,
    advertised_port: Option<u16>,
    child: Option<Child>,
    log: Arc<Mutex<String>>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Broker {
    pub fn start(storage: Storage) -> Broker {
        Broker::start_with(Options {
            storage,
            authentication: false,
            advertised_port: None,
        })
    }

    pub fn start_with(options: Options) -> Broker {
        let mut broker = Broker {
            dir: TestDir::new(),
            port: free_port(),
            storage: options.storage,
            authentication: options.authentication,
            advertised_port: options.advertised_port,
            child: None,
            log: Arc::new(Mutex::new(String::new())),
        };
        broker.run();
        broker
    }

    /// `127.0.0.1:PORT`, for `brokers = [...]`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The broker's own (plaintext) port.
    #[allow(dead_code)] // for tests with a terminator in front
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The broker's own output so far (for failure messages).
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn run(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let advertised = format!(
            "tcp://127.0.0.1:{}",
            self.advertised_port.unwrap_or(self.port)
        );
        let storage = match self.storage {
            Storage::Memory => "memory://tansu/".to_owned(),
            Storage::Sqlite => "sqlite://tansu.db".to_owned(),
        };
        let mut command = Command::new(tansu());
        command
            .args(["broker", "--listener-url", &url])
            .args(["--advertised-listener-url", &advertised])
            .args(["--storage-engine", &storage]);
        if self.authentication {
            command.arg("--authentication");
        }
        let mut child = command
            .current_dir(self.dir.path())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tansu");
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = self.log.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
                    if log.len() < 1 << 20 {
                        log.push_str(&line);
                        log.push('\n');
                    }
                }
            });
        }
        let pid = child.id();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        // Listening, and by this broker: another test's broker may have
        // taken the port between `free_port` and the start (then this one
        // exits, and its clients would talk to the other).
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err()
            || !listens(pid, self.port)
        {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "tansu on port {} exited ({status}):\n{}",
                    self.port,
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {} within 20 s:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the broker (SIGKILL: as a crash would).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the broker with SIGTERM (SIGKILL after 10 s), so that it
    /// leaves its SQLite file whole.
    #[allow(dead_code)] // for the authentication tests
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the broker and starts it again on the same storage with
    /// `--authentication`: tansu takes new users only without it
    /// ([`Broker::create_user`]) and keeps them only in SQLite storage.
    /// On a new port: the old one, free for a moment, may have gone to
    /// another test's broker (call before any client has the address).
    #[allow(dead_code)] // for the authentication tests
    pub fn require_authentication(&mut self) {
        assert_eq!(self.storage, Storage::Sqlite, "users live in SQLite");
        self.stop();
        self.port = free_port();
        self.authentication = true;
        self.run();
    }

    /// Creates SCRAM user `name` (`mechanism`: `scram256` or `scram512`,
    /// tansu's names) with `password`, on a broker without
    /// `--authentication`.
    #[allow(dead_code)] // for the authentication tests
    pub fn create_user(&self, name: &str, password: &str, mechanism: &str) {
        let out = Command::new(tansu())
            .args(["user", "create", name, password])
            .args(["--mechanism", mechanism])
            .args(["--broker", &format!("tcp://127.0.0.1:{}", self.port)])
            .current_dir(self.dir.path())
            .output()
            .expect("run tansu user create");
        assert!(
            out.status.success(),
            "tansu user create {name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Freezes the broker (SIGSTOP) or thaws it (SIGCONT): an outage in
    /// which the cluster keeps its data, as a replicated cluster would.
    pub fn freeze(&self, frozen: bool) {
        if let Some(child) = &self.child {
            let signal = if frozen { "-STOP" } else { "-CONT" };
            let status = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status()
                .expect("run kill");
            assert!(status.success(), "kill {signal} tansu");
        }
    }

    /// Starts it again on the same port and storage.
    pub fn restart(&mut self) {
        self.kill();
        self.run();
    }

    /// Creates `topic` with `partitions` partitions (tansu creates none by
    /// itself).
    pub fn create_topic(&self, topic: &str, partitions: u32) {
        let out = Command::new(tansu())
            .args(["topic", "create", topic])
            .args(["--partitions", &partitions.to_string()])
            .args(["--broker", &format!("tcp://127.0.0.1:{}", self.port)])
            .current_dir(self.dir.path())
            .output()
            .expect("run tansu topic create");
        assert!(
            out.status.success(),
            "tansu topic create {topic}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[allow(dead_code)] // for tests that look into the broker's files
    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    #[allow(dead_code)] // as `path`
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One record as a consumer reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
    /// The record's timestamp, milliseconds since the epoch.
    pub timestamp: Option<i64>,
}

fn client(broker: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", broker)
        .set("socket.timeout.ms", "5000")
        .set("message.timeout.ms", "20000");
    c
}

/// Reads partitions `0..partitions` of `topic` from offset 0 until
/// `want` records came or `limit` passed; the records in the order read
/// (per partition, by offset).
pub fn read(
    broker: &str,
    topic: &str,
    partitions: i32,
    want: usize,
    limit: Duration,
) -> Vec<Record> {
    read_with(broker, &[], topic, partitions, want, limit)
}

/// [`read`] with extra librdkafka `settings` (`security.protocol`,
/// `sasl.*`, `ssl.*`).
pub fn read_with(
    broker: &str,
    settings: &[(&str, &str)],
    topic: &str,
    partitions: i32,
    want: usize,
    limit: Duration,
) -> Vec<Record> {
    let mut config = client(broker);
    for (key, value) in settings {
        config.set(*key, *value);
    }
    let consumer: BaseConsumer = config
        .set("group.id", format!("test-reader-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .expect("test consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Offset(0))
            .expect("assign");
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + limit;
    while out.len() < want && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Record {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().unwrap_or_default().to_vec(),
                    headers,
                    timestamp: m.timestamp().to_millis(),
                });
            }
            Some(Err(e)) => eprintln!("test reader: {e}"),
            None => {}
        }
    }
    out
}

/// Produces `records` (key, value) to `topic` and waits until the broker
/// acknowledged every one.
pub fn produce(broker: &str, topic: &str, records: &[(Option<&[u8]>, &[u8])]) {
    let producer: BaseProducer = client(broker)
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .expect("test producer");
    for (key, value) in records {
        let mut record = BaseRecord::<[u8], [u8]>::to(topic).payload(value);
        if let Some(key) = key {
            record = record.key(key);
        }
        let mut record = Some(record);
        while let Some(r) = record.take() {
            if let Err((e, r)) = producer.send(r) {
                assert!(
                    matches!(
                        e.rdkafka_error_code(),
                        Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                    ),
                    "test producer: {e}"
                );
                producer.poll(Duration::from_millis(50));
                record = Some(r);
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer
        .flush(Duration::from_secs(30))
        .expect("test producer flush");
}

/// Broker start, topic creation and a round trip through the test client:
/// the ground the other Kafka tests stand on.
#[test]
fn broker_and_test_client_round_trip() {
    let broker = Broker::start(Storage::Memory);
    broker.create_topic("t", 2);
    let values: Vec<Vec<u8>> = (0..100).map(|i| format!("v{i}").into_bytes()).collect();
    let records: Vec<(Option<&[u8]>, &[u8])> = values
        .iter()
        .map(|v| (Some(&b"k"[..]), v.as_slice()))
        .collect();
    produce(&broker.addr(), "t", &records);
    let got = read(&broker.addr(), "t", 2, 100, Duration::from_secs(20));
    assert_eq!(got.len(), 100, "broker log:\n{}", broker.log());
    // One key: one partition, in order.
    let got_values: Vec<Vec<u8>> = got.iter().map(|r| r.value.clone()).collect();
    assert_eq!(got_values, values);
    assert!(got.iter().all(|r| r.partition == got[0].partition));
}
