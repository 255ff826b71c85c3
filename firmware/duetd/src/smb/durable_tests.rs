//! Unit tests of durable handles, driven through the protocol core (`testkit`).
