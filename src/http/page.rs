//! `GET /` and `GET /js/...`: the chat page and its JavaScript modules, embedded in the binary
//! (no build step). The modules are `tsc`'s output for `clients/js` (the `rookery-client`
//! library and the page's script), committed under `static/js`; `npm test` there fails when
//! they differ from what the sources build to.

use actix_web::{HttpResponse, web};

use super::ApiError;

const INDEX: &str = include_str!("../../static/index.html");

macro_rules! scripts {
    ($($path:literal),* $(,)?) => {
        /// Every module under `static/js`, by its path there.
        const SCRIPTS: &[(&str, &str)] = &[$(($path, include_str!(concat!("../../static/js/", $path)))),*];
    };
}

scripts![
    "page/chat.js",
    "src/backoff.js",
    "src/client.js",
    "src/close-codes.js",
    "src/emitter.js",
    "src/errors.js",
    "src/frames.js",
    "src/heartbeat.js",
    "src/index.js",
    "src/message-id.js",
    "src/outbox.js",
    "src/requests.js",
    "src/room.js",
    "src/socket.js",
];

pub async fn index() -> HttpResponse {
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(INDEX)
}

pub async fn script(path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let path = path.into_inner();
    let (_, source) = SCRIPTS.iter().find(|(name, _)| *name == path).ok_or_else(ApiError::not_found)?;
    // Browsers run a module only with a JavaScript MIME type.
    Ok(HttpResponse::Ok().content_type("text/javascript; charset=utf-8").body(*source))
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeSet, path::Path};

    use super::SCRIPTS;

    fn modules_in(dir: &Path, prefix: &str, found: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            if entry.file_type().unwrap().is_dir() {
                modules_in(&entry.path(), &format!("{name}/"), found);
            } else if name.ends_with(".js") {
                found.insert(name);
            }
        }
    }

    #[test]
    fn every_built_module_is_served() {
        let mut built = BTreeSet::new();
        modules_in(&Path::new(env!("CARGO_MANIFEST_DIR")).join("static/js"), "", &mut built);
        let served: BTreeSet<String> = SCRIPTS.iter().map(|(name, _)| (*name).to_owned()).collect();
        assert_eq!(served, built, "list every file of static/js in SCRIPTS (src/http/page.rs)");
    }
}
