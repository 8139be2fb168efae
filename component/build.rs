//! Embeds every file under `../static` into the component at compile time.
//!
//! For each file it computes a strong ETag (a SHA-256 prefix of the bytes) and pre-compresses gzip and
//! brotli variants, so serving a request never hashes or compresses anything. The generated table is
//! `$OUT_DIR/assets.rs`, included by `src/assets.rs`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::{env, fs};

use sha2::{Digest, Sha256};

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let static_dir = manifest_dir.join("../static");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    println!("cargo:rerun-if-changed={}", static_dir.display());

    let mut files = Vec::new();
    collect(&static_dir, &mut files);
    files.sort();

    let mut table = String::from("pub static ASSETS: &[Asset] = &[\n");
    for (i, file) in files.iter().enumerate() {
        println!("cargo:rerun-if-changed={}", file.display());
        let rel = file.strip_prefix(&static_dir).expect("under static/");
        let url_path = format!("/{}", rel.to_str().expect("UTF-8 file names in static/").replace('\\', "/"));
        let bytes = fs::read(file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        let hash = Sha256::digest(&bytes);
        let tag: String = hash.iter().take(12).map(|b| format!("{b:02x}")).collect();

        let gzip = variant(&out_dir, i, "gz", &bytes, gzip(&bytes));
        let br = variant(&out_dir, i, "br", &bytes, brotli(&bytes));
        writeln!(
            table,
            "    Asset {{ path: {url_path:?}, content_type: {ct:?}, tag: {tag:?}, identity: include_bytes!({id:?}), gzip: {gzip}, br: {br} }},",
            ct = content_type(file),
            id = file.canonicalize().expect("file exists"),
        )
        .expect("write to String");
    }
    table.push_str("];\n");
    fs::write(out_dir.join("assets.rs"), table).expect("write assets.rs");
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect(&path, files);
        } else {
            files.push(path);
        }
    }
}

/// Writes a compressed variant next to the table and returns the Rust expression for it, or `None`
/// when compressing does not make the file smaller (images, tiny files).
fn variant(out_dir: &Path, index: usize, ext: &str, original: &[u8], compressed: Vec<u8>) -> String {
    if compressed.len() >= original.len() {
        return "None".to_owned();
    }
    let path = out_dir.join(format!("asset{index}.{ext}"));
    fs::write(&path, compressed).expect("write compressed variant");
    format!("Some(include_bytes!({path:?}))")
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).expect("in-memory write");
    encoder.finish().expect("in-memory write")
}

fn brotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let params = brotli::enc::BrotliEncoderParams { quality: 11, lgwin: 22, ..Default::default() };
    brotli::BrotliCompress(&mut &bytes[..], &mut out, &params).expect("in-memory write");
    out
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or_default() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        "woff2" => "font/woff2",
        other => panic!("static/: no Content-Type known for .{other} files; add it to build.rs"),
    }
}
