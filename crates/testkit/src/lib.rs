//! tempest-testkit
