//! Copying to the clipboard of the terminal the person sits at, with OSC 52: the text travels
//! in the terminal's own byte stream, so it works over `kubectl exec`, ssh and tmux (with
//! `set-clipboard on`), where no X or Wayland clipboard of the build's machine would help.

use std::io::Write;

/// The most text one copy sends. xterm and tmux take far more, but some terminals drop an
/// OSC 52 sequence beyond about 100 KB of base64 without a word; refusing is better than a
/// copy that silently did not happen.
pub const MAX_BYTES: usize = 74_000;

/// The escape sequence that sets the clipboard (`c`) to `text`.
pub fn osc52(text: &str) -> String {
    format!("\x1b]52;c;{}\x07", base64(text.as_bytes()))
}

/// Standard base64 with padding (RFC 4648), all OSC 52 needs.
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Writes the sequence to the terminal.
pub fn copy(out: &mut impl Write, text: &str) -> std::io::Result<()> {
    out.write_all(osc52(text).as_bytes())?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sequence_carries_the_text_in_base64() {
        assert_eq!(osc52("sha256:ab"), "\x1b]52;c;c2hhMjU2OmFi\x07");
        // Newlines and escapes travel inside the base64, never raw.
        assert!(!osc52("a\nb\x1b]0;x\x07").contains('\n'));
        // RFC 4648's test vectors.
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }
}
