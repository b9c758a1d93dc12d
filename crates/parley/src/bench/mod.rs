//! `parley bench`: load generator and chaos harness (see BENCHMARKS.md).

use clap::Parser;

/// Arguments of `parley bench`.
#[derive(Debug, Parser)]
pub(crate) struct BenchArgs {
    /// Scenario to run.
    pub(crate) scenario: String,
}

/// Runs a benchmark scenario.
pub(crate) async fn run(args: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("bench scenario {:?} is not implemented yet", args.scenario)
}
