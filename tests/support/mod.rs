//! Test counterparts for the MFA factors (not part of the product).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod otp;
pub mod sk_agent;
