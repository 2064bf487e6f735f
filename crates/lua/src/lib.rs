//! Tempest's Lua host: VM construction, sandboxes, Lua <-> data conversion and the built-in
//! modules. Knows nothing about Temporal; the `temporal` crate drives it through plain Rust types.

pub mod activity;
pub mod check;
pub mod clock;
pub mod convert;
pub mod entropy;
pub mod failure;
mod heap;
pub mod modules;
pub mod sandbox;
#[cfg(test)]
mod testing;
pub mod workflow;
