//! Escape probes shared by `airlock selftest` and the tests. (Owned by the kernel-layers work.)

pub mod probes;
