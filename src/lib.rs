//! airlock: a sandbox launcher for AI coding agents.
//!
//! The pipeline is resolve → scan → plan → apply:
//! - [`profile`] loads and merges profiles (pure, errors name file:line:key);
//! - [`scan`] finds credentials the command could read (read-only I/O);
//!   [`history`] does the same for every object in the workspace's `.git`;
//! - [`plan`] turns profile + flags + host facts + findings into a [`plan::Plan`],
//!   plain serialisable data printed by `--dry-run`;
//! - [`sandbox`] is the only module that makes privileged syscalls: it applies
//!   the plan's layers in one fixed order and execs the command.

pub mod audit;
pub mod cli;
pub mod error;
pub mod fdpass;
pub mod fsread;
pub mod history;
pub mod host;
pub mod netname;
pub mod outcome;
pub mod pathfmt;
pub mod persist;
pub mod pipeline;
pub mod plan;
pub mod policy;
pub mod profile;
pub mod proxy;
pub mod redact;
pub mod sandbox;
pub mod scan;
pub mod selftest;
pub mod units;
pub mod walk;
