//! How a failure is classified: the one place where an error's kind is
//! decided (DESIGN.md, "Failures have a kind"). Every destination asks
//! here ([`crate::dest::delivery`] re-exports it all) and none decides a
//! kind itself.
//!
//! # The classification table
//!
//! | where | error | kind | reason |
//! |---|---|---|---|
//! | file system, anywhere | ENOSPC, EDQUOT | transient | `no_space` |
//! | file system, anywhere | EROFS | transient | `read_only` |
//! | file system, anywhere | EIO, ESTALE | transient | `io` |
//! | file system, anywhere | EACCES, EPERM | transient | `permission` |
//! | file system, anywhere | EMFILE, ENFILE, ENOMEM, EAGAIN | transient | `resources` |
//! | file system, anywhere | ENOENT (a directory removed meanwhile) | transient | `unavailable` |
//! | path a template rendered | ENAMETOOLONG, EINVAL, ENOTDIR, EISDIR, EEXIST, ELOOP | permanent | `path_refused` |
//! | fixed part of a path (no macro in it), an open file | ENAMETOOLONG, EINVAL, ENOTDIR, EISDIR, EEXIST, ELOOP | transient | `path_blocked` |
//! | network | ECONNREFUSED, ECONNRESET, ECONNABORTED, EPIPE, ENOTCONN, EHOSTUNREACH, ENETUNREACH, ENETDOWN, EHOSTDOWN, end of stream | transient | `unavailable` |
//! | network | ETIMEDOUT, a timeout of ours | transient | `timeout` |
//! | network | EMSGSIZE (a datagram larger than UDP can carry) | permanent | `too_large` |
//! | PostgreSQL | SQLSTATE class 08, 57 (shutdown, cannot connect now, cancelled) | transient | `unavailable` |
//! | PostgreSQL | class 40 (40001 serialization failure, 40P01 deadlock), 55P03, 55006 | transient | `busy` |
//! | PostgreSQL | 53100 disk full | transient | `no_space` |
//! | PostgreSQL | class 53 (out of memory, too many connections) | transient | `resources` |
//! | PostgreSQL | 25006 read-only transaction (a standby) | transient | `read_only` |
//! | PostgreSQL | 42501 insufficient privilege | transient | `permission` |
//! | PostgreSQL | 42P01 undefined table, 42703 undefined column, 42704 undefined object, 3F000 invalid schema name | transient | `schema` (the connection is made again, and with it the table) |
//! | PostgreSQL | class 58, XX (system, internal error) | transient | `io` |
//! | PostgreSQL | class 22, 23, 54 (data, constraint, program limit) | permanent | `row_refused` |
//! | SQLite | SQLITE_FULL | transient | `no_space` |
//! | SQLite | SQLITE_READONLY | transient | `read_only` |
//! | SQLite | SQLITE_IOERR, SQLITE_CORRUPT, SQLITE_NOTADB | transient | `io` |
//! | SQLite | SQLITE_BUSY, SQLITE_LOCKED | transient | `busy` |
//! | SQLite | SQLITE_CANTOPEN | transient | `unavailable` |
//! | SQLite | SQLITE_PERM, SQLITE_AUTH | transient | `permission` |
//! | SQLite | SQLITE_NOMEM | transient | `resources` |
//! | SQLite | SQLITE_TOOBIG, SQLITE_MISMATCH, SQLITE_CONSTRAINT | permanent | `row_refused` |
//! | either database, outside one row's statement (open, schema, begin, prepare, commit) | what would be `row_refused` | transient | `schema` ([`Failure::outside_a_row`]) |
//! | RELP | `rsp 200` | delivered | |
//! | RELP | `rsp` with any other code, for one frame | permanent | `peer_refused` |
//! | RELP | `rsp` without a code (broken answer) | transient | `unavailable` |
//! | Kafka | unreachable (BrokerTransportFailure, AllBrokersDown, Resolve, SSL, BrokerDestroy/DestroyBroker); leader elections, replicas (LeaderNotAvailable, NotLeaderForPartition, BrokerNotAvailable, ReplicaNotAvailable, NetworkException, NotEnoughReplicas, NotEnoughReplicasAfterAppend, ISRInsufficient, PreferredLeaderNotAvailable, FencedLeaderEpoch, UnknownLeaderEpoch, KafkaStorageError); purged by our own shutdown (PurgeQueue, PurgeInflight) | transient | `unavailable` |
//! | Kafka | MessageTimedOut, OperationTimedOut, RequestTimedOut, TimedOutQueue | transient | `timeout` |
//! | Kafka | QueueFull, ThrottlingQuotaExceeded, CriticalSystemResource | transient | `resources` |
//! | Kafka | Authentication, SaslAuthenticationFailed, UnsupportedSASLMechanism, IllegalSASLState, TopicAuthorizationFailed, ClusterAuthorizationFailed | transient | `permission` |
//! | Kafka | InvalidMessage (CRC), BadMessage | transient | `io` |
//! | Kafka | MessageSizeTooLarge (the producer's `message.max.bytes` or the broker's), MessageBatchTooLarge, InvalidMessageSize | permanent | `too_large` |
//! | Kafka | UnknownTopicOrPartition, UnknownTopic, UnknownPartition (no such topic: auto-create off), InvalidTopic (a template rendered an illegal name), InvalidRecord, InvalidTimestamp, PolicyViolation, UnsupportedForMessageFormat | permanent | `peer_refused` |
//! | Kafka | Fatal (the idempotent producer must be made again), OutOfOrderSequenceNumber, UnknownProducerId, InvalidProducerEpoch, any other code | transient | `other` |
//! | disk buffer | a message larger than the whole buffer | permanent | `too_large` |
//! | anything else | | transient | `other` |
//!
//! Why unknown errors are transient: a transient failure holds the
//! messages (nothing is lost, the state gauge and the log show it), a
//! permanent one takes them out of the stream; guessing wrong the first
//! way stalls a destination visibly, the second way would move messages
//! aside that a fix of the cause would have delivered.
//!
//! Only a statement holding one row's data can refuse that row: the same
//! code from opening the database, creating the table or its indexes
//! (a unique index the rows already there break), beginning, preparing
//! or committing a transaction is transient (`schema`), so a table the
//! operator must fix holds the stream instead of emptying it into the
//! rejects store.
//!
//! A permanent `row_refused` for a statement of many rows means some row
//! is refused: the database destinations then write the batch row by row
//! ("repair") and only a row refused alone is set aside.

use std::fmt;
use std::io;

/// What a failure means for the messages it hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The cause may go away: keep the messages, back off, try again.
    Transient,
    /// This message can never be delivered here: set it aside, go on.
    Permanent,
}

/// Why an attempt failed, as counted, logged and kept in the rejects
/// store. The names ([`Reason::name`]) are stable: they appear in
/// `logrelay rejects`, in logs and in docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    NoSpace,
    ReadOnly,
    Io,
    Permission,
    Resources,
    Unavailable,
    Timeout,
    Busy,
    /// The fixed part of a path, or an open file, is unusable (a file
    /// where the configured directory should be, ...): the operator fixes it.
    PathBlocked,
    /// The table (or a transaction) refuses something that is not one
    /// row's data: a table dropped, a unique index that the rows already
    /// there break, a table another tool made. The schema is set up again
    /// before the next attempt; the operator may have to fix the table.
    Schema,
    Other,
    /// The file system refuses the name a template rendered.
    PathRefused,
    /// The database refuses the row even after repair.
    RowRefused,
    /// The next tier refused this message (RELP `rsp` other than 200; a
    /// Kafka broker refusing it: no such topic, an invalid record).
    PeerRefused,
    /// Larger than the destination's disk buffer can ever hold, than a
    /// Kafka producer or broker takes, or than a UDP datagram carries.
    TooLarge,
}

impl Reason {
    pub const ALL: [Reason; 15] = [
        Reason::NoSpace,
        Reason::ReadOnly,
        Reason::Io,
        Reason::Permission,
        Reason::Resources,
        Reason::Unavailable,
        Reason::Timeout,
        Reason::Busy,
        Reason::PathBlocked,
        Reason::Schema,
        Reason::Other,
        Reason::PathRefused,
        Reason::RowRefused,
        Reason::PeerRefused,
        Reason::TooLarge,
    ];

    pub fn kind(self) -> Kind {
        match self {
            Reason::PathRefused | Reason::RowRefused | Reason::PeerRefused | Reason::TooLarge => {
                Kind::Permanent
            }
            _ => Kind::Transient,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Reason::NoSpace => "no_space",
            Reason::ReadOnly => "read_only",
            Reason::Io => "io",
            Reason::Permission => "permission",
            Reason::Resources => "resources",
            Reason::Unavailable => "unavailable",
            Reason::Timeout => "timeout",
            Reason::Busy => "busy",
            Reason::PathBlocked => "path_blocked",
            Reason::Schema => "schema",
            Reason::Other => "other",
            Reason::PathRefused => "path_refused",
            Reason::RowRefused => "row_refused",
            Reason::PeerRefused => "peer_refused",
            Reason::TooLarge => "too_large",
        }
    }

    pub fn from_name(name: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.name() == name)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The code the failing layer gave, kept with a rejected message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Code {
    None,
    Errno(i32),
    /// PostgreSQL's five-character SQLSTATE.
    SqlState(String),
    /// SQLite's extended result code.
    Sqlite(i32),
    /// A RELP `rsp` code.
    Rsp(u16),
    /// A librdkafka error code (negative: the client's own; else Kafka's).
    Kafka(rdkafka::types::RDKafkaErrorCode),
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Code::None => f.write_str("-"),
            Code::Errno(n) => match errno_name(*n) {
                Some(name) => write!(f, "{name}"),
                None => write!(f, "errno {n}"),
            },
            Code::SqlState(s) => write!(f, "SQLSTATE {s}"),
            Code::Sqlite(n) => write!(f, "SQLITE {n}"),
            Code::Rsp(n) => write!(f, "rsp {n}"),
            Code::Kafka(c) => write!(f, "kafka {c:?} ({})", *c as i32),
        }
    }
}

/// A failed attempt, classified.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{detail} ({reason}, {code})")]
pub struct Failure {
    pub reason: Reason,
    pub code: Code,
    /// What the failing layer said, with context (a path, a server).
    pub detail: String,
}

impl Failure {
    pub fn new(reason: Reason, code: Code, detail: impl Into<String>) -> Failure {
        Failure {
            reason,
            code,
            detail: detail.into(),
        }
    }

    pub fn kind(&self) -> Kind {
        self.reason.kind()
    }

    pub fn is_permanent(&self) -> bool {
        self.kind() == Kind::Permanent
    }

    /// This failure, of a step that holds no one row's data (opening a
    /// database, setting up its schema, beginning, preparing, committing):
    /// it refuses no message, so what would be permanent for a row's
    /// statement is [`Reason::Schema`] here (transient), and the rows are
    /// held, never set aside for it.
    pub fn outside_a_row(self) -> Failure {
        if self.is_permanent() {
            Failure {
                reason: Reason::Schema,
                ..self
            }
        } else {
            self
        }
    }

    /// An I/O error at `stage`, with `context` (a path) in the detail.
    pub fn io(e: &io::Error, stage: Stage, context: &dyn fmt::Display) -> Failure {
        let reason = match e.raw_os_error() {
            Some(errno) => classify_errno(errno, stage),
            None => classify_io_kind(e.kind()),
        };
        let code = e.raw_os_error().map_or(Code::None, Code::Errno);
        Failure::new(reason, code, format!("{context}: {e}"))
    }
}

/// Where an I/O error happened: the same errno means different things for
/// a name a message made and for one the operator wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Creating the directories of, or opening, a path whose failing part
    /// a template rendered from the message.
    RenderedPath,
    /// The literal part of a path (the template's text up to its first
    /// macro), or writing/syncing a file already open.
    FixedPath,
    /// A socket: connecting, writing, reading answers.
    Network,
}

/// The reason for errno `errno` at `stage` (the table in the module doc).
pub fn classify_errno(errno: i32, stage: Stage) -> Reason {
    use libc::*;
    match errno {
        ENOSPC | EDQUOT => Reason::NoSpace,
        EROFS => Reason::ReadOnly,
        EIO | ESTALE => Reason::Io,
        EACCES | EPERM => Reason::Permission,
        EMFILE | ENFILE | ENOMEM | EAGAIN => Reason::Resources,
        ENOENT => Reason::Unavailable,
        ENAMETOOLONG | EINVAL | ENOTDIR | EISDIR | EEXIST | ELOOP => match stage {
            Stage::RenderedPath => Reason::PathRefused,
            Stage::FixedPath => Reason::PathBlocked,
            Stage::Network => Reason::Other,
        },
        // A datagram over what UDP can carry (65,507 bytes of payload over
        // IPv4): that one message can never be sent, however often it is
        // tried. (The default path MTU discovery fragments anything
        // smaller, so the kernel says this only for what no MTU fixes.)
        EMSGSIZE if stage == Stage::Network => Reason::TooLarge,
        ECONNREFUSED | ECONNRESET | ECONNABORTED | EPIPE | ENOTCONN | EHOSTUNREACH
        | ENETUNREACH | ENETDOWN | EHOSTDOWN => Reason::Unavailable,
        ETIMEDOUT => Reason::Timeout,
        _ => Reason::Other,
    }
}

/// The reason for an I/O error that carries no errno (made by a library
/// or by us: timeouts, a closed stream).
pub fn classify_io_kind(kind: io::ErrorKind) -> Reason {
    use io::ErrorKind::*;
    match kind {
        TimedOut => Reason::Timeout,
        ConnectionRefused | ConnectionReset | ConnectionAborted | BrokenPipe | NotConnected
        | UnexpectedEof | AddrNotAvailable | NotFound => Reason::Unavailable,
        PermissionDenied => Reason::Permission,
        OutOfMemory => Reason::Resources,
        _ => Reason::Other,
    }
}

/// The reason for a PostgreSQL SQLSTATE (the table in the module doc).
pub fn classify_sqlstate(state: &str) -> Reason {
    match state {
        "53100" => return Reason::NoSpace,
        "25006" => return Reason::ReadOnly,
        "42501" => return Reason::Permission,
        "55P03" | "55006" => return Reason::Busy,
        // undefined_table, undefined_column, undefined_object,
        // invalid_schema_name: the table was dropped (a retention job, a
        // DBA) or changed under us.
        "42P01" | "42703" | "42704" | "3F000" => return Reason::Schema,
        _ => {}
    }
    match state.get(..2) {
        Some("08" | "57") => Reason::Unavailable,
        Some("40") => Reason::Busy,
        Some("53") => Reason::Resources,
        Some("58" | "XX") => Reason::Io,
        Some("22" | "23" | "54") => Reason::RowRefused,
        _ => Reason::Other,
    }
}

/// The reason for a SQLite (extended) result code: the primary code is
/// its low byte.
pub fn classify_sqlite(code: i32) -> Reason {
    use rusqlite::ffi;
    match code & 0xff {
        ffi::SQLITE_FULL => Reason::NoSpace,
        ffi::SQLITE_READONLY => Reason::ReadOnly,
        ffi::SQLITE_IOERR | ffi::SQLITE_CORRUPT | ffi::SQLITE_NOTADB => Reason::Io,
        ffi::SQLITE_BUSY | ffi::SQLITE_LOCKED => Reason::Busy,
        ffi::SQLITE_CANTOPEN => Reason::Unavailable,
        ffi::SQLITE_PERM | ffi::SQLITE_AUTH => Reason::Permission,
        ffi::SQLITE_NOMEM => Reason::Resources,
        ffi::SQLITE_TOOBIG | ffi::SQLITE_MISMATCH | ffi::SQLITE_CONSTRAINT => Reason::RowRefused,
        _ => Reason::Other,
    }
}

/// A rusqlite error, classified.
pub fn sqlite_failure(e: &rusqlite::Error, context: &dyn fmt::Display) -> Failure {
    match e {
        rusqlite::Error::SqliteFailure(err, _) => Failure::new(
            classify_sqlite(err.extended_code),
            Code::Sqlite(err.extended_code),
            format!("{context}: {e}"),
        ),
        // Values rusqlite refuses before SQLite sees them (a string too
        // long for an int index, ...): the row's data.
        rusqlite::Error::ToSqlConversionFailure(_) => {
            Failure::new(Reason::RowRefused, Code::None, format!("{context}: {e}"))
        }
        _ => Failure::new(Reason::Other, Code::None, format!("{context}: {e}")),
    }
}

/// What a RELP `rsp` code means for its frame: `None` when delivered.
pub fn classify_rsp(code: Option<u16>) -> Option<Reason> {
    match code {
        Some(200) => None,
        Some(_) => Some(Reason::PeerRefused),
        None => Some(Reason::Unavailable),
    }
}

/// The reason for a librdkafka error code (the table in the module doc):
/// what a delivery report, a failed `produce` or a client error says.
pub fn classify_kafka(code: rdkafka::types::RDKafkaErrorCode) -> Reason {
    use rdkafka::types::RDKafkaErrorCode as K;
    match code {
        K::BrokerTransportFailure
        | K::AllBrokersDown
        | K::Resolve
        | K::SSL
        | K::BrokerDestroy
        | K::DestroyBroker
        | K::LeaderNotAvailable
        | K::NotLeaderForPartition
        | K::BrokerNotAvailable
        | K::ReplicaNotAvailable
        | K::NetworkException
        | K::NotEnoughReplicas
        | K::NotEnoughReplicasAfterAppend
        | K::ISRInsufficient
        | K::PreferredLeaderNotAvailable
        | K::FencedLeaderEpoch
        | K::UnknownLeaderEpoch
        | K::KafkaStorageError
        | K::PurgeQueue
        | K::PurgeInflight => Reason::Unavailable,
        K::MessageTimedOut | K::OperationTimedOut | K::RequestTimedOut | K::TimedOutQueue => {
            Reason::Timeout
        }
        K::QueueFull | K::ThrottlingQuotaExceeded | K::CriticalSystemResource => Reason::Resources,
        K::Authentication
        | K::SaslAuthenticationFailed
        | K::UnsupportedSASLMechanism
        | K::IllegalSASLState
        | K::TopicAuthorizationFailed
        | K::ClusterAuthorizationFailed => Reason::Permission,
        K::InvalidMessage | K::BadMessage => Reason::Io,
        K::MessageSizeTooLarge | K::MessageBatchTooLarge | K::InvalidMessageSize => {
            Reason::TooLarge
        }
        K::UnknownTopicOrPartition
        | K::UnknownTopic
        | K::UnknownPartition
        | K::InvalidTopic
        | K::InvalidRecord
        | K::InvalidTimestamp
        | K::PolicyViolation
        | K::UnsupportedForMessageFormat => Reason::PeerRefused,
        _ => Reason::Other,
    }
}

/// The symbolic name of the errnos the table names.
pub fn errno_name(errno: i32) -> Option<&'static str> {
    use libc::*;
    Some(match errno {
        ENOSPC => "ENOSPC",
        EDQUOT => "EDQUOT",
        EROFS => "EROFS",
        EIO => "EIO",
        ESTALE => "ESTALE",
        EACCES => "EACCES",
        EPERM => "EPERM",
        EMFILE => "EMFILE",
        ENFILE => "ENFILE",
        ENOMEM => "ENOMEM",
        EAGAIN => "EAGAIN",
        ENOENT => "ENOENT",
        ENAMETOOLONG => "ENAMETOOLONG",
        EINVAL => "EINVAL",
        ENOTDIR => "ENOTDIR",
        EISDIR => "EISDIR",
        EEXIST => "EEXIST",
        ELOOP => "ELOOP",
        ECONNREFUSED => "ECONNREFUSED",
        ECONNRESET => "ECONNRESET",
        ECONNABORTED => "ECONNABORTED",
        EPIPE => "EPIPE",
        ENOTCONN => "ENOTCONN",
        EHOSTUNREACH => "EHOSTUNREACH",
        ENETUNREACH => "ENETUNREACH",
        ENETDOWN => "ENETDOWN",
        EHOSTDOWN => "EHOSTDOWN",
        ETIMEDOUT => "ETIMEDOUT",
        EMSGSIZE => "EMSGSIZE",
        _ => return None,
    })
}

/// The errno a symbolic name stands for (the inverse of [`errno_name`]).
pub fn errno_from_name(name: &str) -> Option<i32> {
    (1..200).find(|&n| errno_name(n) == Some(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table of the module doc, row by row.
    #[test]
    fn errno_table() {
        use libc::*;
        use Stage::*;
        let table: &[(i32, Stage, Reason)] = &[
            (ENOSPC, FixedPath, Reason::NoSpace),
            (EDQUOT, RenderedPath, Reason::NoSpace),
            (EROFS, FixedPath, Reason::ReadOnly),
            (EROFS, RenderedPath, Reason::ReadOnly),
            (EIO, FixedPath, Reason::Io),
            (ESTALE, FixedPath, Reason::Io),
            (EACCES, RenderedPath, Reason::Permission),
            (EPERM, FixedPath, Reason::Permission),
            (EMFILE, FixedPath, Reason::Resources),
            (ENFILE, FixedPath, Reason::Resources),
            (ENOMEM, FixedPath, Reason::Resources),
            (ENOENT, RenderedPath, Reason::Unavailable),
            (ENAMETOOLONG, RenderedPath, Reason::PathRefused),
            (EINVAL, RenderedPath, Reason::PathRefused),
            (ENOTDIR, RenderedPath, Reason::PathRefused),
            (EISDIR, RenderedPath, Reason::PathRefused),
            (EEXIST, RenderedPath, Reason::PathRefused),
            (ELOOP, RenderedPath, Reason::PathRefused),
            (ENAMETOOLONG, FixedPath, Reason::PathBlocked),
            (ENOTDIR, FixedPath, Reason::PathBlocked),
            (EISDIR, FixedPath, Reason::PathBlocked),
            (ECONNREFUSED, Network, Reason::Unavailable),
            (ECONNRESET, Network, Reason::Unavailable),
            (EPIPE, Network, Reason::Unavailable),
            (EHOSTUNREACH, Network, Reason::Unavailable),
            (ENETUNREACH, Network, Reason::Unavailable),
            (ETIMEDOUT, Network, Reason::Timeout),
            (EINVAL, Network, Reason::Other),
            (EMSGSIZE, Network, Reason::TooLarge),
            (EMSGSIZE, FixedPath, Reason::Other),
            (EXDEV, FixedPath, Reason::Other),
        ];
        for &(errno, stage, want) in table {
            assert_eq!(
                classify_errno(errno, stage),
                want,
                "{:?} at {stage:?}",
                errno_name(errno)
            );
        }
        // Only the path a message made, or a datagram too large for UDP,
        // can refuse that message.
        for errno in 1..200 {
            assert_eq!(classify_errno(errno, FixedPath).kind(), Kind::Transient);
            let network = classify_errno(errno, Network).kind();
            assert_eq!(network == Kind::Permanent, errno == EMSGSIZE, "{errno}");
        }
    }

    #[test]
    fn io_errors_without_errno_and_failures() {
        assert_eq!(classify_io_kind(io::ErrorKind::TimedOut), Reason::Timeout);
        assert_eq!(
            classify_io_kind(io::ErrorKind::UnexpectedEof),
            Reason::Unavailable
        );
        assert_eq!(classify_io_kind(io::ErrorKind::InvalidData), Reason::Other);
        let e = io::Error::from_raw_os_error(libc::EISDIR);
        let f = Failure::io(&e, Stage::RenderedPath, &"/x/y.log");
        assert_eq!(f.reason, Reason::PathRefused);
        assert_eq!(f.code, Code::Errno(libc::EISDIR));
        assert!(f.is_permanent());
        assert!(f.detail.starts_with("/x/y.log: "), "{}", f.detail);
        assert_eq!(f.code.to_string(), "EISDIR");
        let f = Failure::io(&io::Error::other("x"), Stage::FixedPath, &"p");
        assert_eq!((f.reason, f.code), (Reason::Other, Code::None));
    }

    #[test]
    fn sqlstate_table() {
        let table = [
            ("08006", Reason::Unavailable),
            ("08001", Reason::Unavailable),
            ("57P01", Reason::Unavailable),
            ("57P03", Reason::Unavailable),
            ("57014", Reason::Unavailable),
            ("40001", Reason::Busy),
            ("40P01", Reason::Busy),
            ("55P03", Reason::Busy),
            ("55006", Reason::Busy),
            ("53100", Reason::NoSpace),
            ("53200", Reason::Resources),
            ("53300", Reason::Resources),
            ("25006", Reason::ReadOnly),
            ("42501", Reason::Permission),
            ("58030", Reason::Io),
            ("XX000", Reason::Io),
            ("22021", Reason::RowRefused),
            ("22P02", Reason::RowRefused),
            ("23502", Reason::RowRefused),
            ("23505", Reason::RowRefused),
            ("54000", Reason::RowRefused),
            ("42P01", Reason::Schema),
            ("42703", Reason::Schema),
            ("42704", Reason::Schema),
            ("3F000", Reason::Schema),
            ("42601", Reason::Other),
            ("", Reason::Other),
        ];
        for (state, want) in table {
            assert_eq!(classify_sqlstate(state), want, "{state}");
        }
        assert_eq!(Reason::Schema.kind(), Kind::Transient);
    }

    #[test]
    fn sqlite_table() {
        use rusqlite::ffi;
        let table = [
            (ffi::SQLITE_FULL, Reason::NoSpace),
            (ffi::SQLITE_READONLY, Reason::ReadOnly),
            (ffi::SQLITE_IOERR, Reason::Io),
            (ffi::SQLITE_IOERR_WRITE, Reason::Io),
            (ffi::SQLITE_IOERR_FSYNC, Reason::Io),
            (ffi::SQLITE_CORRUPT, Reason::Io),
            (ffi::SQLITE_NOTADB, Reason::Io),
            (ffi::SQLITE_BUSY, Reason::Busy),
            (ffi::SQLITE_BUSY_SNAPSHOT, Reason::Busy),
            (ffi::SQLITE_LOCKED, Reason::Busy),
            (ffi::SQLITE_CANTOPEN, Reason::Unavailable),
            (ffi::SQLITE_PERM, Reason::Permission),
            (ffi::SQLITE_AUTH, Reason::Permission),
            (ffi::SQLITE_NOMEM, Reason::Resources),
            (ffi::SQLITE_TOOBIG, Reason::RowRefused),
            (ffi::SQLITE_MISMATCH, Reason::RowRefused),
            (ffi::SQLITE_CONSTRAINT_NOTNULL, Reason::RowRefused),
            (ffi::SQLITE_ERROR, Reason::Other),
        ];
        for (code, want) in table {
            assert_eq!(classify_sqlite(code), want, "{code}");
        }
        // Outside a row's statement nothing is permanent.
        let unique = Failure::new(
            classify_sqlite(ffi::SQLITE_CONSTRAINT_UNIQUE),
            Code::Sqlite(ffi::SQLITE_CONSTRAINT_UNIQUE),
            "CREATE UNIQUE INDEX",
        );
        assert!(unique.is_permanent());
        let outside = unique.clone().outside_a_row();
        assert_eq!(outside.reason, Reason::Schema);
        assert_eq!(outside.kind(), Kind::Transient);
        assert_eq!((outside.code, outside.detail), (unique.code, unique.detail));
        let full = Failure::new(Reason::NoSpace, Code::None, "full");
        assert_eq!(full.clone().outside_a_row(), full);
    }

    #[test]
    fn rsp_table() {
        assert_eq!(classify_rsp(Some(200)), None);
        assert_eq!(classify_rsp(Some(500)), Some(Reason::PeerRefused));
        assert_eq!(classify_rsp(Some(418)), Some(Reason::PeerRefused));
        assert_eq!(classify_rsp(None), Some(Reason::Unavailable));
    }

    #[test]
    fn kafka_table() {
        use rdkafka::types::RDKafkaErrorCode as K;
        let table = [
            (K::BrokerTransportFailure, Reason::Unavailable),
            (K::AllBrokersDown, Reason::Unavailable),
            (K::Resolve, Reason::Unavailable),
            (K::SSL, Reason::Unavailable),
            (K::BrokerDestroy, Reason::Unavailable),
            (K::DestroyBroker, Reason::Unavailable),
            (K::LeaderNotAvailable, Reason::Unavailable),
            (K::NotLeaderForPartition, Reason::Unavailable),
            (K::BrokerNotAvailable, Reason::Unavailable),
            (K::ReplicaNotAvailable, Reason::Unavailable),
            (K::NetworkException, Reason::Unavailable),
            (K::NotEnoughReplicas, Reason::Unavailable),
            (K::NotEnoughReplicasAfterAppend, Reason::Unavailable),
            (K::ISRInsufficient, Reason::Unavailable),
            (K::PreferredLeaderNotAvailable, Reason::Unavailable),
            (K::FencedLeaderEpoch, Reason::Unavailable),
            (K::UnknownLeaderEpoch, Reason::Unavailable),
            (K::KafkaStorageError, Reason::Unavailable),
            (K::PurgeQueue, Reason::Unavailable),
            (K::PurgeInflight, Reason::Unavailable),
            (K::MessageTimedOut, Reason::Timeout),
            (K::OperationTimedOut, Reason::Timeout),
            (K::RequestTimedOut, Reason::Timeout),
            (K::TimedOutQueue, Reason::Timeout),
            (K::QueueFull, Reason::Resources),
            (K::ThrottlingQuotaExceeded, Reason::Resources),
            (K::CriticalSystemResource, Reason::Resources),
            (K::Authentication, Reason::Permission),
            (K::SaslAuthenticationFailed, Reason::Permission),
            (K::UnsupportedSASLMechanism, Reason::Permission),
            (K::IllegalSASLState, Reason::Permission),
            (K::TopicAuthorizationFailed, Reason::Permission),
            (K::ClusterAuthorizationFailed, Reason::Permission),
            (K::InvalidMessage, Reason::Io),
            (K::BadMessage, Reason::Io),
            (K::MessageSizeTooLarge, Reason::TooLarge),
            (K::MessageBatchTooLarge, Reason::TooLarge),
            (K::InvalidMessageSize, Reason::TooLarge),
            (K::UnknownTopicOrPartition, Reason::PeerRefused),
            (K::UnknownTopic, Reason::PeerRefused),
            (K::UnknownPartition, Reason::PeerRefused),
            (K::InvalidTopic, Reason::PeerRefused),
            (K::InvalidRecord, Reason::PeerRefused),
            (K::InvalidTimestamp, Reason::PeerRefused),
            (K::PolicyViolation, Reason::PeerRefused),
            (K::UnsupportedForMessageFormat, Reason::PeerRefused),
            (K::Fatal, Reason::Other),
            (K::OutOfOrderSequenceNumber, Reason::Other),
            (K::UnknownProducerId, Reason::Other),
            (K::InvalidProducerEpoch, Reason::Other),
            (K::Unknown, Reason::Other),
        ];
        for (code, want) in table {
            assert_eq!(classify_kafka(code), want, "{code:?}");
        }
        // Only a refusal of the record itself sets it aside.
        let permanent: Vec<K> = table
            .iter()
            .filter(|(_, r)| r.kind() == Kind::Permanent)
            .map(|(c, _)| *c)
            .collect();
        assert_eq!(permanent.len(), 11);
        assert_eq!(
            Code::Kafka(K::MessageSizeTooLarge).to_string(),
            "kafka MessageSizeTooLarge (10)"
        );
        assert_eq!(
            Code::Kafka(K::UnknownTopic).to_string(),
            "kafka UnknownTopic (-188)"
        );
    }

    #[test]
    fn reasons_have_stable_names_and_kinds() {
        for r in Reason::ALL {
            assert_eq!(Reason::from_name(r.name()), Some(r));
        }
        let permanent: Vec<&str> = Reason::ALL
            .iter()
            .filter(|r| r.kind() == Kind::Permanent)
            .map(|r| r.name())
            .collect();
        assert_eq!(
            permanent,
            ["path_refused", "row_refused", "peer_refused", "too_large"]
        );
        for errno in 1..200 {
            if let Some(name) = errno_name(errno) {
                assert_eq!(errno_from_name(name), Some(errno));
            }
        }
    }
}
