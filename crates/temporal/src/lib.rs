//! tempest-temporal
