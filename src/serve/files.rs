//! The output folder, held in memory and served with the caching headers
//! feed readers rely on: `ETag`, `Last-Modified`, `304 Not Modified`, and
//! gzip when asked.
//!
//! Only files found by walking the output folder are in the table, looked
//! up by their exact path, so no request path (`..`, encoded or not) can
//! name anything else. The table is replaced whole after each build.
//!
//! The archive folder (`archive.path`) is not in the table: `send` writes
//! it, in this process or another, between builds. It, and any file put
//! in the output folder since the last build, is read from the disk at
//! each request ([`on_disk`]), under the same rules as the table's walk:
//! plain names only, nothing hidden, no symbolic link, none of the tool's
//! private files.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use sha2::{Digest, Sha256};

use crate::config::Config;

/// Files smaller than this are not worth compressing.
const GZIP_MIN: usize = 512;

/// A file's identity whatever its name: device and inode on Unix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId(u64, u64);

impl FileId {
    #[cfg(unix)]
    fn of(path: &Path) -> Option<FileId> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).ok()?;
        Some(FileId(meta.dev(), meta.ino()))
    }

    #[cfg(not(unix))]
    fn of(path: &Path) -> Option<FileId> {
        let _ = path;
        None
    }
}

/// One file, ready to serve.
#[derive(Debug)]
pub struct StaticFile {
    body: axum::body::Bytes,
    gzip: Option<axum::body::Bytes>,
    content_type: HeaderValue,
    etag: HeaderValue,
    etag_gzip: HeaderValue,
    last_modified: HeaderValue,
    /// Whole seconds, as `Last-Modified` says it.
    modified: SystemTime,
}

/// Every file of the output folder, by URL path (`/atom.xml`).
#[derive(Debug, Default)]
pub struct Files {
    files: HashMap<String, Arc<StaticFile>>,
}

impl Files {
    /// Reads every file under `dir` (hidden files, such as a build's
    /// temporary files, and symlinks are left out, and so is any file that
    /// is one of the tool's private files under another name: a hard link
    /// to the store, the config or the DKIM key). A missing folder is an
    /// empty table: nothing is built yet.
    pub fn load(config: &Config, dir: &Path) -> std::io::Result<Files> {
        let mut files = HashMap::new();
        if !dir.exists() {
            return Ok(Files { files });
        }
        let private = Private::of(config);
        let archive = dir.join(&config.archive.path);
        let walk = walkdir::WalkDir::new(dir)
            .follow_links(false)
            .into_iter()
            .filter_entry(|e| {
                e.depth() == 0
                    || !(e.file_name().to_string_lossy().starts_with('.') || e.path() == archive)
            });
        for entry in walk {
            let entry = entry.map_err(std::io::Error::other)?;
            if !entry.file_type().is_file() {
                continue;
            }
            let linked = entry.metadata().is_ok_and(|m| has_other_names(&m));
            if linked || private.covers(entry.path()) {
                tracing::warn!(
                    path = %entry.path().display(),
                    "not served: a hard link (maybe to the store, the config, the DKIM key or a message in the outbox)"
                );
                continue;
            }
            let relative = entry.path().strip_prefix(dir).unwrap_or(entry.path());
            let Some(url_path) = url_path(relative) else {
                continue;
            };
            let bytes = std::fs::read(entry.path())?;
            let modified = entry
                .metadata()
                .map_err(std::io::Error::other)?
                .modified()?;
            let name = relative.file_name().and_then(|n| n.to_str()).unwrap_or("");
            files.insert(
                url_path,
                Arc::new(StaticFile::new(bytes, modified, media_type(config, name))),
            );
        }
        Ok(Files { files })
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The file a request path names; `/dir/` means `/dir/index.html`.
    pub fn get(&self, path: &str) -> Option<Arc<StaticFile>> {
        if has_encoded_slash(path) {
            return None;
        }
        let decoded = percent_encoding::percent_decode_str(path)
            .decode_utf8()
            .ok()?;
        if decoded.contains(['\0', '\\']) {
            return None;
        }
        if decoded.ends_with('/') {
            return self.files.get(&format!("{decoded}index.html")).cloned();
        }
        self.files.get(decoded.as_ref()).cloned()
    }

    /// What a request path the table has no file for names: a folder of
    /// the table's written without its slash, a file of the table's
    /// written with one, or else whatever the disk holds ([`on_disk`]).
    /// Reads the disk: call it on a blocking thread.
    pub fn find(&self, config: &Config, dir: &Path, path: &str) -> Found {
        if let Some(trimmed) = path.strip_suffix('/')
            && !trimmed.is_empty()
            && !trimmed.ends_with('/')
            && self.get(trimmed).is_some()
        {
            return Found::DropSlash;
        }
        if !path.ends_with('/') && self.get(&format!("{path}/")).is_some() {
            return Found::AddSlash;
        }
        on_disk(config, dir, path)
    }
}

/// What the output folder holds at a request path.
#[derive(Debug)]
pub enum Found {
    File(Arc<StaticFile>),
    /// A folder with an `index.html`, named without the slash that its
    /// pages' relative links need.
    AddSlash,
    /// A file, named with a slash after it.
    DropSlash,
    Missing,
}

/// The tool's private files (the store, the config, the DKIM key…) as
/// the output folder might hold them: the same file under another name
/// (a hard link), or a place inside them.
struct Private {
    ids: Vec<FileId>,
    places: Vec<std::path::PathBuf>,
}

impl Private {
    fn of(config: &Config) -> Private {
        let paths = crate::config::layout::private_paths(config);
        Private {
            ids: paths.iter().filter_map(|p| FileId::of(&p.path)).collect(),
            places: paths
                .iter()
                .map(|p| crate::config::layout::resolve(&p.path))
                .collect(),
        }
    }

    /// True when `path` is, or is inside, one of the private files.
    fn covers(&self, path: &Path) -> bool {
        let place = crate::config::layout::resolve(path);
        FileId::of(path).is_some_and(|id| self.ids.contains(&id))
            || self.places.iter().any(|p| place.starts_with(p))
    }
}

/// The file at a request path, read from `dir` now (so a file written by
/// another process is served at once): `/a/b.html`, or `/a/` for
/// `a/index.html`. Each segment must be a plain, visible name and no
/// symbolic link, as the table's walk requires, and the file none of the
/// tool's private files.
pub fn on_disk(config: &Config, dir: &Path, path: &str) -> Found {
    // A slash is a slash only as written: `%2f` in a name would send a
    // redirect (built from the path as written) round in a loop.
    if has_encoded_slash(path) {
        return Found::Missing;
    }
    let Ok(decoded) = percent_encoding::percent_decode_str(path).decode_utf8() else {
        return Found::Missing;
    };
    let Some(relative) = decoded.strip_prefix('/') else {
        return Found::Missing;
    };
    let (relative, slash) = match relative.strip_suffix('/') {
        Some(folder) => (folder, true),
        None => (relative, false),
    };
    let plain =
        |name: &str| !name.is_empty() && !name.starts_with('.') && !name.contains(['\0', '\\']);
    if relative.is_empty() || !relative.split('/').all(plain) {
        return Found::Missing;
    }
    let mut place = dir.to_path_buf();
    let mut meta = None;
    for name in relative.split('/') {
        place.push(name);
        match std::fs::symlink_metadata(&place) {
            Ok(m) if !m.file_type().is_symlink() => meta = Some(m),
            _ => return Found::Missing,
        }
    }
    let Some(meta) = meta else {
        return Found::Missing;
    };
    // Nothing a build writes has a second name: a file that does is a
    // hard link made by hand, maybe to a message in the outbox.
    if meta.is_file() && has_other_names(&meta) {
        return Found::Missing;
    }
    // The file the path leads to, and whether its slash is the right one.
    let (file, right) = if meta.is_dir() {
        let index = place.join("index.html");
        if !std::fs::symlink_metadata(&index).is_ok_and(|m| m.file_type().is_file()) {
            return Found::Missing;
        }
        (index, slash)
    } else if meta.is_file() {
        (place, !slash)
    } else {
        return Found::Missing;
    };
    // Checked where it is, not where its name says: a folder swapped for
    // a link meanwhile, or a hard link to the store, is refused here
    // (before a redirect, which would tell that it is there).
    let inside = crate::config::layout::resolve(dir);
    if !crate::config::layout::resolve(&file).starts_with(&inside)
        || Private::of(config).covers(&file)
    {
        return Found::Missing;
    }
    match (right, slash) {
        (true, _) => {}
        (false, true) => return Found::DropSlash,
        (false, false) => return Found::AddSlash,
    }
    let read = || -> std::io::Result<_> {
        let mut opened = std::fs::File::open(&file)?;
        let meta = opened.metadata()?;
        let version = Version::of(&meta)?;
        if let Some(known) = DiskCache::get(&file, version) {
            return Ok(known);
        }
        let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        opened.read_to_end(&mut bytes)?;
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let served = Arc::new(StaticFile::new(
            bytes,
            meta.modified()?,
            media_type(config, name),
        ));
        DiskCache::put(&file, version, &served);
        Ok(served)
    };
    match read() {
        Ok(served) => Found::File(served),
        Err(error) => {
            tracing::warn!(path = %file.display(), %error, "cannot read a file of the output folder");
            Found::Missing
        }
    }
}

/// What tells one version of a file from another: its identity, length
/// and modification time (a rename over it, as every write of ours is,
/// makes a new identity).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    id: Option<FileId>,
    len: u64,
    modified: SystemTime,
}

impl Version {
    fn of(meta: &std::fs::Metadata) -> std::io::Result<Version> {
        #[cfg(unix)]
        let id = {
            use std::os::unix::fs::MetadataExt;
            Some(FileId(meta.dev(), meta.ino()))
        };
        #[cfg(not(unix))]
        let id = None;
        Ok(Version {
            id,
            len: meta.len(),
            modified: meta.modified()?,
        })
    }
}

/// Files read from the disk, kept while they stay the same version: a
/// request for an archive page hashes and compresses it once, not each
/// time. Bounded: past [`DiskCache::BYTES`] it starts again empty.
struct DiskCache;

type Cached = std::collections::HashMap<std::path::PathBuf, (Version, Arc<StaticFile>)>;

impl DiskCache {
    const BYTES: u64 = 64 << 20;

    fn table() -> &'static std::sync::Mutex<(Cached, u64)> {
        static TABLE: std::sync::OnceLock<std::sync::Mutex<(Cached, u64)>> =
            std::sync::OnceLock::new();
        TABLE.get_or_init(Default::default)
    }

    fn get(path: &Path, version: Version) -> Option<Arc<StaticFile>> {
        let table = Self::table().lock().expect("not poisoned");
        table
            .0
            .get(path)
            .filter(|(known, _)| *known == version)
            .map(|(_, file)| file.clone())
    }

    fn put(path: &Path, version: Version, file: &Arc<StaticFile>) {
        let mut table = Self::table().lock().expect("not poisoned");
        if table.1 + version.len > Self::BYTES {
            *table = Default::default();
        }
        table.1 += version.len;
        table.0.insert(path.to_path_buf(), (version, file.clone()));
    }
}

/// True when a request path writes a slash as `%2f`.
fn has_encoded_slash(path: &str) -> bool {
    path.as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && w[1] == b'2' && w[2].eq_ignore_ascii_case(&b'f'))
}

/// True when the file has more than one name (a hard link).
fn has_other_names(meta: &std::fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        meta.nlink() > 1
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        false
    }
}

/// `/a/b.xml` for a relative path of plain components.
fn url_path(relative: &Path) -> Option<String> {
    let mut path = String::new();
    for component in relative.components() {
        let std::path::Component::Normal(name) = component else {
            return None;
        };
        path.push('/');
        path.push_str(name.to_str()?);
    }
    Some(path)
}

/// The media type: the feeds' own types by their configured names, else by extension.
fn media_type(config: &Config, name: &str) -> &'static str {
    let feeds = &config.feeds;
    if name == feeds.atom {
        return "application/atom+xml; charset=utf-8";
    }
    if name == feeds.rss {
        return "application/rss+xml; charset=utf-8";
    }
    if name == feeds.json {
        return "application/feed+json; charset=utf-8";
    }
    match name
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .as_deref()
    {
        Some("xml") => "application/xml; charset=utf-8",
        Some("json") => "application/json; charset=utf-8",
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("txt") => "text/plain; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("xsl" | "xslt") => "application/xslt+xml; charset=utf-8",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("svg") => "image/svg+xml",
        Some("webp") => "image/webp",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    }
}

impl StaticFile {
    fn new(bytes: Vec<u8>, modified: SystemTime, content_type: &'static str) -> StaticFile {
        let hash = hex::encode(&Sha256::digest(&bytes)[..16]);
        let gzip = (bytes.len() >= GZIP_MIN).then(|| gzip(&bytes)).flatten();
        let modified = httpdate::HttpDate::from(modified);
        StaticFile {
            body: bytes.into(),
            gzip: gzip.map(Into::into),
            content_type: HeaderValue::from_static(content_type),
            etag: HeaderValue::from_str(&format!("\"{hash}\"")).expect("hex is a valid header"),
            etag_gzip: HeaderValue::from_str(&format!("\"{hash}-gzip\""))
                .expect("hex is a valid header"),
            last_modified: HeaderValue::from_str(&modified.to_string())
                .expect("an HTTP date is a valid header"),
            modified: modified.into(),
        }
    }

    /// The response to a GET or HEAD with these request headers.
    pub fn respond(&self, method: &Method, request: &HeaderMap) -> Response {
        let gzip = self.gzip.as_ref().filter(|_| accepts_gzip(request));
        let etag = if gzip.is_some() {
            &self.etag_gzip
        } else {
            &self.etag
        };
        let status = if self.not_modified(request) {
            StatusCode::NOT_MODIFIED
        } else {
            StatusCode::OK
        };
        let mut response = Response::builder()
            .status(status)
            .header(header::ETAG, etag.clone())
            .header(header::LAST_MODIFIED, self.last_modified.clone())
            .header(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            )
            .header(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        if status == StatusCode::NOT_MODIFIED {
            return response.body(Body::empty()).expect("valid headers");
        }
        response = response
            .header(header::CONTENT_TYPE, self.content_type.clone())
            .header(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
        let body = match gzip {
            Some(bytes) => {
                response =
                    response.header(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                bytes.clone()
            }
            None => self.body.clone(),
        };
        response = response.header(header::CONTENT_LENGTH, body.len());
        let body = if method == Method::HEAD {
            Body::empty()
        } else {
            Body::from(body)
        };
        response.body(body).expect("valid headers")
    }

    /// `If-None-Match` decides when present (either encoding's tag, weak or
    /// strong, or `*`); else `If-Modified-Since`.
    fn not_modified(&self, request: &HeaderMap) -> bool {
        let tags = request.get_all(header::IF_NONE_MATCH);
        let mut any = false;
        for value in tags {
            any = true;
            let Ok(text) = value.to_str() else { continue };
            for tag in text.split(',').map(str::trim) {
                let tag = tag.strip_prefix("W/").unwrap_or(tag);
                if tag == "*"
                    || tag.as_bytes() == self.etag.as_bytes()
                    || tag.as_bytes() == self.etag_gzip.as_bytes()
                {
                    return true;
                }
            }
        }
        if any {
            return false;
        }
        request
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .is_some_and(|since| self.modified <= since)
    }
}

/// True when `Accept-Encoding` allows gzip: an explicit `gzip` (or
/// `x-gzip`) entry decides by its q-value; without one, `*` does.
fn accepts_gzip(request: &HeaderMap) -> bool {
    let mut explicit = None;
    let mut any = None;
    for value in request.get_all(header::ACCEPT_ENCODING) {
        for item in value.to_str().unwrap_or("").split(',') {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or("");
            let allowed = !parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                explicit = Some(explicit.unwrap_or(false) || allowed);
            } else if coding == "*" {
                any = Some(allowed);
            }
        }
    }
    explicit.or(any).unwrap_or(false)
}

fn gzip(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 4),
        flate2::Compression::default(),
    );
    encoder.write_all(bytes).ok()?;
    let compressed = encoder.finish().ok()?;
    (compressed.len() < bytes.len()).then_some(compressed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn gzip_is_chosen_by_accept_encoding_and_q_values() {
        assert!(accepts_gzip(&headers(&[(
            header::ACCEPT_ENCODING,
            "br, gzip;q=0.8"
        )])));
        assert!(accepts_gzip(&headers(&[(header::ACCEPT_ENCODING, "*")])));
        assert!(!accepts_gzip(&headers(&[(
            header::ACCEPT_ENCODING,
            "gzip;q=0"
        )])));
        assert!(!accepts_gzip(&headers(&[(
            header::ACCEPT_ENCODING,
            "br, deflate"
        )])));
        assert!(!accepts_gzip(&HeaderMap::new()));
        assert!(!accepts_gzip(&headers(&[(
            header::ACCEPT_ENCODING,
            "gzip;q=0, *"
        )])));
        assert!(accepts_gzip(&headers(&[(
            header::ACCEPT_ENCODING,
            "identity;q=0.5, *;q=0.1"
        )])));
    }

    /// A site in a temp dir: its config, and its output folder with an
    /// archive page, a folder with an index, a hidden file and a link out.
    fn site() -> (tempfile::TempDir, Config) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let config = Config::parse(
            "[site]\nbase_url = \"https://example.org/\"\n",
            &root.join("config.toml"),
            root,
        )
        .unwrap();
        std::fs::write(root.join("config.toml"), "").unwrap();
        std::fs::write(root.join("secret.txt"), "secret").unwrap();
        let public = root.join("public");
        for folder in ["archive/3", "notes", "out", ".hidden"] {
            std::fs::create_dir_all(public.join(folder)).unwrap();
        }
        std::fs::write(public.join("archive/3/index.html"), "three").unwrap();
        std::fs::write(public.join("notes/index.html"), "notes").unwrap();
        std::fs::write(public.join("notes/a.txt"), "a").unwrap();
        std::fs::write(public.join(".hidden/index.html"), "hidden").unwrap();
        std::fs::write(public.join(".newsletter.manifest"), "atom.xml").unwrap();
        std::os::unix::fs::symlink(root, public.join("out/up")).unwrap();
        std::os::unix::fs::symlink(root.join("secret.txt"), public.join("secret.txt")).unwrap();
        std::fs::hard_link(root.join("config.toml"), public.join("notes/settings.txt")).unwrap();
        (dir, config)
    }

    fn body(found: Found) -> Option<String> {
        match found {
            Found::File(file) => Some(String::from_utf8(file.body.to_vec()).unwrap()),
            _ => None,
        }
    }

    #[test]
    fn folders_answer_their_index_and_want_their_slash() {
        let (dir, config) = site();
        let public = dir.path().join("public");
        let found = |path| on_disk(&config, &public, path);
        assert_eq!(body(found("/archive/3/")).as_deref(), Some("three"));
        assert_eq!(body(found("/notes/")).as_deref(), Some("notes"));
        assert_eq!(body(found("/notes/a.txt")).as_deref(), Some("a"));
        assert!(matches!(found("/archive/3"), Found::AddSlash));
        assert!(matches!(found("/notes/a.txt/"), Found::DropSlash));
        // A folder without an index is nothing.
        assert!(matches!(found("/archive/"), Found::Missing));
        assert!(matches!(found("/archive"), Found::Missing));
        // Written now: answered now.
        std::fs::write(public.join("archive/index.html"), "all").unwrap();
        assert_eq!(body(found("/archive/")).as_deref(), Some("all"));
        let Found::File(file) = found("/archive/") else {
            panic!("the archive's index")
        };
        assert_eq!(file.content_type, "text/html; charset=utf-8");
    }

    #[test]
    fn nothing_hidden_linked_or_private_is_found() {
        let (dir, config) = site();
        let public = dir.path().join("public");
        for path in [
            "/.newsletter.manifest",
            "/.hidden/",
            "/.hidden",
            "/%2ehidden/",
            "/out/up/secret.txt",
            "/out/up/",
            "/secret.txt",
            "/notes/settings.txt",
            "/notes/settings.txt/",
            "/notes/../../secret.txt",
            "/notes/..%2f..%2fsecret.txt",
            "//notes/",
            "/notes//",
            "/notes/./",
            "/notes%5ca.txt",
            "/notes/a.txt%00",
            "/",
            "",
        ] {
            assert!(
                matches!(on_disk(&config, &public, path), Found::Missing),
                "{path}"
            );
        }
    }

    #[test]
    fn the_archive_is_left_out_of_the_table() {
        let (dir, config) = site();
        let public = dir.path().join("public");
        let files = Files::load(&config, &public).unwrap();
        assert!(files.get("/archive/3/").is_none());
        assert!(files.get("/notes/").is_some());
        assert!(matches!(
            files.find(&config, &public, "/archive/3/"),
            Found::File(_)
        ));
        assert!(matches!(
            files.find(&config, &public, "/notes"),
            Found::AddSlash
        ));
    }

    #[test]
    fn url_paths_are_plain_components_only() {
        assert_eq!(
            url_path(Path::new("tags/go/atom.xml")).as_deref(),
            Some("/tags/go/atom.xml")
        );
        assert_eq!(url_path(Path::new("../x")), None);
    }
}
