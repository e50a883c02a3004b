//! The package databases and metadata files an image's layers are read for, each parsed
//! from bytes (the caller bounds how many): Debian `dpkg` status files, Alpine's `apk`
//! database, Python `*.dist-info/METADATA`, Node `package.json`, Java `pom.properties` and
//! `MANIFEST.MF`, and Go's embedded build information. Nothing is executed.
//!
//! Package URLs follow the purl specification: the type, a namespace where the type has one,
//! the name and version percent-encoded, qualifiers sorted.

use serde::{Deserialize, Serialize};

/// Which package manager (or build system) a package was recorded by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ecosystem {
    /// Debian and Ubuntu (`var/lib/dpkg/status`, `status.d/`).
    Deb,
    /// Alpine (`lib/apk/db/installed`).
    Apk,
    /// Python (`*.dist-info/METADATA`).
    Pypi,
    /// Node (`node_modules/**/package.json`).
    Npm,
    /// Go modules (a binary's build information).
    Golang,
    /// Java (`pom.properties`, `MANIFEST.MF` of jars).
    Maven,
}

impl Ecosystem {
    /// The name used in documents and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Ecosystem::Deb => "deb",
            Ecosystem::Apk => "apk",
            Ecosystem::Pypi => "pypi",
            Ecosystem::Npm => "npm",
            Ecosystem::Golang => "golang",
            Ecosystem::Maven => "maven",
        }
    }

    /// The ecosystem named `text`, if any.
    pub fn parse(text: &str) -> Option<Ecosystem> {
        [
            Ecosystem::Deb,
            Ecosystem::Apk,
            Ecosystem::Pypi,
            Ecosystem::Npm,
            Ecosystem::Golang,
            Ecosystem::Maven,
        ]
        .into_iter()
        .find(|e| e.as_str() == text)
    }
}

/// One package as its metadata describes it (the layer and file are added by the scan).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Found {
    /// Who recorded it.
    pub ecosystem: Ecosystem,
    /// The name.
    pub name: String,
    /// The version, as recorded.
    pub version: String,
    /// The package URL (none when the metadata does not say enough for one).
    pub purl: Option<String>,
    /// The declared license, as written (an SPDX expression or free text).
    pub license: Option<String>,
    /// The CPU architecture, for OS packages.
    pub arch: Option<String>,
}

impl Found {
    fn new(ecosystem: Ecosystem, name: &str, version: &str) -> Found {
        Found {
            ecosystem,
            name: name.to_string(),
            version: version.to_string(),
            purl: None,
            license: None,
            arch: None,
        }
    }
}

impl Found {
    /// The same package with its purl naming `os` as its distribution (for OS packages; the
    /// os-release file may be in another layer than the package database).
    pub fn with_distro(mut self, os: &OsRelease) -> Found {
        let (kind, default) = match self.ecosystem {
            Ecosystem::Deb => ("deb", "debian"),
            Ecosystem::Apk => ("apk", "alpine"),
            _ => return self,
        };
        self.purl =
            Some(os_purl(kind, default, &self.name, &self.version, self.arch.as_deref(), Some(os)));
        self
    }
}

/// The distribution an image's `os-release` names: `ID` and `VERSION_ID`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct OsRelease {
    /// `ID` (`debian`, `ubuntu`, `alpine`).
    pub id: String,
    /// `VERSION_ID` (`12`, `22.04`, `3.19.1`), if given.
    pub version_id: Option<String>,
}

/// Reads an `os-release` file.
pub fn os_release(text: &str) -> Option<OsRelease> {
    let mut release = OsRelease::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else { continue };
        let value = value.trim().trim_matches(|c| c == '"' || c == '\'').to_string();
        match key.trim() {
            "ID" => release.id = value,
            "VERSION_ID" => release.version_id = Some(value),
            _ => {}
        }
    }
    (!release.id.is_empty()).then_some(release)
}

/// RFC 822-style stanzas (dpkg's format): `Key: value` lines, continuation lines starting
/// with a space or tab, stanzas separated by blank lines. Each stanza is its fields in order.
fn stanzas(text: &str) -> Vec<Vec<(&str, String)>> {
    let mut all = Vec::new();
    let mut current: Vec<(&str, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                all.push(std::mem::take(&mut current));
            }
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = current.last_mut() {
                value.push('\n');
                value.push_str(line.trim());
            }
        } else if let Some((key, value)) = line.split_once(':') {
            current.push((key, value.trim().to_string()));
        }
    }
    if !current.is_empty() {
        all.push(current);
    }
    all
}

fn field<'a>(stanza: &'a [(&str, String)], key: &str) -> Option<&'a str> {
    stanza.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str())
}

/// The installed packages of a dpkg status file (or one file of distroless `status.d/`,
/// whose stanzas have no `Status:`). Packages removed but with their configuration left
/// (`deinstall ok config-files`) are not installed, so not listed.
pub fn dpkg(text: &str, os: Option<&OsRelease>) -> Vec<Found> {
    let mut found = Vec::new();
    for stanza in stanzas(text) {
        let (Some(name), Some(version)) = (field(&stanza, "Package"), field(&stanza, "Version"))
        else {
            continue;
        };
        if field(&stanza, "Status")
            .is_some_and(|s| s.split_whitespace().last() != Some("installed"))
        {
            continue;
        }
        let mut package = Found::new(Ecosystem::Deb, name, version);
        package.arch = field(&stanza, "Architecture").map(str::to_string);
        package.purl = Some(os_purl("deb", "debian", name, version, package.arch.as_deref(), os));
        found.push(package);
    }
    found
}

/// The packages of Alpine's `lib/apk/db/installed` (`P:` name, `V:` version, `A:` arch,
/// `L:` license).
pub fn apk(text: &str, os: Option<&OsRelease>) -> Vec<Found> {
    let mut found = Vec::new();
    for block in text.split("\n\n") {
        let get = |key: &str| {
            block.lines().find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
        };
        let (Some(name), Some(version)) = (get("P"), get("V")) else { continue };
        let mut package = Found::new(Ecosystem::Apk, name, version);
        package.arch = get("A").map(str::to_string);
        package.license = get("L").filter(|l| !l.is_empty()).map(str::to_string);
        package.purl = Some(os_purl("apk", "alpine", name, version, package.arch.as_deref(), os));
        found.push(package);
    }
    found
}

/// `pkg:<kind>/<distro>/<name>@<version>?arch=..&distro=<id>-<version>`; the namespace is the
/// os-release `ID`, else `default_namespace`.
fn os_purl(
    kind: &str,
    default_namespace: &str,
    name: &str,
    version: &str,
    arch: Option<&str>,
    os: Option<&OsRelease>,
) -> String {
    let namespace = os.map_or(default_namespace, |o| o.id.as_str());
    let mut qualifiers = Vec::new();
    if let Some(arch) = arch {
        qualifiers.push(format!("arch={}", encode(arch)));
    }
    if let Some(os) = os {
        let distro = match &os.version_id {
            Some(v) => format!("{}-{v}", os.id),
            None => os.id.clone(),
        };
        qualifiers.push(format!("distro={}", encode(&distro)));
    }
    let mut purl = format!("pkg:{kind}/{}/{}@{}", encode(namespace), encode(name), encode(version));
    if !qualifiers.is_empty() {
        purl.push('?');
        purl.push_str(&qualifiers.join("&"));
    }
    purl
}

/// A Python distribution's `METADATA` (core metadata: `Name`, `Version`, and
/// `License-Expression`, else a one-line `License`).
pub fn python_metadata(text: &str) -> Option<Found> {
    // The headers end at the first blank line; the description follows.
    let head = text.split("\n\n").next().unwrap_or_default();
    let stanza = stanzas(head).into_iter().next()?;
    let name = field(&stanza, "Name")?;
    let version = field(&stanza, "Version")?;
    let mut package = Found::new(Ecosystem::Pypi, name, version);
    let normalized = name.to_ascii_lowercase().replace(['_', '.'], "-");
    package.purl = Some(format!("pkg:pypi/{}@{}", encode(&normalized), encode(version)));
    package.license = field(&stanza, "License-Expression")
        .or_else(|| field(&stanza, "License").filter(|l| !l.contains('\n') && l.len() <= 200))
        .filter(|l| !l.is_empty() && !l.eq_ignore_ascii_case("UNKNOWN"))
        .map(str::to_string);
    Some(package)
}

/// A Node package's `package.json`: `name`, `version` and `license` (a string, or the old
/// `{"type": ...}` form).
pub fn package_json(bytes: &[u8]) -> Option<Found> {
    #[derive(Deserialize)]
    struct PackageJson {
        name: Option<String>,
        version: Option<String>,
        license: Option<serde_json::Value>,
    }
    let parsed: PackageJson = serde_json::from_slice(bytes).ok()?;
    let (name, version) = (parsed.name?, parsed.version?);
    let mut package = Found::new(Ecosystem::Npm, &name, &version);
    let path = match name.split_once('/') {
        Some((scope, rest)) if scope.starts_with('@') => {
            format!("{}/{}", encode(scope), encode(rest))
        }
        _ => encode(&name),
    };
    package.purl = Some(format!("pkg:npm/{path}@{}", encode(&version)));
    package.license = match parsed.license {
        Some(serde_json::Value::String(s)) => Some(s),
        Some(serde_json::Value::Object(o)) => {
            o.get("type").and_then(|t| t.as_str()).map(str::to_string)
        }
        _ => None,
    };
    Some(package)
}

/// Java `key=value` properties (`pom.properties`): Maven coordinates.
pub fn pom_properties(text: &str) -> Option<Found> {
    let get = |key: &str| {
        text.lines().map(str::trim).filter(|l| !l.starts_with('#')).find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    let (group, artifact, version) = (get("groupId")?, get("artifactId")?, get("version")?);
    let mut package = Found::new(Ecosystem::Maven, &format!("{group}:{artifact}"), &version);
    package.purl =
        Some(format!("pkg:maven/{}/{}@{}", encode(&group), encode(&artifact), encode(&version)));
    Some(package)
}

/// A jar's `META-INF/MANIFEST.MF`, for a jar without `pom.properties`: the name from
/// `Bundle-SymbolicName` or `Implementation-Title` (else `fallback`, the jar's file name),
/// the version from `Bundle-Version` or `Implementation-Version`, `Bundle-License`. With
/// `Implementation-Vendor-Id` as the group it gets a Maven purl; without, none (a Maven purl
/// needs a group).
pub fn jar_manifest(text: &str, fallback: &str) -> Option<Found> {
    // Lines longer than 72 bytes continue on lines starting with one space.
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines() {
        match (line.strip_prefix(' '), lines.last_mut()) {
            (Some(rest), Some(last)) => last.push_str(rest),
            _ => lines.push(line.to_string()),
        }
    }
    let get = |key: &str| {
        lines.iter().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_string()).filter(|v| !v.is_empty())
        })
    };
    let symbolic =
        get("Bundle-SymbolicName").map(|n| n.split(';').next().unwrap_or("").to_string());
    let name = symbolic.or_else(|| get("Implementation-Title")).unwrap_or(fallback.to_string());
    let version = get("Bundle-Version").or_else(|| get("Implementation-Version"))?;
    let mut package = Found::new(Ecosystem::Maven, &name, &version);
    package.license = get("Bundle-License");
    if let Some(group) = get("Implementation-Vendor-Id") {
        package.purl =
            Some(format!("pkg:maven/{}/{}@{}", encode(&group), encode(&name), encode(&version)));
    }
    Some(package)
}

/// The magic that starts a Go binary's `.go.buildinfo` section.
pub const GO_BUILDINFO_MAGIC: &[u8] = b"\xff Go buildinf:";

/// The modules a Go binary was built from, read from the bytes of its `.go.buildinfo`
/// section (starting at [`GO_BUILDINFO_MAGIC`]). Only the format of Go 1.18 and later, which
/// keeps the strings inline, is read; `None` for anything else. The main module, its
/// dependencies (replacements win) and the Go standard library (`stdlib`, at the toolchain's
/// version) are listed.
pub fn go_buildinfo(info: &[u8]) -> Option<Vec<Found>> {
    const HEADER: usize = 32;
    if !info.starts_with(GO_BUILDINFO_MAGIC) || info.len() < HEADER {
        return None;
    }
    let (pointer_size, flags) = (info[14], info[15]);
    if !matches!(pointer_size, 4 | 8) || flags & 2 == 0 {
        return None;
    }
    let mut rest = &info[HEADER..];
    let toolchain = String::from_utf8(read_go_string(&mut rest)?.to_vec()).ok()?;
    let mut modinfo = read_go_string(&mut rest)?;
    // The module information is framed by 16-byte sentinels.
    if modinfo.len() >= 33 && modinfo[modinfo.len() - 17] == b'\n' {
        modinfo = &modinfo[16..modinfo.len() - 16];
    }
    let modinfo = std::str::from_utf8(modinfo).ok()?;
    if !toolchain.starts_with("go") {
        return None;
    }
    let mut found = Vec::new();
    let stdlib_version = toolchain.split_whitespace().next().unwrap_or(&toolchain);
    let mut stdlib = Found::new(Ecosystem::Golang, "stdlib", stdlib_version);
    stdlib.purl = Some(format!("pkg:golang/stdlib@{}", encode(stdlib_version)));
    stdlib.license = Some("BSD-3-Clause".to_string());
    found.push(stdlib);
    for line in modinfo.lines() {
        let parts: Vec<&str> = line.split('\t').collect();
        match parts.as_slice() {
            ["mod" | "dep", path, version, ..] => found.push(go_module(path, version)),
            // A replacement of the line above: what was built is the replacement, unless it
            // is a local folder (`../x`), which has no version of its own.
            ["=>", path, version, ..] if found.len() > 1 && !path.starts_with(['.', '/']) => {
                found.pop();
                found.push(go_module(path, version));
            }
            _ => {}
        }
    }
    Some(found)
}

fn go_module(path: &str, version: &str) -> Found {
    let mut module = Found::new(Ecosystem::Golang, path, version);
    let encoded: Vec<String> = path.split('/').map(encode).collect();
    module.purl = Some(format!("pkg:golang/{}@{}", encoded.join("/"), encode(version)));
    module
}

/// One Go string of the build information: an unsigned varint length, then the bytes.
fn read_go_string<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let mut length: u64 = 0;
    let mut shift = 0;
    loop {
        let (&byte, tail) = rest.split_first()?;
        *rest = tail;
        length |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
    let length = usize::try_from(length).ok().filter(|&l| l <= rest.len())?;
    let (string, tail) = rest.split_at(length);
    *rest = tail;
    Some(string)
}

/// Percent-encodes a purl component: everything but ASCII letters, digits and `.-_~`.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b".-_~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DPKG: &str = "Package: libc6\nStatus: install ok installed\nPriority: optional\nArchitecture: amd64\nVersion: 2.36-9+deb12u4\nDescription: GNU C Library\n multi-line\n\nPackage: old\nStatus: deinstall ok config-files\nVersion: 1.0\n\nPackage: base-files\nArchitecture: amd64\nVersion: 12.4+deb12u5\n";

    #[test]
    fn dpkg_lists_installed_packages_with_distro_purls() {
        let os = os_release("PRETTY_NAME=\"Debian GNU/Linux 12\"\nID=debian\nVERSION_ID=\"12\"\n");
        let found = dpkg(DPKG, os.as_ref());
        let names: Vec<&str> = found.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["libc6", "base-files"]);
        assert_eq!(
            found[0].purl.as_deref(),
            Some("pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12")
        );
    }

    #[test]
    fn apk_python_npm_and_java_metadata() {
        let apk = apk("P:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\no:musl\n\nP:busybox\nV:1.36.1-r15\nA:x86_64\nL:GPL-2.0-only\n", None);
        assert_eq!(apk[1].purl.as_deref(), Some("pkg:apk/alpine/busybox@1.36.1-r15?arch=x86_64"));
        assert_eq!(apk[0].license.as_deref(), Some("MIT"));

        let py = python_metadata("Metadata-Version: 2.1\nName: Typing_Extensions\nVersion: 4.9.0\nLicense: PSF\n\nLicense: not a header\n").unwrap();
        assert_eq!(py.purl.as_deref(), Some("pkg:pypi/typing-extensions@4.9.0"));
        assert_eq!(py.license.as_deref(), Some("PSF"));

        let npm =
            package_json(br#"{"name":"@types/node","version":"20.1.0","license":{"type":"MIT"}}"#)
                .unwrap();
        assert_eq!(npm.purl.as_deref(), Some("pkg:npm/%40types/node@20.1.0"));
        assert_eq!(npm.license.as_deref(), Some("MIT"));
        assert!(package_json(b"{\"name\": 3}").is_none());

        let pom =
            pom_properties("#x\ngroupId=org.slf4j\nartifactId=slf4j-api\nversion=2.0.9\n").unwrap();
        assert_eq!(pom.purl.as_deref(), Some("pkg:maven/org.slf4j/slf4j-api@2.0.9"));
        let manifest = jar_manifest("Manifest-Version: 1.0\nBundle-SymbolicName: com.example.very.long.name;singleton:=tr\n ue\nBundle-Version: 1.2.3\nBundle-License: Apache-2.0\n", "x.jar").unwrap();
        assert_eq!(
            (manifest.name.as_str(), manifest.version.as_str()),
            ("com.example.very.long.name", "1.2.3")
        );
        assert_eq!(manifest.purl, None);
    }

    /// Build information as Go 1.18+ lays it out: header, then two varint-prefixed strings.
    pub(crate) fn go_info(version: &str, modinfo: &str) -> Vec<u8> {
        let mut info = GO_BUILDINFO_MAGIC.to_vec();
        info.extend([8, 2]);
        info.resize(32, 0);
        let framed = format!("{}{modinfo}\n{}", "0".repeat(16), "1".repeat(16));
        for s in [version, framed.as_str()] {
            info.push(s.len() as u8 & 0x7f | 0x80);
            info.push((s.len() >> 7) as u8);
            info.extend(s.as_bytes());
        }
        info
    }

    #[test]
    fn go_build_information() {
        let info = go_info(
            "go1.22.1",
            "path\texample.com/app\nmod\texample.com/app\t(devel)\t\ndep\tgolang.org/x/text\tv0.14.0\th1:x\ndep\tgithub.com/old/x\tv1.0.0\th1:y\n=>\tgithub.com/new/x\tv1.1.0\th1:z\nbuild\t-compiler=gc\n",
        );
        let found = go_buildinfo(&info).unwrap();
        let purls: Vec<&str> = found.iter().filter_map(|f| f.purl.as_deref()).collect();
        assert_eq!(
            purls,
            [
                "pkg:golang/stdlib@go1.22.1",
                "pkg:golang/example.com/app@%28devel%29",
                "pkg:golang/golang.org/x/text@v0.14.0",
                "pkg:golang/github.com/new/x@v1.1.0",
            ]
        );
        assert!(go_buildinfo(&info[..40]).is_none());
        assert!(go_buildinfo(b"\xff Go buildinf:\x08\x00 old pointer format........").is_none());
    }
}
