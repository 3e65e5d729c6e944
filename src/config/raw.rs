//! The TOML as written, deserialized loosely with spans (stage one of two).
