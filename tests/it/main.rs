//! The integration tests: one binary, a module per promise. Each starts the
//! real `airlock` binary (or reads the sources) and checks one promise as
//! root and as uid 65534 (`common::users`); `scripts/test.sh` runs it.

#[path = "../common/mod.rs"]
mod common;
#[path = "../corpus/mod.rs"]
mod corpus;

mod agents;
mod boundary;
mod credentials;
mod egress;
mod examples;
mod executor;
mod history;
mod kernel_layers;
mod landlock_only;
mod launcher;
mod layers;
mod profiles_audit;
mod proxy;
mod robustness;
mod safety;
mod scan;
mod watch;
