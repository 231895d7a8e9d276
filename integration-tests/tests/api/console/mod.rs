//! The operator console over real HTTP (and, in `browser`, in a real browser).

mod browser;
mod pages;
mod session;
