//! (in progress: placeholder until the codecs land)

/// What to do with a frame longer than `max_message_bytes`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Oversize {
    #[default]
    Truncate,
    Discard,
}

/// How frames are delimited on a stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Framing {
    #[default]
    Auto,
    OctetCounting,
    Lf,
}
