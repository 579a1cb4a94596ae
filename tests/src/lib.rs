//! End-to-end test support: fixtures and checks shared by the tests in `tests/tests/`.
//!
//! Nothing here depends on the crates under test; the tests drive those (as libraries or
//! as the real binaries) and use this crate to build inputs and judge outputs.

pub mod harness;
pub mod tree;
