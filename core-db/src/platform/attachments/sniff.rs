//! Content types from magic numbers, and image dimensions from image headers.
//!
//! Only the first bytes of a file are needed: [`sniff`] looks at the signature, [`dimensions`]
//! reads the header with `imagesize` (for JPEG, the segments up to the first frame header).
//! Nothing is decoded.

use std::io::Cursor;

use imagesize::ImageType;

/// `image/png`
pub const PNG: &str = "image/png";
/// `image/jpeg`
pub const JPEG: &str = "image/jpeg";
/// `image/gif`
pub const GIF: &str = "image/gif";
/// `image/webp`
pub const WEBP: &str = "image/webp";
/// `application/pdf`
pub const PDF: &str = "application/pdf";
/// `text/plain`: UTF-8 without control characters other than tab, line feed, form feed and
/// carriage return.
pub const TEXT: &str = "text/plain";

/// The content type `head` (the first bytes of a file) starts with, or `None` if it is none of
/// PNG, JPEG, GIF, WebP, PDF or plain text.
///
/// ```
/// use core_db::attachments::sniff;
///
/// assert_eq!(sniff::sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), Some("image/png"));
/// assert_eq!(sniff::sniff(b"%PDF-1.7\n"), Some("application/pdf"));
/// assert_eq!(sniff::sniff(b"MZ\x90\0\x03\0\0\0"), None); // an executable
/// ```
pub fn sniff(head: &[u8]) -> Option<&'static str> {
    // The full signatures, not the `infer` crate's matchers: those check 3 or 4 bytes of PNG
    // and GIF, skip WebP's RIFF container and find `%PDF` anywhere in the first KiB, so a
    // truncated or disguised file would pass as an image or a PDF.
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(PNG)
    } else if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(JPEG)
    } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        Some(GIF)
    } else if head.len() >= 12 && head.starts_with(b"RIFF") && &head[8..12] == b"WEBP" {
        Some(WEBP)
    } else if head.starts_with(b"%PDF-") {
        Some(PDF)
    } else if is_text(head) {
        Some(TEXT)
    } else {
        None
    }
}

/// Whether `head` looks like UTF-8 text. A multi-byte character cut off at the end of `head`
/// is allowed, since `head` may be the start of a longer file.
fn is_text(head: &[u8]) -> bool {
    if head.is_empty() {
        return false;
    }
    let text = match std::str::from_utf8(head) {
        Ok(text) => text,
        Err(e) if e.error_len().is_none() => match std::str::from_utf8(&head[..e.valid_up_to()]) {
            Ok(text) => text,
            Err(_) => return false,
        },
        Err(_) => return false,
    };
    text.chars()
        .all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r' | '\x0C'))
}

/// Whether `content_type` is one of the image types [`dimensions`] reads.
pub fn is_image(content_type: &str) -> bool {
    matches!(content_type, PNG | JPEG | GIF | WEBP)
}

/// `(width, height)` in pixels read from the header of an image of `content_type`, or `None` if
/// the type is not an image this reads or the header is cut short or malformed.
///
/// ```
/// use core_db::attachments::sniff;
///
/// let gif = b"GIF89a\x40\x01\xf0\x00\x80\x00\x00";
/// assert_eq!(sniff::dimensions("image/gif", gif), Some((320, 240)));
/// ```
pub fn dimensions(content_type: &str, head: &[u8]) -> Option<(u32, u32)> {
    match content_type {
        PNG => read_size(ImageType::Png, head),
        GIF => read_size(ImageType::Gif, head),
        JPEG => jpeg(head),
        WEBP if head.get(12..16) == Some(b"VP8 ") => vp8(head),
        // `blob_size` checks the RIFF container and positions the reader at the first chunk.
        WEBP => imagesize::blob_size(head).ok().and_then(to_u32),
        _ => None,
    }
    .filter(|&(w, h)| w > 0 && h > 0)
}

/// The size `imagesize` reads from the header of an image of type `kind`.
fn read_size(kind: ImageType, head: &[u8]) -> Option<(u32, u32)> {
    kind.reader_size(&mut Cursor::new(head))
        .ok()
        .and_then(to_u32)
}

fn to_u32(size: imagesize::ImageSize) -> Option<(u32, u32)> {
    Some((
        u32::try_from(size.width).ok()?,
        u32::try_from(size.height).ok()?,
    ))
}

fn le16(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 2)?;
    Some(u32::from(u16::from_le_bytes([s[0], s[1]])))
}

fn be16(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 2)?;
    Some(u32::from(u16::from_be_bytes([s[0], s[1]])))
}

/// Lossy WebP (`VP8 `): frame tag (3 bytes) at 20, start code 9d 01 2a at 23, then 14-bit
/// sizes. Kept here because `imagesize` returns the whole 16-bit fields, whose upper 2 bits are
/// the scaling mode, not the size.
fn vp8(b: &[u8]) -> Option<(u32, u32)> {
    if b.get(23..26)? != [0x9d, 0x01, 0x2a] {
        return None;
    }
    Some((le16(b, 26)? & 0x3fff, le16(b, 28)? & 0x3fff))
}

/// JPEG: walks the marker segments to the first start-of-frame (SOF0–SOF15 but DHT, JPG and
/// DAC), whose payload holds precision, height, width.
///
/// Kept here because `imagesize` reads fill bytes (`FF FF`, allowed before any marker) and the
/// standalone markers (TEM, RST0–7) as segments with a length, and so misreads such files.
fn jpeg(b: &[u8]) -> Option<(u32, u32)> {
    let mut at = 2;
    loop {
        // Markers may be preceded by any number of 0xFF fill bytes.
        if *b.get(at)? != 0xFF {
            return None;
        }
        while *b.get(at)? == 0xFF {
            at += 1;
        }
        let marker = *b.get(at)?;
        at += 1;
        match marker {
            // Standalone markers: TEM, RST0–7 carry no length.
            0x01 | 0xD0..=0xD7 => continue,
            // Start of scan or end of image before any frame header.
            0xD9 | 0xDA => return None,
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                // Length (2), precision (1), height (2), width (2).
                return Some((be16(b, at + 5)?, be16(b, at + 3)?));
            }
            _ => {
                let len = be16(b, at)? as usize;
                if len < 2 {
                    return None;
                }
                at += len;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_head(w: u32, h: u32) -> Vec<u8> {
        let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        b.extend_from_slice(&w.to_be_bytes());
        b.extend_from_slice(&h.to_be_bytes());
        b.extend_from_slice(&[8, 6, 0, 0, 0]);
        b
    }

    fn jpeg_head(w: u16, h: u16) -> Vec<u8> {
        let mut b = vec![0xFF, 0xD8];
        // APP0 JFIF, 16 bytes.
        b.extend_from_slice(&[0xFF, 0xE0, 0x00, 0x10]);
        b.extend_from_slice(b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
        // A fill byte, then DHT (must be skipped, not read as a frame).
        b.extend_from_slice(&[0xFF, 0xFF, 0xC4, 0x00, 0x04, 0x00, 0x00]);
        // SOF2 (progressive): length 17, precision 8, height, width, 3 components.
        b.extend_from_slice(&[0xFF, 0xC2, 0x00, 0x11, 0x08]);
        b.extend_from_slice(&h.to_be_bytes());
        b.extend_from_slice(&w.to_be_bytes());
        b.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
        b.extend_from_slice(&[0xFF, 0xD9]);
        b
    }

    #[test]
    fn sniffs_magic_numbers() {
        assert_eq!(sniff(&png_head(1, 1)), Some(PNG));
        assert_eq!(sniff(&jpeg_head(1, 1)), Some(JPEG));
        assert_eq!(sniff(b"GIF87a\x01\x00\x01\x00"), Some(GIF));
        assert_eq!(sniff(b"RIFF\x24\0\0\0WEBPVP8 "), Some(WEBP));
        assert_eq!(sniff(b"RIFF\x24\0\0\0WAVEfmt "), None);
        assert_eq!(sniff(b"%PDF-1.4"), Some(PDF));
        assert_eq!(sniff("plain text, ünïcode\r\n\tok".as_bytes()), Some(TEXT));
        assert_eq!(sniff(b"\x7fELF\x02\x01\x01"), None);
        assert_eq!(sniff(b"text with a \0 NUL"), None);
        assert_eq!(sniff(b""), None);
        // A character cut off by the end of the head still counts as text.
        assert_eq!(sniff(&"aé".as_bytes()[..2]), Some(TEXT));
        assert_eq!(sniff(b"\xff\xfe bad"), None);
    }

    #[test]
    fn reads_png_and_jpeg_dimensions() {
        assert_eq!(dimensions(PNG, &png_head(640, 480)), Some((640, 480)));
        assert_eq!(dimensions(PNG, &png_head(640, 480)[..20]), None);
        assert_eq!(dimensions(JPEG, &jpeg_head(1024, 768)), Some((1024, 768)));
        let cut = jpeg_head(1024, 768);
        assert_eq!(dimensions(JPEG, &cut[..30]), None);
        assert_eq!(dimensions(JPEG, &[0xFF, 0xD8, 0xFF, 0xDA, 0, 2]), None);
        assert_eq!(dimensions(PDF, b"%PDF-1.4"), None);
    }

    #[test]
    fn reads_gif_and_webp_dimensions() {
        assert_eq!(dimensions(GIF, b"GIF89a\x20\x03\x58\x02"), Some((800, 600)));
        // VP8: frame tag, start code, 14-bit width/height (upper 2 bits are scaling).
        let mut lossy = b"RIFF\0\0\0\0WEBPVP8 \0\0\0\0\x10\x02\x00\x9d\x01\x2a".to_vec();
        lossy.extend_from_slice(&(400u16 | 0x4000).to_le_bytes());
        lossy.extend_from_slice(&300u16.to_le_bytes());
        assert_eq!(dimensions(WEBP, &lossy), Some((400, 300)));
        // VP8L: signature 0x2f, then (w-1) in 14 bits and (h-1) in the next 14.
        let bits: u32 = (99) | (49 << 14);
        let mut lossless = b"RIFF\0\0\0\0WEBPVP8L\0\0\0\0\x2f".to_vec();
        lossless.extend_from_slice(&bits.to_le_bytes());
        assert_eq!(dimensions(WEBP, &lossless), Some((100, 50)));
        // VP8X: flags (4 bytes), then 24-bit (w-1) and (h-1).
        let mut extended = b"RIFF\0\0\0\0WEBPVP8X\0\0\0\0\0\0\0\0".to_vec();
        extended.extend_from_slice(&[0x7f, 0x07, 0x00, 0x37, 0x04, 0x00]);
        assert_eq!(dimensions(WEBP, &extended), Some((1920, 1080)));
    }
}
