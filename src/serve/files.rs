//! The output folder, held in memory and served with the caching headers
//! feed readers rely on: `ETag`, `Last-Modified`, `304 Not Modified`, and
//! gzip when asked.
//!
//! Only files found by walking the output folder are in the table, looked
//! up by their exact path, so no request path (`..`, encoded or not) can
//! name anything else. The table is replaced whole after each build.

use std::collections::HashMap;
use std::io::Write;
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
        let private_paths = crate::config::layout::private_paths(config);
        let private: Vec<FileId> = private_paths
            .iter()
            .filter_map(|p| FileId::of(&p.path))
            .collect();
        let private_places: Vec<std::path::PathBuf> = private_paths
            .iter()
            .map(|p| crate::config::layout::resolve(&p.path))
            .collect();
        let walk = walkdir::WalkDir::new(dir)
            .follow_links(false)
            .into_iter()
            .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
        for entry in walk {
            let entry = entry.map_err(std::io::Error::other)?;
            if !entry.file_type().is_file() {
                continue;
            }
            let place = crate::config::layout::resolve(entry.path());
            if FileId::of(entry.path()).is_some_and(|id| private.contains(&id))
                || private_places.iter().any(|p| place.starts_with(p))
            {
                tracing::warn!(
                    path = %entry.path().display(),
                    "not served: the same file as the store, the config or the DKIM key"
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

    #[test]
    fn url_paths_are_plain_components_only() {
        assert_eq!(
            url_path(Path::new("tags/go/atom.xml")).as_deref(),
            Some("/tags/go/atom.xml")
        );
        assert_eq!(url_path(Path::new("../x")), None);
    }
}
