//! `echo-harness`'s exit codes: one set for every subcommand, so a script can tell "the
//! measurement ran and says no" from "the measurement could not run", whichever subcommand it
//! called. Listed in `--help` ([`HELP`]) and the README.

/// Everything ran (and, where a subcommand judges, the judgement passed).
pub const OK: u8 = 0;
/// The command could not be carried out (a server that cannot start in the crosscheck, a
/// results folder that cannot be written, ...).
pub const FAILURE: u8 = 1;
/// Bad flags or config (the message names the file, line and field).
pub const USAGE: u8 = 2;
/// `run`: the run completed but some trials failed (reasons in raw.csv and summary.md).
pub const TRIALS_FAILED: u8 = 3;
/// `crosscheck`: echo-client disagrees with wrk, or is saturated where wrk is not;
/// `compare --repro`: the second run does not reproduce the first.
pub const DISAGREE: u8 = 4;
/// `crosscheck`: too much CPU steal to judge; run it again later.
pub const TOO_NOISY: u8 = 5;
/// Interrupted by SIGINT/SIGTERM; what was measured so far is kept and marked incomplete.
pub const INTERRUPTED: u8 = 130;

/// The exit-code paragraph of `--help`.
pub const HELP: &str = "\
Exit codes (every subcommand):
  0    everything ran (and the crosscheck's judgement passed)
  1    the command could not be carried out
  2    bad flags or config
  3    run: some trials failed (see summary.md)
  4    crosscheck: echo-client disagrees with wrk (or is saturated where wrk is not);
       compare --repro: the runs do not reproduce each other
  5    crosscheck: too much CPU steal to judge
  130  interrupted (results so far kept, marked incomplete)";

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code is distinct and listed in the help text.
    #[test]
    fn codes_are_distinct_and_documented() {
        let codes = [
            OK,
            FAILURE,
            USAGE,
            TRIALS_FAILED,
            DISAGREE,
            TOO_NOISY,
            INTERRUPTED,
        ];
        let mut sorted = codes.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), codes.len());
        for code in codes {
            assert!(
                HELP.lines()
                    .any(|l| l.trim_start().starts_with(&format!("{code} "))),
                "{code} is not in the help"
            );
        }
    }
}
