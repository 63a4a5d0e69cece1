//! Running an experiment: every cell once per trial, trials interleaved (all cells of trial 1,
//! then of trial 2, ...) so drift in the machine does not favour whoever ran first. For each
//! trial: start the server pinned to its CPUs, check one echo, run echo-client pinned to its
//! CPUs while sampling the server, stop the server and make sure its group is gone, then
//! rewrite every results file. An interrupt stops the trial in progress, keeps everything
//! written, and marks the run incomplete.

use std::path::Path;
use std::time::{Duration, SystemTime};

use echobench_core::monitor::{Bracket, CpuOf};
use tokio_util::sync::CancellationToken;

use crate::aggregate::{self, CellSummary};
use crate::capacity::CapacityResult;
use crate::client::{self, Outcome};
use crate::export::{self, capacity, charts, comparison, manifest, markdown, raw, summary};
use crate::matrix::Cell;
use crate::plan::Prepared;
use crate::progress::Progress;
use crate::sampler;
use crate::server::Launch;
use crate::session::{Check, Session};
use crate::trial::{ServerCost, Status, TrialResult};

/// How a run ended.
#[derive(Debug)]
pub struct RunOutcome {
    /// Every trial.
    pub results: Vec<TrialResult>,
    /// Per-cell summaries.
    pub summaries: Vec<CellSummary>,
    /// The capacity searches.
    pub capacities: Vec<CapacityResult>,
    /// The run was interrupted.
    pub interrupted: bool,
}

/// Runs the plan, writing results into `prepared.out_dir` as it goes.
pub async fn execute(run: &Prepared, interrupt: &CancellationToken) -> anyhow::Result<RunOutcome> {
    use anyhow::Context;
    let plan = &run.plan;
    for dir in [
        run.out_dir.clone(),
        run.out_dir.join("trials"),
        run.out_dir.join("logs"),
        run.out_dir.join("capacity"),
    ] {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    // Before the manifest reads the machine, so that it records what the run measured with.
    let _halt_poll = crate::idle::pin_for_run(plan.config.run.halt_poll);
    let mut writer = Writer::new(run);
    let mut progress = Progress::new(plan.trial_count());
    let mut results: Vec<TrialResult> = Vec::new();
    writer.write(&results, false)?;

    if !plan.targets.is_empty() {
        let mut prober = crate::capacity::probe::Prober::new(run, interrupt);
        let mut observer = CapacityProgress {
            writer: &mut writer,
            progress: &progress,
        };
        let found = crate::capacity::search_all(
            &plan.targets,
            &plan.config.search,
            &plan.config.slo.limits,
            &mut prober,
            &mut observer,
        )
        .await;
        writer.capacities = found;
    }
    let cells = with_capacity_rates(&plan.cells, &writer.capacities);
    let mut interrupted = interrupt.is_cancelled();
    if !interrupted {
        interrupted = run_pass(
            run,
            &cells,
            0,
            &mut results,
            &mut progress,
            &mut writer,
            interrupt,
        )
        .await?;
    }
    for attempt in 1..=plan.retry_noisy {
        if interrupted {
            break;
        }
        let noisy: Vec<Cell> = aggregate::summarise(&results)
            .into_iter()
            .filter(|s| s.noisy)
            .map(|s| s.cell)
            .collect();
        if noisy.is_empty() {
            break;
        }
        eprintln!(
            "re-running {} noisy cell(s), attempt {attempt}",
            noisy.len()
        );
        progress.extend(crate::matrix::total_trials(&noisy, &plan.config.run));
        interrupted = run_pass(
            run,
            &noisy,
            attempt,
            &mut results,
            &mut progress,
            &mut writer,
            interrupt,
        )
        .await?;
    }
    progress.finish();
    let summaries = writer.write(&results, !interrupted)?;
    Ok(RunOutcome {
        results,
        summaries,
        capacities: writer.capacities,
        interrupted,
    })
}

/// The cells with their rates: a fraction of a capacity becomes that share of the capacity
/// found for the same server and load (left without a rate, so its trials fail saying why,
/// when no capacity was found).
fn with_capacity_rates(cells: &[Cell], capacities: &[CapacityResult]) -> Vec<Cell> {
    cells
        .iter()
        .map(|cell| match cell.of_capacity {
            None => cell.clone(),
            Some(fraction) => Cell {
                rate: capacities
                    .iter()
                    .find(|c| c.target == cell.shape())
                    .and_then(CapacityResult::capacity_rps)
                    .filter(|c| *c > 0.0)
                    .map(|c| (c * fraction).round()),
                ..cell.clone()
            },
        })
        .collect()
}

/// Writes the capacity files and prints a line after every probe and search.
struct CapacityProgress<'w, 'a> {
    writer: &'w mut Writer<'a>,
    progress: &'w Progress,
}

impl crate::capacity::Observer for CapacityProgress<'_, '_> {
    fn probed(&mut self, results: &[CapacityResult], target: usize) {
        if let Some(probe) = results[target].probes.last() {
            self.progress.note(&probe.describe(&results[target].target));
        }
        self.write(results);
    }

    fn searched(&mut self, results: &[CapacityResult], target: usize) {
        self.progress.note(&results[target].describe());
        self.write(results);
    }
}

impl CapacityProgress<'_, '_> {
    fn write(&mut self, results: &[CapacityResult]) {
        self.writer.capacities = results.to_vec();
        if let Err(err) = self.writer.write(&[], false) {
            eprintln!("warning: {err:#}");
        }
    }
}

/// Runs every trial of `cells` (trials interleaved: trial 1 of every cell, then trial 2 of
/// every cell that has one, ...), recording and writing after each one. Returns true if
/// interrupted.
async fn run_pass(
    run: &Prepared,
    cells: &[Cell],
    attempt: u32,
    results: &mut Vec<TrialResult>,
    progress: &mut Progress,
    writer: &mut Writer<'_>,
    interrupt: &CancellationToken,
) -> anyhow::Result<bool> {
    let section = &run.plan.config.run;
    let most = cells.iter().map(|c| c.trials(section)).max().unwrap_or(0);
    for trial in 1..=most {
        for cell in cells.iter().filter(|c| trial <= c.trials(section)) {
            if interrupt.is_cancelled() {
                return Ok(true);
            }
            // A trial that cannot be trusted is kept (marked) and run again, up to `redo`
            // times; only the last run counts.
            for redo in 0..=run.plan.config.run.redo {
                progress.starting(&format!("{cell} trial {trial}"));
                let mut result = run_trial(run, cell, trial, attempt, redo, interrupt).await;
                let again = result
                    .untrusted()
                    .filter(|_| redo < run.plan.config.run.redo);
                if let Some(why) = &again {
                    result.redone.clone_from(why);
                    progress.extend(1);
                }
                progress.finished(&result);
                let interrupted = result.status == Status::Interrupted;
                results.push(result);
                writer.write(results, false)?;
                if interrupted || cooldown(run.plan.config.run.cooldown, interrupt).await {
                    return Ok(true);
                }
                if again.is_none() {
                    break;
                }
            }
        }
    }
    Ok(false)
}

/// Sleeps the cooldown; true if interrupted meanwhile.
async fn cooldown(pause: Duration, interrupt: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(pause) => false,
        () = interrupt.cancelled() => true,
    }
}

async fn run_trial(
    prepared: &Prepared,
    cell: &Cell,
    trial: u32,
    attempt: u32,
    redo: u32,
    interrupt: &CancellationToken,
) -> TrialResult {
    let plan = &prepared.plan;
    let run = &cell.run_section(&plan.config.run);
    let started_at = SystemTime::now();
    let mut id = match attempt {
        0 => format!("{}-t{trial}", cell.id()),
        a => format!("{}-t{trial}-a{a}", cell.id()),
    };
    if redo > 0 {
        id.push_str(&format!("-redo{redo}"));
    }
    let spec = &plan.config.servers[cell.server_index];
    let launch = Launch {
        spec,
        bins: &prepared.bins,
        cpus: &plan.server_cpus,
        ready_timeout: run.ready_timeout,
        log: prepared
            .out_dir
            .join("logs")
            .join(format!("{id}-server.log")),
        base_dir: &plan.base_dir,
    };
    let failed = |reason: String| TrialResult::failed(cell, trial, attempt, started_at, reason);
    if let (Some(fraction), None) = (cell.of_capacity, cell.rate) {
        return failed(format!(
            "no capacity was found for {} to run {:.0}% of it (see capacity.csv)",
            crate::capacity::target_name(&cell.shape()),
            fraction * 100.0
        ));
    }
    let check = Check {
        size: cell.size,
        payload: spec.payload,
        timeout: run.timeout,
        allow_remote: plan.allow_remote,
    };
    let mut server = match Session::start(&launch, check, run.stop_grace).await {
        Ok(session) => session,
        Err(err) => return failed(err.to_string()),
    };
    let idle = server.idle;

    if interrupt.is_cancelled() {
        server.stop(run.stop_grace).await;
        return TrialResult {
            status: Status::Interrupted,
            ..failed("interrupted before the load started".to_owned())
        };
    }
    let json = prepared.out_dir.join("trials").join(format!("{id}.json"));
    let url = server.url_for(spec, cell.workload());
    let mut args = client::arguments(
        cell,
        &url,
        run,
        plan.client_cpus.len(),
        &json,
        spec.payload,
        server.ca(),
    );
    if plan.allow_remote {
        args.push("--allow-remote".to_owned());
    }
    let stop_sampling = CancellationToken::new();
    let sampling = tokio::spawn(sampler::sample_until(server.pgid(), stop_sampling.clone()));
    let limit = run.warmup + run.duration + run.timeout * 2 + Duration::from_secs(30);
    let outcome = client::run(
        &plan.config.client,
        &prepared.bins.client,
        &args,
        &plan.client_cpus,
        &json,
        limit,
        interrupt,
    )
    .await;
    stop_sampling.cancel();
    let samples = sampling.await.unwrap_or_default();
    let crashed = server.exited();
    let tail = server.stderr_tail();
    let stopped = server.stop(run.stop_grace).await;

    let mut result = TrialResult {
        client_args: args,
        ..TrialResult::started(cell, trial, attempt, started_at)
    };
    let mut problems: Vec<String> = Vec::new();
    match outcome {
        Outcome::Report(report) => {
            let window = (
                humantime::parse_rfc3339(&report.started_at).ok(),
                humantime::parse_rfc3339(&report.finished_at).ok(),
            );
            let (cpu, rss_peak) = match window {
                (Some(from), Some(to)) => (
                    sampler::cpu_between(&samples, from, to),
                    sampler::peak_rss(&samples, from, to),
                ),
                _ => (None, None),
            };
            result.server = Some(ServerCost {
                cpu,
                rss_idle: idle.rss,
                rss_peak,
            });
            result.status = if report.interrupted {
                Status::Interrupted
            } else {
                Status::Ok
            };
            result.report_file = json
                .strip_prefix(&prepared.out_dir)
                .ok()
                .map(|p| p.display().to_string());
            result.report = Some(report);
        }
        Outcome::Failed(reason) => problems.push(reason),
        Outcome::Interrupted => {
            result.status = Status::Interrupted;
            problems.push("interrupted before the client could report".to_owned());
        }
    }
    if let Some(status) = crashed.or(stopped.exited_early) {
        result.status = Status::Failed;
        problems.insert(
            0,
            format!("server exited during the run ({status}); stderr tail:\n{tail}"),
        );
    }
    if stopped.killed {
        problems.push("the server ignored SIGTERM and was killed".to_owned());
    }
    if stopped.leftovers {
        problems.push("processes of the server's group survived SIGKILL".to_owned());
    }
    result.reason = problems.join("; ");
    result
}

/// Writes the run folder's files; keeps the manifest's fixed parts.
struct Writer<'a> {
    run: &'a Prepared,
    manifest: manifest::Manifest,
    /// Open since the run started: the manifest's steal covers the whole run so far.
    whole_run: Bracket,
    servers: Vec<String>,
    /// The capacity searches so far.
    capacities: Vec<CapacityResult>,
}

impl<'a> Writer<'a> {
    fn new(run: &'a Prepared) -> Writer<'a> {
        let plan = &run.plan;
        let version = |bin: &Path| {
            std::process::Command::new(bin)
                .arg("--version")
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .unwrap_or_default()
        };
        let manifest = manifest::Manifest {
            schema_version: manifest::SCHEMA_VERSION,
            tool: format!("echo-harness {}", env!("CARGO_PKG_VERSION")),
            command_line: plan.command_line.clone(),
            config_source: plan.config_source.clone(),
            quick: plan.quick,
            config: plan.config.clone(),
            revision: crate::machine::Revision::read(Path::new(".")),
            rustc: crate::machine::RUSTC_VERSION.to_owned(),
            binaries: manifest::Binaries {
                server: run.bins.server.display().to_string(),
                server_version: version(&run.bins.server),
                client: run.bins.client.display().to_string(),
                client_version: version(&run.bins.client),
            },
            machine: crate::machine::Machine::read(),
            pinning: manifest::Pinning {
                server_cpus: plan.server_cpus.to_string(),
                client_cpus: plan.client_cpus.to_string(),
                client_threads: plan.client_cpus.len(),
                server_threads: plan.server_cpus.len(),
            },
            started_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            ended_at: None,
            steal_percent: None,
            incomplete: true,
            cells: plan.cells.len(),
            trials_recorded: 0,
            trials_failed: 0,
        };
        Writer {
            run,
            manifest,
            whole_run: Bracket::open(CpuOf::Process),
            servers: plan.config.servers.iter().map(|s| s.name.clone()).collect(),
            capacities: Vec::new(),
        }
    }

    /// Rewrites every file from `results`; `complete` marks the end of a finished run.
    fn write(
        &mut self,
        results: &[TrialResult],
        complete: bool,
    ) -> anyhow::Result<Vec<CellSummary>> {
        use anyhow::Context;
        let dir = &self.run.out_dir;
        let summaries = aggregate::summarise(results);
        self.manifest.trials_recorded = results.len();
        self.manifest.trials_failed = results
            .iter()
            .filter(|r| r.status == Status::Failed)
            .count();
        self.manifest.steal_percent = self.whole_run.close().steal_percent;
        self.manifest.incomplete = !complete;
        self.manifest.ended_at =
            Some(humantime::format_rfc3339_seconds(SystemTime::now()).to_string());
        let write = |name: &str, bytes: &[u8]| {
            export::write_atomically(&dir.join(name), bytes)
                .with_context(|| format!("cannot write {}", dir.join(name).display()))
        };
        let csv = |name: &str, header: Vec<String>, rows: Vec<Vec<String>>| {
            export::write_csv(&dir.join(name), &header, &rows)
                .with_context(|| format!("cannot write {}", dir.join(name).display()))
        };
        if !self.run.plan.targets.is_empty() {
            csv(
                "capacity.csv",
                capacity::header(),
                capacity::rows(&self.capacities),
            )?;
            csv(
                "probes.csv",
                capacity::probe_header(),
                capacity::probe_rows(&self.capacities),
            )?;
        }
        csv("raw.csv", raw::header(), raw::rows(results))?;
        csv("summary.csv", summary::header(), summary::rows(&summaries))?;
        csv(
            "comparison.csv",
            comparison::header(&self.servers),
            comparison::rows(&summaries, &self.servers),
        )?;
        write(
            "summary.md",
            markdown::render(&self.manifest, &summaries, &self.capacities).as_bytes(),
        )?;
        for (name, metric) in [
            ("throughput.svg", charts::Metric::Throughput),
            ("p99.svg", charts::Metric::P99),
        ] {
            if let Some(svg) = charts::render(&summaries, metric) {
                write(name, svg.as_bytes())?;
            }
        }
        let manifest = serde_json::to_string_pretty(&self.manifest)
            .context("cannot serialize the manifest")?;
        write("manifest.json", format!("{manifest}\n").as_bytes())?;
        Ok(summaries)
    }
}
