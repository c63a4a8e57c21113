//! The console's static files, embedded in the binary and served at content-hashed URLs
//! (`/assets/<hash>/<name>`) with a year-long immutable cache: a new build with a changed file
//! gets a new URL, so browsers never hold a stale copy and never ask twice for a current one.
//! Government intranets often have no internet, so nothing is loaded from elsewhere.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// One embedded file.
pub struct Asset {
    /// File name as pages refer to it.
    pub name: &'static str,
    /// Media type.
    pub content_type: &'static str,
    /// Contents.
    pub bytes: &'static [u8],
}

/// Every embedded file. Third-party files keep their licences beside them in `assets/web/vendor`.
pub const ASSETS: &[Asset] = &[
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../assets/web/app.css"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/web/app.js"),
    },
    Asset {
        name: "map.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/web/map.js"),
    },
    Asset {
        name: "progress.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/web/progress.js"),
    },
    Asset {
        name: "leaflet.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/web/vendor/leaflet/leaflet.js"),
    },
    Asset {
        name: "leaflet.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../assets/web/vendor/leaflet/leaflet.css"),
    },
    Asset {
        name: "event-map.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/web/event-map.js"),
    },
    Asset {
        name: "imports.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/web/imports.js"),
    },
    Asset {
        name: "event-pick.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/web/event-pick.js"),
    },
];

/// `(name, hash, asset)`: the first 16 hex digits of each file's SHA-256, computed once.
fn table() -> &'static Vec<(&'static str, String, &'static Asset)> {
    static TABLE: OnceLock<Vec<(&'static str, String, &'static Asset)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let h: String = Sha256::digest(a.bytes).iter().take(8).map(|b| format!("{b:02x}")).collect();
                (a.name, h, a)
            })
            .collect()
    })
}

/// The URL of an embedded file (`/assets/<hash>/<name>`); an unknown name gives a URL that 404s.
pub fn url(name: &str) -> String {
    match table().iter().find(|(n, _, _)| *n == name) {
        Some((n, h, _)) => format!("/assets/{h}/{n}"),
        None => format!("/assets/missing/{name}"),
    }
}

/// The file at `/assets/<hash>/<name>`, when both the name and the hash are current.
pub fn find(hash: &str, name: &str) -> Option<&'static Asset> {
    table().iter().find(|(n, h, _)| *n == name && h == hash).map(|(_, _, a)| *a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_carry_the_content_hash_and_resolve() {
        let u = url("leaflet.js");
        let parts: Vec<&str> = u.split('/').collect();
        assert_eq!(parts[1], "assets");
        assert_eq!(parts[2].len(), 16);
        assert!(find(parts[2], "leaflet.js").is_some());
        assert!(find("0000000000000000", "leaflet.js").is_none());
    }
}
