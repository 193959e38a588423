//! `${MACRO}` templates (in progress).

use crate::message::{Message, TimeZone};

#[derive(Debug, Clone)]
pub struct Template {}

#[derive(Debug, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct Error {
    pub column: usize,
    pub message: String,
}

impl Template {
    pub fn compile(src: &str, time_zone: TimeZone) -> Result<Template, Error> {
        let _ = (src, time_zone);
        Ok(Template {})
    }
    pub fn render(&self, msg: &Message, out: &mut Vec<u8>) {
        let _ = (msg, out);
    }
    pub fn render_path(&self, msg: &Message, out: &mut Vec<u8>) {
        let _ = (msg, out);
    }
}
