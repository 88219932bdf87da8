//! Compiles the protocol definition with protox (a pure-Rust .proto compiler), so building
//! Cairn needs no protoc.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/cairn.proto");
    let descriptors = protox::compile(["proto/cairn.proto"], ["proto"])?;
    prost_build::Config::new().bytes(["."]).compile_fds(descriptors)?;
    Ok(())
}
