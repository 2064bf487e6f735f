//! The built-in modules `require` can load, one file each, wired by the list below.

pub mod base64;
pub mod errors;
pub mod hash;
pub mod json;
pub mod uuid;
pub mod activity;
pub mod ctx;
pub mod time;
pub mod crypto;
pub mod yaml;
pub mod http_client;
