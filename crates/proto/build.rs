//! Compiles every file under `proto/` with protox (no system protoc) and generates tonic clients
//! and servers, plus the encoded descriptor set for server reflection.

use std::path::{Path, PathBuf};

const PROTO_ROOT: &str = "../../proto";

fn proto_files(directory: &Path, found: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(directory)? {
        let path = entry?.path();
        if path.is_dir() {
            proto_files(&path, found)?;
        } else if path.extension().is_some_and(|extension| extension == "proto") {
            found.push(path.strip_prefix(PROTO_ROOT).unwrap_or(&path).to_path_buf());
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    let mut files = Vec::new();
    proto_files(Path::new(PROTO_ROOT), &mut files)?;
    files.sort();
    let file_descriptors = protox::compile(&files, [PROTO_ROOT])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("descriptor.bin"),
        prost::Message::encode_to_vec(&file_descriptors),
    )?;
    tonic_prost_build::configure().compile_fds(file_descriptors)?;
    Ok(())
}
