//! Travtus, the downstream API: the body we send (`body`), the client that
//! POSTs it (`client`), and what each answer means for the review
//! (`classify`). Tokens come from [`crate::oauth::TokenCache`], built from
//! the config by `auth`.

pub mod auth;
pub mod body;
pub mod classify;
pub mod client;

pub use body::{Payload, build_payload, idempotency_key};
pub use classify::{Class, classify};
pub use client::{PostResult, TravtusClient};
