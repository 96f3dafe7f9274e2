//! Building deterministic tar headers for layers.
//!
//! Headers are ustar with exact modes and owners, blank user/group names, and PAX records
//! (never GNU LongLink) for whatever ustar cannot hold: long names and link names, large ids,
//! and extended attributes as `SCHILY.xattr.*`.

use std::io::{self, Write};

use tar::{EntryType, Header};

/// Largest value of an 8-byte octal ustar numeric field.
const USTAR_ID_MAX: u64 = 0o7777777;

/// A header and the PAX records that must precede it.
pub(crate) struct TarEntry {
    pub header: Header,
    pub pax: Vec<(String, Vec<u8>)>,
}

/// Metadata for one layer entry.
pub(crate) struct EntryMeta<'a> {
    pub kind: EntryType,
    /// Relative tar path (`etc/passwd`, `etc/` for directories).
    pub path: &'a str,
    pub link: Option<&'a str>,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
    pub size: u64,
    pub dev: Option<(u32, u32)>,
    /// Extended attributes, already sorted by name.
    pub xattrs: &'a [(Vec<u8>, Vec<u8>)],
}

/// Copies `s` into a fixed header field, truncated at a char boundary. The truncated form is
/// only for readers without PAX support; the PAX record carries the real value.
fn set_field(field: &mut [u8], s: &str) {
    let mut end = s.len().min(field.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    field.fill(0);
    field[..end].copy_from_slice(&s.as_bytes()[..end]);
}

pub(crate) fn build(m: &EntryMeta<'_>) -> io::Result<TarEntry> {
    let mut h = Header::new_ustar();
    let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
    h.set_entry_type(m.kind);
    {
        let old = h.as_old_mut();
        set_field(&mut old.name, m.path);
        if let Some(link) = m.link {
            set_field(&mut old.linkname, link);
        }
    }
    if m.path.len() > 100 {
        pax.push(("path".into(), m.path.as_bytes().to_vec()));
    }
    if let Some(link) = m.link
        && link.len() > 100
    {
        pax.push(("linkpath".into(), link.as_bytes().to_vec()));
    }
    h.set_mode(m.mode & 0o7777);
    h.set_uid(u64::from(m.uid));
    h.set_gid(u64::from(m.gid));
    if u64::from(m.uid) > USTAR_ID_MAX {
        pax.push(("uid".into(), m.uid.to_string().into_bytes()));
    }
    if u64::from(m.gid) > USTAR_ID_MAX {
        pax.push(("gid".into(), m.gid.to_string().into_bytes()));
    }
    h.set_mtime(m.mtime);
    h.set_size(m.size);
    if let Some((major, minor)) = m.dev {
        h.set_device_major(major)?;
        h.set_device_minor(minor)?;
    }
    for (name, value) in m.xattrs {
        let name = std::str::from_utf8(name)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "xattr name is not UTF-8"))?;
        pax.push((format!("SCHILY.xattr.{name}"), value.clone()));
    }
    h.set_cksum();
    Ok(TarEntry { header: h, pax })
}

/// Writes an entry's PAX records (if any) and header, with no data.
pub(crate) fn write_header<W: Write>(b: &mut tar::Builder<W>, e: &TarEntry) -> io::Result<()> {
    if !e.pax.is_empty() {
        b.append_pax_extensions(e.pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))?;
    }
    b.get_mut().write_all(e.header.as_bytes())
}

/// Zero padding after `len` bytes of entry data.
pub(crate) fn write_padding<W: Write>(w: &mut W, len: u64) -> io::Result<()> {
    let rem = (len % 512) as usize;
    if rem != 0 {
        w.write_all(&[0u8; 512][..512 - rem])?;
    }
    Ok(())
}
