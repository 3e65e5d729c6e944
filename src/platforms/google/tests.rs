//! Loopback tests of the Google client (filled in below).
