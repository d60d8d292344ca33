//! Compiles every file under `proto/` with protox (no system protoc) and generates tonic clients
//! and servers, the encoded descriptor set for server reflection, and the stream name of each
//! event from the contract itself.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use prost_types::FileDescriptorSet;

const PROTO_ROOT: &str = "../../proto";

/// The message whose `payload` oneof lists every event of every stream.
const EVENT_MESSAGE: &str = "quanyu.events.v1.Event";

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

/// `member_enrolled` as prost names the oneof's variant: `MemberEnrolled`.
fn upper_camel(snake: &str) -> String {
    snake
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// `impl event::Payload { fn event_type }`: each event's stream name, `<area>.<Message>`, read
/// from the package of the message that the `payload` oneof holds (`quanyu.identity.v1` →
/// `identity`). Adding an event to the contract names it; no hand-kept list.
fn event_types(descriptors: &FileDescriptorSet) -> Result<String, Box<dyn std::error::Error>> {
    let (package, name) = EVENT_MESSAGE.rsplit_once('.').ok_or("bad event message name")?;
    let event = descriptors
        .file
        .iter()
        .filter(|file| file.package() == package)
        .flat_map(|file| &file.message_type)
        .find(|message| message.name() == name)
        .ok_or("the events contract has no Event message")?;
    let payload = event
        .oneof_decl
        .iter()
        .position(|oneof| oneof.name() == "payload")
        .ok_or("Event has no payload oneof")?;
    let mut arms = String::new();
    for field in event
        .field
        .iter()
        .filter(|field| field.oneof_index == i32::try_from(payload).ok())
    {
        let full_name = field.type_name().trim_start_matches('.');
        let (message_package, message) = full_name.rsplit_once('.').ok_or("bad payload type")?;
        let area = message_package
            .strip_prefix("quanyu.")
            .and_then(|rest| rest.split('.').next())
            .ok_or("a payload outside quanyu's packages")?;
        writeln!(
            arms,
            "            Self::{}(_) => \"{area}.{message}\",",
            upper_camel(field.name())
        )?;
    }
    Ok(format!(
        "impl event::Payload {{\n    /// The stream name of this event: `<area>.<Message>`, from its message's package.\n    \
         pub fn event_type(&self) -> &'static str {{\n        match self {{\n{arms}        }}\n    }}\n}}\n"
    ))
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
    std::fs::write(out_dir.join("event_types.rs"), event_types(&file_descriptors)?)?;
    let mut config = prost_build::Config::new();
    // `prost::Name` on every message: consumers name the events they want by type.
    config.enable_type_names();
    tonic_prost_build::configure()
        .codec_path("crate::codec::ProtoCodec")
        .compile_fds_with_config(file_descriptors, config)?;
    Ok(())
}
