//! (in progress)

/// STUB so the `format` branch compiles; the real writer comes from the
/// grammar branch (this commit is dropped at merge).
pub fn write(msg: &crate::message::Message, out: &mut Vec<u8>) {
    let _ = (msg, out);
}
