//! Shared encodings: the canonical byte strings that signatures cover, hex fields in TOML files
//! and one-line positions for TOML syntax errors.
//!
//! Signatures never cover TOML text: a re-serialised file may order keys or quote strings
//! differently, so every signed object is first turned into a [`Transcript`], a domain tag
//! followed by length-prefixed fields in a fixed order. Two different objects can therefore
//! never produce the same signed bytes.

use sha2::{Digest, Sha256};

/// A canonical, unambiguous byte string: a domain tag, then each field as a u32 little-endian
/// length followed by its bytes.
#[derive(Debug, Clone)]
pub(crate) struct Transcript {
    bytes: Vec<u8>,
}

impl Transcript {
    /// Starts a transcript for one kind of signed object; the tag keeps kinds apart.
    pub(crate) fn new(domain: &str) -> Self {
        let mut transcript = Self { bytes: Vec::new() };
        transcript.push(domain.as_bytes());
        transcript
    }

    /// Appends one field.
    pub(crate) fn push(&mut self, field: &[u8]) -> &mut Self {
        // Every field the lock signs is far below 4 GiB: tariffs and reasons are bounded
        // by the file size limits of the binary; saturate rather than wrap all the same.
        let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
        self.bytes.extend_from_slice(&len.to_le_bytes());
        self.bytes.extend_from_slice(field);
        self
    }

    /// Appends an integer field as 8 little-endian bytes.
    pub(crate) fn push_u64(&mut self, value: u64) -> &mut Self {
        self.push(&value.to_le_bytes())
    }

    /// The canonical bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// SHA-256 of the canonical bytes.
    pub(crate) fn digest(&self) -> [u8; 32] {
        Sha256::digest(&self.bytes).into()
    }
}

/// SHA-256 of a byte string.
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Decodes a hex field of exactly `N` bytes, naming the field when it is not.
pub(crate) fn hex_array<const N: usize>(
    field: &'static str,
    text: &str,
) -> Result<[u8; N], String> {
    let bytes = hex_vec(field, text)?;
    <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| {
        format!(
            "field {field}: expected {N} bytes ({} hex digits), found {} bytes",
            2 * N,
            bytes.len()
        )
    })
}

/// Decodes a hex field of any length, naming the field when it is not hex.
pub(crate) fn hex_vec(field: &'static str, text: &str) -> Result<Vec<u8>, String> {
    hex::decode(text.trim()).map_err(|err| format!("field {field}: not hex ({err})"))
}

/// Turns a TOML error into one line: `line L, column C: message`.
///
/// The `toml` crate's own `Display` draws a multi-line snippet; the dcnet binary promises
/// one-line errors that name the position, so the span is converted here.
pub(crate) fn toml_error_line(text: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim().replace('\n', " ");
    match err.span() {
        Some(span) => {
            let (line, column) = line_column(text, span.start);
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map_or(0, |tail| tail.chars().count())
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcript_fields_are_length_prefixed_so_splits_differ() {
        let mut ab_c = Transcript::new("t");
        ab_c.push(b"ab").push(b"c");
        let mut a_bc = Transcript::new("t");
        a_bc.push(b"a").push(b"bc");
        assert_ne!(ab_c.as_bytes(), a_bc.as_bytes());
        assert_eq!(
            ab_c.as_bytes(),
            b"\x01\x00\x00\x00t\x02\x00\x00\x00ab\x01\x00\x00\x00c"
        );
    }

    #[test]
    fn hex_array_names_the_field_and_length() {
        assert_eq!(hex_array::<2>("k", "0aff"), Ok([0x0a, 0xff]));
        let err = hex_array::<2>("k", "0a").unwrap_err();
        assert!(
            err.contains("field k") && err.contains("found 1 bytes"),
            "{err}"
        );
        assert!(hex_array::<2>("k", "zz").unwrap_err().contains("not hex"));
    }

    #[test]
    fn toml_errors_become_one_line_with_position() {
        let text = "a = 1\nb = = 2\n";
        let err = toml::from_str::<toml::Table>(text).unwrap_err();
        let line = toml_error_line(text, &err);
        assert!(line.starts_with("line 2, column "), "{line}");
        assert!(!line.contains('\n'));
    }
}
