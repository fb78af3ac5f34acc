//! What the sandbox needs of the egress proxy, as a trait the pipeline
//! implements: the sandbox starts the proxy at the right moment (after the
//! clone, while it is still single-threaded before) and runs the relay
//! inside, without importing the proxy's code.

use crate::error::LayerError;
use crate::outcome::Decision;
use std::net::TcpListener;
use std::path::Path;

/// The relay: serve `listen` forever, handing each connection to the proxy
/// listening on the unix socket at the given path.
pub type RelayFn = fn(TcpListener, &Path) -> std::io::Result<()>;

pub trait Egress {
    /// Start serving on the unix socket `socket`.
    fn start(&self, socket: &Path) -> Result<Box<dyn EgressRun>, LayerError>;
    /// The relay function (a plain fn: it runs in a forked process or a thread).
    fn relay(&self) -> RelayFn;
}

/// A running proxy.
pub trait EgressRun {
    /// Stop it; every decision it made.
    fn shutdown(self: Box<Self>) -> Vec<Decision>;
}
