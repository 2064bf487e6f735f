//! Copies the protobuf descriptor set that `temporalio-protos` compiles (exported through its
//! `links` key) into OUT_DIR, so `history_file` can read proto-JSON histories with prost-reflect.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TEMPORALIO_PROTOS_DESCRIPTOR_PATH");
    let Some(source) = std::env::var_os("DEP_TEMPORALIO_PROTOS_DESCRIPTOR_PATH") else {
        panic!("temporalio-protos did not export DEP_TEMPORALIO_PROTOS_DESCRIPTOR_PATH (is it a direct dependency?)");
    };
    let source = PathBuf::from(source);
    println!("cargo:rerun-if-changed={}", source.display());
    let Some(out_dir) = std::env::var_os("OUT_DIR") else { panic!("cargo did not set OUT_DIR") };
    let target = PathBuf::from(out_dir).join("temporal_descriptors.bin");
    if let Err(e) = std::fs::copy(&source, &target) {
        panic!("cannot copy {} to {}: {e}", source.display(), target.display());
    }
}
