//! duetd
