//! The built-in modules `require` can load, one file each, wired by the list below.

pub mod activity;
pub mod base64;
pub mod crypto;
pub mod ctx;
pub mod errors;
pub mod hash;
pub mod http_client;
pub mod json;
pub mod time;
pub mod uuid;
pub mod yaml;
