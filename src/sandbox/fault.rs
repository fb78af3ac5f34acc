//! Fault injection, for the tests that prove a step fails closed when the
//! kernel refuses it. Debug builds only: `AIRLOCK_FAULT=step[,step…]` makes
//! each named step report failure as if the kernel had refused it. A release
//! build compiles [`injected`] to `false` and reads no variable.
//!
//! Steps: `close_range` (the command's descriptors marked close-on-exec),
//! `close_all` (pid 1 closing what it does not keep), `capbset_drop`
//! (emptying the bounding set).

#[cfg(debug_assertions)]
static FAULTS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();

/// Read the variable once, in the supervisor, before any fork (the sandbox's
/// processes inherit the value, not the environment).
pub fn init() {
    #[cfg(debug_assertions)]
    FAULTS.get_or_init(|| {
        std::env::var("AIRLOCK_FAULT")
            .map(|v| v.split(',').map(str::to_string).collect())
            .unwrap_or_default()
    });
}

/// Whether `step` is to fail.
pub fn injected(step: &str) -> bool {
    #[cfg(debug_assertions)]
    {
        FAULTS.get().is_some_and(|f| f.iter().any(|s| s == step))
    }
    #[cfg(not(debug_assertions))]
    {
        let _ = step;
        false
    }
}
