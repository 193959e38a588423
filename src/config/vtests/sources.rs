use super::testing::{complete, run, source, Case};
use crate::config::Mode;

const CASES: &[Case] = &[
    // file
    (
        "file: defaults",
        r#"
[sources.s]
type = "file"
paths = ["/var/log/app/*.log"]
"#,
        r#"ok: file paths=["/var/log/app/*.log"] globs=1/0 start_at=End poll_interval=1s long_lines=Split partial_line_timeout=1s max_open_files=1024 checkpoint_interval=5s multiline=None | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
    ),
    (
        "file: every key",
        r#"
[sources.s]
type = "file"
paths = ["/var/log/a/*.log", "/var/log/b.log"]
exclude = ["/var/log/a/*.gz"]
start_at = "beginning"
poll_interval = "250ms"
long_lines = "truncate"
partial_line_timeout = "2s"
max_open_files = 1000000
checkpoint_interval = "1m"
program = "app"
facility = "local0"
severity = "info"
max_message_bytes = "64MiB"
oversize = "discard"
time_zone = "-05:00"
multiline = { start = '^\d{4}-', timeout = "3s" }
"#,
        r#"ok: file paths=["/var/log/a/*.log", "/var/log/b.log"] globs=2/1 start_at=Beginning poll_interval=250ms long_lines=Truncate partial_line_timeout=2s max_open_files=1000000 checkpoint_interval=60s multiline=Some("start=Some(\"^\\\\d{4}-\") indented=false timeout=3s") | ParseDefaults { program: b"app", facility: Local0, severity: Info, time_zone: Fixed(-05:00), max_message_bytes: 67108864, oversize: Discard } | rate_limit=None peer_rate_limit=None"#,
    ),
    (
        "file: multiline indented by default",
        r#"
[sources.s]
type = "file"
paths = ["/x.log"]
[sources.s.multiline]
"#,
        r#"ok: file paths=["/x.log"] globs=1/0 start_at=End poll_interval=1s long_lines=Split partial_line_timeout=1s max_open_files=1024 checkpoint_interval=5s multiline=Some("start=None indented=true timeout=1s") | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
    ),
    (
        "file: multiline start and indented",
        r#"
[sources.s]
type = "file"
paths = ["/x.log"]
multiline = { start = "^\\S", indented = true }
"#,
        r#"ok: file paths=["/x.log"] globs=1/0 start_at=End poll_interval=1s long_lines=Split partial_line_timeout=1s max_open_files=1024 checkpoint_interval=5s multiline=Some("start=Some(\"^\\\\S\") indented=true timeout=1s") | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
    ),
    (
        "file: no paths key",
        r#"
[sources.s]
type = "file"
"#,
        r#"FILE:1:1: missing field `paths`"#,
    ),
    (
        "file: empty paths",
        r#"
[sources.s]
type = "file"
paths = []
"#,
        r#"FILE:3:9: sources.s.paths: at least one path or glob is needed"#,
    ),
    (
        "file: empty glob",
        r#"
[sources.s]
type = "file"
paths = ["/a.log", " "]
"#,
        r#"FILE:3:20: sources.s.paths[2]: an empty glob matches nothing"#,
    ),
    (
        "file: bad glob",
        r#"
[sources.s]
type = "file"
paths = ["/var/log/{a,b.log"]
"#,
        r#"FILE:3:10: sources.s.paths[1]: bad glob: unclosed alternate group; missing '}' (maybe escape '{' with '[{]'?)"#,
    ),
    (
        "file: bad exclude glob",
        r#"
[sources.s]
type = "file"
paths = ["/a.log"]
exclude = ["/a/[z"]
"#,
        r#"FILE:4:12: sources.s.exclude[1]: bad glob: unclosed character class; missing ']'"#,
    ),
    (
        "file: paths not a list",
        r#"
[sources.s]
type = "file"
paths = "/a.log"
"#,
        r#"FILE:1:1: invalid type: string "/a.log", expected a sequence"#,
    ),
    (
        "file: bad start_at",
        r#"
[sources.s]
type = "file"
paths = ["/a.log"]
start_at = "middle"
"#,
        r#"FILE:4:12: sources.s.start_at: `middle` is not one of "end", "beginning""#,
    ),
    (
        "file: bad poll_interval",
        r#"
[sources.s]
type = "file"
paths = ["/a.log"]
poll_interval = "1"
"#,
        r#"FILE:4:17: sources.s.poll_interval: `1` is not a duration: expected a number and a unit such as "250ms", "5s" or "10m""#,
    ),
    (
        "file: bad long_lines",
        r#"
[sources.s]
type = "file"
paths = ["/a.log"]
long_lines = "wrap"
"#,
        r#"FILE:4:14: sources.s.long_lines: `wrap` is not one of "split", "truncate""#,
    ),
    (
        "file: bad partial_line_timeout",
        r#"
[sources.s]
type = "file"
paths = ["/a.log"]
partial_line_timeout = "soon"
"#,
        r#"FILE:4:24: sources.s.partial_line_timeout: `soon` is not a duration: expected a number and a unit such as "250ms", "5s" or "10m""#,
    ),
    (
        "file: max_open_files zero",
        r#"
[sources.s]
type = "file"
paths = ["/a.log"]
max_open_files = 0
"#,
        r#"FILE:4:18: sources.s.max_open_files: 0 is out of range: expected 1 to 1000000"#,
    ),
    (
        "file: max_open_files too big",
        r#"
[sources.s]
type = "file"
paths = ["/a.log"]
max_open_files = 1000001
"#,
        r#"FILE:4:18: sources.s.max_open_files: 1000001 is out of range: expected 1 to 1000000"#,
    ),
    (
        "file: bad checkpoint_interval",
        r#"
[sources.s]
type = "file"
paths = ["/a.log"]
checkpoint_interval = "5x"
"#,
        r#"FILE:4:23: sources.s.checkpoint_interval: `5x`: unknown duration unit `x` (use ms, s, m, h or d)"#,
    ),
    (
        "file: multiline bad regex",
        r#"
[sources.s]
type = "file"
paths = ["/a.log"]
multiline = { start = "(" }
"#,
        r#"FILE:4:23: sources.s.multiline.start: bad regex: error: unclosed group"#,
    ),
    (
        "file: multiline with nothing to go by",
        r#"
[sources.s]
type = "file"
paths = ["/a.log"]
multiline = { indented = false }
"#,
        r#"FILE:4:13: sources.s.multiline: give `start = "REGEX"` or `indented = true`"#,
    ),
    (
        "file: multiline bad timeout",
        r#"
[sources.s]
type = "file"
paths = ["/a.log"]
multiline = { indented = true, timeout = "x" }
"#,
        r#"FILE:4:42: sources.s.multiline.timeout: `x` is not a duration: expected a number and a unit such as "250ms", "5s" or "10m""#,
    ),
    (
        "file: multiline unknown key",
        r#"
[sources.s]
type = "file"
paths = ["/a.log"]
multiline = { begin = "^x" }
"#,
        r#"FILE:4:15: begin: unknown key; expected one of `start`, `indented`, `timeout`"#,
    ),
    (
        "file: unknown key",
        r#"
[sources.s]
type = "file"
paths = ["/a.log"]
follow = true
"#,
        r#"FILE:4:1: follow: unknown key"#,
    ),
    (
        "file: no rate limits",
        r#"
[sources.s]
type = "file"
paths = ["/a.log"]
rate_limit = { messages = 10 }
"#,
        r#"FILE:4:1: sources.s.rate_limit: a file source waits for its destinations instead of dropping: rate limits apply to tcp, udp, tls, relp, unix_dgram and unix_stream sources"#,
    ),
    // pipe
    (
        "pipe: defaults",
        r#"
[sources.s]
type = "pipe"
path = "/run/app.fifo"
"#,
        r#"ok: pipe Pipe { path: "/run/app.fifo" } | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
    ),
    (
        "pipe: empty path",
        r#"
[sources.s]
type = "pipe"
path = ""
"#,
        r#"FILE:3:8: sources.s.path: must not be empty"#,
    ),
    (
        "pipe: no path key",
        r#"
[sources.s]
type = "pipe"
"#,
        r#"FILE:1:1: missing field `path`"#,
    ),
    (
        "pipe: no peer rate limits",
        r#"
[sources.s]
type = "pipe"
path = "/p"
peer_rate_limit = { messages = 10 }
"#,
        r#"FILE:4:1: sources.s.peer_rate_limit: a pipe source waits for its destinations instead of dropping: rate limits apply to tcp, udp, tls, relp, unix_dgram and unix_stream sources"#,
    ),
    // unix_dgram
    (
        "unix_dgram: defaults",
        r#"
[sources.s]
type = "unix_dgram"
path = "/dev/log"
"#,
        r#"ok: unix_dgram path="/dev/log" mode=666 | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
    ),
    (
        "unix_dgram: mode and rate limits",
        r#"
[sources.s]
type = "unix_dgram"
path = "/dev/log"
mode = "0620"
rate_limit = { messages = 1000, per = "1m" }
peer_rate_limit = { messages = 10, per = "250ms", burst = 50 }
"#,
        r#"ok: unix_dgram path="/dev/log" mode=620 | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=Some(RateLimit { messages: 1000, per: 60s, burst: 1000 }) peer_rate_limit=Some(RateLimit { messages: 10, per: 250ms, burst: 50 })"#,
    ),
    (
        "unix_dgram: bad mode",
        r#"
[sources.s]
type = "unix_dgram"
path = "/dev/log"
mode = "0999"
"#,
        r#"FILE:4:8: sources.s.mode: `0999` is not an octal file mode such as "0644""#,
    ),
    (
        "unix_dgram: blank path",
        r#"
[sources.s]
type = "unix_dgram"
path = "  "
"#,
        r#"FILE:3:8: sources.s.path: must not be empty"#,
    ),
    (
        "unix_dgram: no listen key",
        r#"
[sources.s]
type = "unix_dgram"
path = "/dev/log"
listen = "127.0.0.1:514"
"#,
        r#"FILE:4:1: listen: unknown key"#,
    ),
    // unix_stream
    (
        "unix_stream: defaults",
        r#"
[sources.s]
type = "unix_stream"
path = "/run/log.sock"
"#,
        r#"ok: unix_stream path="/run/log.sock" mode=666 max_connections=1024 | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
    ),
    (
        "unix_stream: every key",
        r#"
[sources.s]
type = "unix_stream"
path = "/run/log.sock"
mode = "600"
max_connections = 8
"#,
        r#"ok: unix_stream path="/run/log.sock" mode=600 max_connections=8 | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
    ),
    (
        "unix_stream: max_connections zero",
        r#"
[sources.s]
type = "unix_stream"
path = "/run/log.sock"
max_connections = 0
"#,
        r#"FILE:4:19: sources.s.max_connections: 0 is out of range: expected 1 to 1000000"#,
    ),
    (
        "unix_stream: bad mode",
        r#"
[sources.s]
type = "unix_stream"
path = "/run/log.sock"
mode = "rw-r--r--"
"#,
        r#"FILE:4:8: sources.s.mode: `rw-r--r--` is not an octal file mode such as "0644""#,
    ),
    // tcp
    (
        "tcp: defaults",
        r#"
[sources.s]
type = "tcp"
listen = "127.0.0.1:5514"
"#,
        r#"ok: tcp StreamListen { listen: 127.0.0.1:5514, max_connections: 1024, idle_timeout: 600s, framing: Auto } | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
    ),
    (
        "tcp: every key",
        r#"
[sources.s]
type = "tcp"
listen = "[::]:514"
max_connections = 1000000
idle_timeout = "15m"
framing = "lf"
"#,
        r#"ok: tcp StreamListen { listen: [::]:514, max_connections: 1000000, idle_timeout: 900s, framing: Lf } | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
    ),
    (
        "tcp: localhost means 127.0.0.1",
        r#"
[sources.s]
type = "tcp"
listen = "localhost:5514"
framing = "octet_counting"
"#,
        r#"ok: tcp StreamListen { listen: 127.0.0.1:5514, max_connections: 1024, idle_timeout: 600s, framing: OctetCounting } | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
    ),
    (
        "tcp: no listen key",
        r#"
[sources.s]
type = "tcp"
"#,
        r#"FILE:1:1: missing field `listen`"#,
    ),
    (
        "tcp: bad listen",
        r#"
[sources.s]
type = "tcp"
listen = "0.0.0.0"
"#,
        r#"FILE:3:10: sources.s.listen: `0.0.0.0` is not a socket address: expected IP:PORT such as "127.0.0.1:5514" or "[::]:514""#,
    ),
    (
        "tcp: listen on a name",
        r#"
[sources.s]
type = "tcp"
listen = "example.com:514"
"#,
        r#"FILE:3:10: sources.s.listen: `example.com:514` is not a socket address: expected IP:PORT such as "127.0.0.1:5514" or "[::]:514""#,
    ),
    (
        "tcp: max_connections too big",
        r#"
[sources.s]
type = "tcp"
listen = "127.0.0.1:5514"
max_connections = 1000001
"#,
        r#"FILE:4:19: sources.s.max_connections: 1000001 is out of range: expected 1 to 1000000"#,
    ),
    (
        "tcp: bad idle_timeout",
        r#"
[sources.s]
type = "tcp"
listen = "127.0.0.1:5514"
idle_timeout = "10"
"#,
        r#"FILE:4:16: sources.s.idle_timeout: `10` is not a duration: expected a number and a unit such as "250ms", "5s" or "10m""#,
    ),
    (
        "tcp: bad framing",
        r#"
[sources.s]
type = "tcp"
listen = "127.0.0.1:5514"
framing = "crlf"
"#,
        r#"FILE:4:11: sources.s.framing: `crlf` is not one of "auto", "octet_counting", "lf""#,
    ),
    (
        "tcp: no window key",
        r#"
[sources.s]
type = "tcp"
listen = "127.0.0.1:5514"
window = 10
"#,
        r#"FILE:4:1: window: unknown key"#,
    ),
    // udp
    (
        "udp: defaults",
        r#"
[sources.s]
type = "udp"
listen = "127.0.0.1:5514"
"#,
        r#"ok: udp Udp { listen: 127.0.0.1:5514, receive_buffer: 8388608 } | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
    ),
    (
        "udp: receive_buffer",
        r#"
[sources.s]
type = "udp"
listen = "0.0.0.0:514"
receive_buffer = "16MiB"
"#,
        r#"ok: udp Udp { listen: 0.0.0.0:514, receive_buffer: 16777216 } | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
    ),
    (
        "udp: bad receive_buffer",
        r#"
[sources.s]
type = "udp"
listen = "0.0.0.0:514"
receive_buffer = "lots"
"#,
        r#"FILE:4:18: sources.s.receive_buffer: `lots` is not a size: expected a number such as "64KiB" or "1GiB""#,
    ),
    (
        "udp: bad listen",
        r#"
[sources.s]
type = "udp"
listen = "0.0.0.0:http"
"#,
        r#"FILE:3:10: sources.s.listen: `0.0.0.0:http` is not a socket address: expected IP:PORT such as "127.0.0.1:5514" or "[::]:514""#,
    ),
    (
        "udp: no framing key",
        r#"
[sources.s]
type = "udp"
listen = "0.0.0.0:514"
framing = "lf"
"#,
        r#"FILE:4:1: framing: unknown key"#,
    ),
    // relp (TLS cases in the tls table)
    (
        "relp: defaults",
        r#"
[sources.s]
type = "relp"
listen = "127.0.0.1:2514"
"#,
        r#"ok: relp StreamListen { listen: 127.0.0.1:2514, max_connections: 1024, idle_timeout: 600s, framing: Auto } window=1024 tls=None | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
    ),
    (
        "relp: every key without tls",
        r#"
[sources.s]
type = "relp"
listen = "127.0.0.1:2514"
max_connections = 16
idle_timeout = "1h"
window = 65536
"#,
        r#"ok: relp StreamListen { listen: 127.0.0.1:2514, max_connections: 16, idle_timeout: 3600s, framing: Auto } window=65536 tls=None | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
    ),
    (
        "relp: window zero",
        r#"
[sources.s]
type = "relp"
listen = "127.0.0.1:2514"
window = 0
"#,
        r#"FILE:4:10: sources.s.window: 0 is out of range: expected 1 to 65536"#,
    ),
    (
        "relp: window too big",
        r#"
[sources.s]
type = "relp"
listen = "127.0.0.1:2514"
window = 65537
"#,
        r#"FILE:4:10: sources.s.window: 65537 is out of range: expected 1 to 65536"#,
    ),
    (
        "relp: no framing key",
        r#"
[sources.s]
type = "relp"
listen = "127.0.0.1:2514"
framing = "lf"
"#,
        r#"FILE:4:1: framing: unknown key"#,
    ),
    // stdin, internal
    (
        "stdin: defaults",
        r#"
[sources.s]
type = "stdin"
"#,
        r#"ok: stdin Stdin | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
    ),
    (
        "stdin: no path key",
        r#"
[sources.s]
type = "stdin"
path = "/dev/stdin"
"#,
        r#"FILE:3:1: path: unknown key"#,
    ),
    (
        "internal: defaults",
        r#"
[sources.s]
type = "internal"
"#,
        r#"ok: internal Internal { level: Level(Info) } | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
    ),
    (
        "internal: level",
        r#"
[sources.s]
type = "internal"
level = "warn"
"#,
        r#"ok: internal Internal { level: Level(Warn) } | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
    ),
    (
        "internal: bad level",
        r#"
[sources.s]
type = "internal"
level = "verbose"
"#,
        r#"FILE:3:9: sources.s.level: `verbose` is not one of "error", "warn", "info", "debug", "trace""#,
    ),
    (
        "internal: only one",
        r#"
[sources.s]
type = "internal"

[sources.t]
type = "internal"
level = "error"
"#,
        r#"FILE:5:8: sources.t.type: only one internal source may run: s is one"#,
    ),
    (
        "internal: no rate limits",
        r#"
[sources.s]
type = "internal"
rate_limit = { messages = 5 }
"#,
        r#"FILE:3:1: sources.s.rate_limit: a internal source waits for its destinations instead of dropping: rate limits apply to tcp, udp, tls, relp, unix_dgram and unix_stream sources"#,
    ),
    // the keys every source takes
    (
        "common: bad facility",
        r#"
[sources.s]
type = "stdin"
facility = "local8"
"#,
        r#"FILE:3:12: sources.s.facility: `local8` is not a facility (kern, user, ..., local7)"#,
    ),
    (
        "common: severity alias",
        r#"
[sources.s]
type = "stdin"
severity = "warn"
facility = "authpriv"
"#,
        r#"ok: stdin Stdin | ParseDefaults { program: b"s", facility: Authpriv, severity: Warning, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
    ),
    (
        "common: bad severity",
        r#"
[sources.s]
type = "stdin"
severity = "loud"
"#,
        r#"FILE:3:12: sources.s.severity: `loud` is not a severity (emerg ... debug)"#,
    ),
    (
        "common: max_message_bytes too small",
        r#"
[sources.s]
type = "stdin"
max_message_bytes = "63"
"#,
        r#"FILE:3:21: sources.s.max_message_bytes: must be between 64B and 64MiB"#,
    ),
    (
        "common: smallest max_message_bytes",
        r#"
[sources.s]
type = "stdin"
max_message_bytes = "64B"
"#,
        r#"ok: stdin Stdin | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 64, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
    ),
    (
        "common: max_message_bytes too big",
        r#"
[sources.s]
type = "stdin"
max_message_bytes = "65MiB"
"#,
        r#"FILE:3:21: sources.s.max_message_bytes: must be between 64B and 64MiB"#,
    ),
    (
        "common: bad max_message_bytes",
        r#"
[sources.s]
type = "stdin"
max_message_bytes = "1XB"
"#,
        r#"FILE:3:21: sources.s.max_message_bytes: `1XB`: unknown size unit `xb` (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)"#,
    ),
    (
        "common: bad oversize",
        r#"
[sources.s]
type = "stdin"
oversize = "drop"
"#,
        r#"FILE:3:12: sources.s.oversize: `drop` is not one of "truncate", "discard""#,
    ),
    (
        "common: bad time_zone",
        r#"
[sources.s]
type = "stdin"
time_zone = "CET"
"#,
        r#"FILE:3:13: sources.s.time_zone: `CET` is not a time zone: use "UTC", "local" or an offset like "+02:00""#,
    ),
    (
        "common: program not a string",
        r#"
[sources.s]
type = "stdin"
program = 1
"#,
        r#"FILE:1:1: invalid type: integer `1`, expected a string"#,
    ),
    (
        "rate limit: defaults",
        r#"
[sources.s]
type = "tcp"
listen = "127.0.0.1:5514"
rate_limit = { messages = 100 }
"#,
        r#"ok: tcp StreamListen { listen: 127.0.0.1:5514, max_connections: 1024, idle_timeout: 600s, framing: Auto } | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=Some(RateLimit { messages: 100, per: 1s, burst: 100 }) peer_rate_limit=None"#,
    ),
    (
        "rate limit: missing messages",
        r#"
[sources.s]
type = "udp"
listen = "127.0.0.1:5514"
rate_limit = { per = "1s" }
"#,
        r#"FILE:4:1: sources.s.rate_limit: missing `messages` (how many messages per `per`)"#,
    ),
    (
        "rate limit: zero messages",
        r#"
[sources.s]
type = "udp"
listen = "127.0.0.1:5514"
rate_limit = { messages = 0 }
"#,
        r#"FILE:4:27: sources.s.rate_limit.messages: 0 is out of range: expected 1 to 1099511627776"#,
    ),
    (
        "rate limit: zero per",
        r#"
[sources.s]
type = "udp"
listen = "127.0.0.1:5514"
peer_rate_limit = { messages = 5, per = "0s" }
"#,
        r#"FILE:4:41: sources.s.peer_rate_limit.per: must be longer than 0s"#,
    ),
    (
        "rate limit: bad per",
        r#"
[sources.s]
type = "udp"
listen = "127.0.0.1:5514"
peer_rate_limit = { messages = 5, per = "1" }
"#,
        r#"FILE:4:41: sources.s.peer_rate_limit.per: `1` is not a duration: expected a number and a unit such as "250ms", "5s" or "10m""#,
    ),
    (
        "rate limit: zero burst",
        r#"
[sources.s]
type = "udp"
listen = "127.0.0.1:5514"
rate_limit = { messages = 5, burst = 0 }
"#,
        r#"FILE:4:38: sources.s.rate_limit.burst: 0 is out of range: expected 1 to 1099511627776"#,
    ),
    (
        "rate limit: unknown key",
        r#"
[sources.s]
type = "udp"
listen = "127.0.0.1:5514"
rate_limit = { messages = 5, window = "1s" }
"#,
        r#"FILE:4:30: window: unknown key; expected one of `messages`, `per`, `burst`"#,
    ),
    (
        "rate limit: as a table",
        r#"
[sources.s]
type = "unix_stream"
path = "/run/l.sock"

[sources.s.peer_rate_limit]
messages = 7
burst = 70
"#,
        r#"ok: unix_stream path="/run/l.sock" mode=666 max_connections=1024 | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=Some(RateLimit { messages: 7, per: 1s, burst: 70 })"#,
    ),
    // type and names
    (
        "no type",
        r#"
[sources.s]
listen = "127.0.0.1:5514"
"#,
        r#"FILE:1:1: missing field `type`"#,
    ),
    (
        "unknown type",
        r#"
[sources.s]
type = "syslog"
"#,
        r#"FILE:2:8: type: unknown type `syslog`: unknown variant `syslog`, expected one of `file`, `pipe`, `unix_dgram`, `unix_stream`, `tcp`, `udp`, `tls`, `relp`, `stdin`, `internal`"#,
    ),
    (
        "name with a dot-free bad character",
        r#"
[sources."a b"]
type = "stdin"
"#,
        r#"FILE:1:10: sources.a b: names may use only letters, digits, `_` and `-` (at most 64)"#,
    ),
    (
        "name too long",
        r#"
[sources.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]
type = "stdin"
"#,
        r#"FILE:1:10: sources.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa: names may use only letters, digits, `_` and `-` (at most 64)"#,
    ),
];

#[test]
fn sources_table() {
    run(CASES, Mode::Server, &[], &complete, &source);
}
