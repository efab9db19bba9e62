//! The screens and overlays on the compositor's stack.

pub mod audit;
pub mod backups;
pub mod erasure;
pub mod erasure_form;
pub mod erasure_request;
pub mod factor;
pub mod gate;
pub mod help;
pub mod palette;
pub mod records;
pub mod search;
pub mod stepup;
pub mod tenant;
