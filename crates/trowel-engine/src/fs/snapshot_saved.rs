//! A snapshot index in bytes, to be kept beside what it indexes: the initial index of a root
//! mounted from the unpacked-layer store is the same every time the same entries are mounted
//! the same way (they never change), so a build reads it back instead of walking thousands of
//! base files again (`engine/root_store/` decides when, and under which key).
//!
//! The bytes: `TRIX`, the key's length and the key, the SHA-256 of the rest, then the tree in
//! pre-order (name, metadata, number of children) and the names of the paths with several
//! links. Anything that does not decode whole, or whose key or checksum does not match, is no
//! index at all: the caller walks the root as it would have anyway.

use sha2::{Digest as _, Sha256};

use super::FileType;
use super::snapshot_index::{Meta, Node};
use super::snapshot_lazy::Content;

const MAGIC: &[u8; 4] = b"TRIX";

/// `node` (its own metadata included, though a reader replaces it) and `linked`, under `key`.
pub(crate) fn encode(key: &[u8], node: &Node, linked: &[&str]) -> Vec<u8> {
    let mut body = Vec::with_capacity(64 * node.count() as usize);
    put_node(&mut body, node);
    put_u32(&mut body, linked.len() as u32);
    for l in linked {
        put_str(&mut body, l);
    }
    let mut out = Vec::with_capacity(body.len() + key.len() + 48);
    out.extend_from_slice(MAGIC);
    put_u32(&mut out, key.len() as u32);
    out.extend_from_slice(key);
    out.extend_from_slice(&Sha256::digest(&body));
    out.extend_from_slice(&body);
    out
}

/// What [`encode`] wrote, if `bytes` are whole and were written under `key`.
pub(crate) fn decode(key: &[u8], bytes: &[u8]) -> Option<(Node, Vec<String>)> {
    let mut r = Reader(bytes);
    if r.take(4)? != MAGIC {
        return None;
    }
    let n = r.u32()? as usize;
    if r.take(n)? != key {
        return None;
    }
    let sum = r.take(32)?;
    if Sha256::digest(r.0).as_slice() != sum {
        return None;
    }
    let node = r.node(0)?;
    let count = r.u32()? as usize;
    let mut linked = Vec::with_capacity(count.min(1 << 16));
    for _ in 0..count {
        linked.push(r.str()?.to_string());
    }
    r.0.is_empty().then_some((node, linked))
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u32(out, s.len() as u32);
    out.extend_from_slice(s.as_bytes());
}

fn put_node(out: &mut Vec<u8>, n: &Node) {
    put_str(out, &n.name);
    let m = &n.meta;
    out.push(kind_code(m.kind));
    put_u32(out, m.mode);
    put_u32(out, m.uid);
    put_u32(out, m.gid);
    put_u64(out, m.size);
    for v in [m.mtime, m.ctime] {
        put_u64(out, v as u64);
    }
    put_u64(out, m.ino);
    put_u64(out, m.birth as u64);
    put_u64(out, m.xattrs);
    match m.content {
        Content::None => out.push(0),
        Content::Known(h) => {
            out.push(1);
            out.extend_from_slice(&h);
        }
        Content::Pending => out.push(2),
        Content::Lower => out.push(3),
    }
    match &m.link {
        None => out.push(0),
        Some(l) => {
            out.push(1);
            put_str(out, l);
        }
    }
    put_u32(out, n.children.len() as u32);
    for c in &n.children {
        put_node(out, c);
    }
}

const KINDS: [FileType; 8] = [
    FileType::File,
    FileType::Dir,
    FileType::Symlink,
    FileType::Hardlink,
    FileType::CharDevice,
    FileType::BlockDevice,
    FileType::Fifo,
    FileType::Socket,
];

fn kind_code(k: FileType) -> u8 {
    KINDS.iter().position(|x| *x == k).expect("every kind is listed") as u8
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn str(&mut self) -> Option<&'a str> {
        let n = self.u32()? as usize;
        std::str::from_utf8(self.take(n)?).ok()
    }

    /// A node and its subtree; `depth` bounds the recursion (a path has at most 4096 bytes,
    /// so no real tree is deeper than 2048 levels).
    fn node(&mut self, depth: usize) -> Option<Node> {
        if depth > 2048 {
            return None;
        }
        let name = self.str()?.into();
        let kind = *KINDS.get(self.u8()? as usize)?;
        let (mode, uid, gid) = (self.u32()?, self.u32()?, self.u32()?);
        let size = self.u64()?;
        let (mtime, ctime) = (self.u64()? as i64, self.u64()? as i64);
        let ino = self.u64()?;
        let birth = self.u64()? as i64;
        let xattrs = self.u64()?;
        let content = match self.u8()? {
            0 => Content::None,
            1 => Content::Known(self.take(16)?.try_into().ok()?),
            2 => Content::Pending,
            3 => Content::Lower,
            _ => return None,
        };
        let link = match self.u8()? {
            0 => None,
            1 => Some(self.str()?.into()),
            _ => return None,
        };
        let meta = Meta { kind, mode, uid, gid, size, mtime, ctime, ino, birth, xattrs, content, link };
        let count = self.u32()? as usize;
        // Each child takes far more than one byte: a count the rest cannot hold is no index.
        if count > self.0.len() {
            return None;
        }
        let mut children = Vec::with_capacity(count);
        for _ in 0..count {
            children.push(self.node(depth + 1)?);
        }
        Some(Node { name, meta, children })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, kind: FileType, content: Content, link: Option<&str>, children: Vec<Node>) -> Node {
        let meta = Meta {
            kind,
            mode: 0o755,
            uid: 1,
            gid: 2,
            size: 3,
            mtime: -4,
            ctime: 5_000_000_001,
            ino: u64::MAX,
            birth: 0,
            xattrs: 7,
            content,
            link: link.map(Into::into),
        };
        Node { name: name.into(), meta, children }
    }

    fn tree() -> Node {
        let file = node("f", FileType::File, Content::Known([9; 16]), None, vec![]);
        let lower = node("g", FileType::File, Content::Lower, None, vec![]);
        let link = node("l", FileType::Symlink, Content::None, Some("../f"), vec![]);
        let dir = node("d", FileType::Dir, Content::None, None, vec![file, lower, link]);
        node(
            "",
            FileType::Dir,
            Content::None,
            None,
            vec![dir, node("p", FileType::Fifo, Content::Pending, None, vec![])],
        )
    }

    fn same(a: &Node, b: &Node) -> bool {
        format!("{a:?}") == format!("{b:?}")
    }

    #[test]
    fn an_index_reads_back_as_it_was_written() {
        let bytes = encode(b"key", &tree(), &["/d/f", "/d"]);
        let (back, linked) = decode(b"key", &bytes).expect("decodes");
        assert!(same(&back, &tree()), "{back:?}");
        assert_eq!(linked, ["/d/f", "/d"]);
    }

    #[test]
    fn another_key_a_changed_byte_or_a_cut_file_is_no_index() {
        let bytes = encode(b"key", &tree(), &[]);
        assert!(decode(b"other", &bytes).is_none());
        for at in [0, 8, bytes.len() / 2, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 1;
            assert!(decode(b"key", &bad).is_none(), "byte {at} changed");
        }
        for len in [0, 3, 10, bytes.len() - 1] {
            assert!(decode(b"key", &bytes[..len]).is_none(), "cut at {len}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(b"key", &longer).is_none());
    }
}
