//! Test support shared by the tools tests.

pub mod peers;
