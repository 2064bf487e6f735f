//! tempest-registry
