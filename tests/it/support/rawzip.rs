//! A tiny zip writer that writes exactly what it is told: local headers, central directory
//! and end record built by hand. The `zip` crate's writer refuses (or silently fixes) the
//! hostile archives the bad-archive suite needs — duplicate names, `../` names, symlink
//! entries, encrypted flags, lying sizes — so the tests forge them here.

/// "Version made by" high byte for Unix: the external attributes then hold `st_mode << 16`.
const MADE_BY_UNIX: u16 = 3 << 8 | 20;
/// DOS date of 1980-01-01 (the zip epoch).
const DOS_DATE_1980: u16 = 1 << 5 | 1;

/// One entry, written as given.
#[derive(Debug, Clone)]
pub struct RawEntry {
    /// The entry name, raw bytes (may be anything, even invalid UTF-8).
    pub name: Vec<u8>,
    /// The bytes stored in the archive (compressed when `method` is 8).
    pub stored: Vec<u8>,
    /// 0 stored, 8 deflated.
    pub method: u16,
    /// CRC-32 written in the headers.
    pub crc: u32,
    /// Uncompressed size written in the headers.
    pub size: u32,
    /// General purpose flags (bit 0: encrypted).
    pub flags: u16,
    /// External attributes: Unix mode in the high 16 bits.
    pub external_attrs: u32,
}

impl RawEntry {
    /// A stored regular file with mode 0644 and honest CRC and size.
    pub fn file(name: impl Into<Vec<u8>>, data: impl Into<Vec<u8>>) -> RawEntry {
        let data = data.into();
        RawEntry {
            name: name.into(),
            crc: crc32fast::hash(&data),
            size: u32::try_from(data.len()).expect("test entries are small"),
            stored: data,
            method: 0,
            flags: 0,
            external_attrs: 0o100_644 << 16,
        }
    }

    /// A deflated regular file: `deflated` is a raw deflate stream, `size` and `crc` are
    /// whatever the test wants the headers to claim.
    pub fn deflated(name: impl Into<Vec<u8>>, deflated: Vec<u8>, size: u32, crc: u32) -> RawEntry {
        RawEntry { method: 8, size, crc, stored: deflated, ..RawEntry::file(name, Vec::new()) }
    }

    /// A symlink entry pointing at `target`, as Info-ZIP stores one (mode 0120777).
    pub fn symlink(name: impl Into<Vec<u8>>, target: &str) -> RawEntry {
        RawEntry { external_attrs: 0o120_777 << 16, ..RawEntry::file(name, target.as_bytes()) }
    }

    /// Sets the Unix mode (file type and permission bits).
    pub fn mode(mut self, mode: u32) -> RawEntry {
        self.external_attrs = mode << 16;
        self
    }

    /// Sets the "encrypted" flag (the content stays plain; a reader must refuse on the flag).
    pub fn encrypted(mut self) -> RawEntry {
        self.flags |= 1;
        self
    }

    /// Makes the headers claim another uncompressed size.
    pub fn declared_size(mut self, size: u32) -> RawEntry {
        self.size = size;
        self
    }
}

/// An archive of [`RawEntry`]s in the order given.
#[derive(Debug, Clone, Default)]
pub struct RawZip {
    /// The entries.
    pub entries: Vec<RawEntry>,
}

impl RawZip {
    /// An archive holding plain stored files.
    pub fn of_files<N: AsRef<str>, D: AsRef<[u8]>>(
        files: impl IntoIterator<Item = (N, D)>,
    ) -> RawZip {
        RawZip {
            entries: files
                .into_iter()
                .map(|(n, d)| RawEntry::file(n.as_ref(), d.as_ref()))
                .collect(),
        }
    }

    /// Appends an entry.
    pub fn with(mut self, entry: RawEntry) -> RawZip {
        self.entries.push(entry);
        self
    }

    /// Drops every entry named `name`.
    pub fn without(mut self, name: &str) -> RawZip {
        self.entries.retain(|e| e.name != name.as_bytes());
        self
    }

    /// The archive's bytes: local header + data per entry, then the central directory and
    /// the end-of-central-directory record (APPNOTE 4.3.7, 4.3.12, 4.3.16).
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut central = Vec::new();
        for e in &self.entries {
            let offset = u32::try_from(out.len()).expect("small archive");
            let compressed = u32::try_from(e.stored.len()).expect("small entry");
            let name_len = u16::try_from(e.name.len()).expect("short name");
            put32(&mut out, 0x0403_4b50);
            put_shared_fields(&mut out, e, compressed, name_len);
            put16(&mut out, 0); // extra field length
            out.extend_from_slice(&e.name);
            out.extend_from_slice(&e.stored);

            put32(&mut central, 0x0201_4b50);
            put16(&mut central, MADE_BY_UNIX);
            put_shared_fields(&mut central, e, compressed, name_len);
            put16(&mut central, 0); // extra field length
            put16(&mut central, 0); // comment length
            put16(&mut central, 0); // disk number
            put16(&mut central, 0); // internal attributes
            put32(&mut central, e.external_attrs);
            put32(&mut central, offset);
            central.extend_from_slice(&e.name);
        }
        let count = u16::try_from(self.entries.len()).expect("few entries");
        let central_offset = u32::try_from(out.len()).expect("small archive");
        let central_size = u32::try_from(central.len()).expect("small directory");
        out.extend_from_slice(&central);
        put32(&mut out, 0x0605_4b50);
        put16(&mut out, 0);
        put16(&mut out, 0);
        put16(&mut out, count);
        put16(&mut out, count);
        put32(&mut out, central_size);
        put32(&mut out, central_offset);
        put16(&mut out, 0);
        out
    }
}

/// The fields local and central headers share, from "version needed" to the name length.
fn put_shared_fields(out: &mut Vec<u8>, e: &RawEntry, compressed: u32, name_len: u16) {
    put16(out, 20);
    put16(out, e.flags);
    put16(out, e.method);
    put16(out, 0);
    put16(out, DOS_DATE_1980);
    put32(out, e.crc);
    put32(out, compressed);
    put32(out, e.size);
    put16(out, name_len);
}

fn put16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}
