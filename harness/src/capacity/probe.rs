//! The [`Executor`] that runs probes for real: a pinned server [`Session`] per search, and per
//! probe one `echo-client --rate R --slo LIMITS` pinned to the client CPUs while the server's
//! process group is sampled, its JSON report kept under `capacity/` in the run folder.

use std::time::Duration;

use echobench_core::Report;
use tokio_util::sync::CancellationToken;

use super::{Executor, Measured, ProbeLoad};
use crate::client::{self, Outcome};
use crate::matrix::Cell;
use crate::plan::Prepared;
use crate::sampler;
use crate::server::Launch;
use crate::session::{Check, Session};

/// Runs probes against real servers.
pub struct Prober<'a> {
    run: &'a Prepared,
    interrupt: &'a CancellationToken,
    session: Option<Session>,
    /// The server crashed during the session: every later probe of it fails.
    crashed: Option<String>,
}

impl<'a> Prober<'a> {
    /// A prober for the plan's servers, writing under `run.out_dir`.
    pub fn new(run: &'a Prepared, interrupt: &'a CancellationToken) -> Prober<'a> {
        Prober {
            run,
            interrupt,
            session: None,
            crashed: None,
        }
    }
}

impl Executor for Prober<'_> {
    async fn start(&mut self, target: &Cell, round: u32) -> Result<(), String> {
        let plan = &self.run.plan;
        let run = &plan.config.run;
        let spec = &plan.config.servers[target.server_index];
        let launch = Launch {
            spec,
            bins: &self.run.bins,
            cpus: &plan.server_cpus,
            ready_timeout: run.ready_timeout,
            log: self.run.out_dir.join("logs").join(format!(
                "{}-s{round}-server.log",
                super::target_name(target)
            )),
            base_dir: &plan.base_dir,
        };
        let check = Check {
            size: target.size,
            payload: spec.payload,
            timeout: run.timeout,
            allow_remote: plan.allow_remote,
        };
        self.crashed = None;
        let session = Session::start(&launch, check, run.stop_grace)
            .await
            .map_err(|err| err.to_string())?;
        self.session = Some(session);
        Ok(())
    }

    async fn probe(
        &mut self,
        target: &Cell,
        load: ProbeLoad,
        name: &str,
    ) -> Result<Measured, String> {
        if let Some(reason) = &self.crashed {
            return Err(reason.clone());
        }
        let Some(session) = self.session.as_mut() else {
            return Err("no server session".to_owned());
        };
        let plan = &self.run.plan;
        let search = &plan.config.search;
        let spec = &plan.config.servers[target.server_index];
        let mut run = plan.config.run.clone();
        run.duration = search.duration;
        run.warmup = search.warmup;
        let cell = Cell {
            connections: load.connections,
            rate: Some(load.rate),
            ..target.clone()
        };
        let relative = format!("capacity/{name}.json");
        let json = self.run.out_dir.join(&relative);
        let url = session.url_for(spec, cell.workload());
        let mut args = client::arguments(
            &cell,
            &url,
            &run,
            plan.client_cpus.len(),
            &json,
            spec.payload,
            session.ca(),
        );
        args.extend(["--slo".to_owned(), plan.config.slo.limits.clone()]);
        if plan.allow_remote {
            args.push("--allow-remote".to_owned());
        }
        let stop_sampling = CancellationToken::new();
        let sampling = tokio::spawn(sampler::sample_until(session.pgid(), stop_sampling.clone()));
        // The warmup lasts until every connection is open, bounded by the client's own
        // --warmup-timeout (30 s), so the limit leaves room for that ramp.
        let limit = run.warmup + run.duration + run.timeout * 2 + Duration::from_secs(60);
        let outcome = client::run(
            &plan.config.client,
            &self.run.bins.client,
            &args,
            &plan.client_cpus,
            &json,
            limit,
            self.interrupt,
        )
        .await;
        stop_sampling.cancel();
        let samples = sampling.await.unwrap_or_default();
        if let Some(status) = session.exited() {
            let reason = format!(
                "server exited during the probe ({status}); stderr tail:\n{}",
                session.stderr_tail()
            );
            self.crashed = Some(reason.clone());
            return Err(reason);
        }
        let report = match outcome {
            Outcome::Report(report) => report,
            Outcome::Failed(reason) => return Err(reason),
            Outcome::Interrupted => return Err("interrupted".to_owned()),
        };
        let cpu = match (
            humantime::parse_rfc3339(&report.started_at),
            humantime::parse_rfc3339(&report.finished_at),
        ) {
            (Ok(from), Ok(to)) => sampler::cpu_between(&samples, from, to),
            _ => None,
        };
        let mut measured = measured(&report, cpu);
        measured.report_file = Some(relative);
        Ok(measured)
    }

    async fn stop(&mut self) {
        if let Some(session) = self.session.take() {
            session.stop(self.run.plan.config.run.stop_grace).await;
        }
        let pause = self.run.plan.config.search.cooldown;
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = self.interrupt.cancelled() => {}
        }
    }

    async fn pause(&mut self, pause: Duration) {
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = self.interrupt.cancelled() => {}
        }
    }

    fn interrupted(&self) -> bool {
        self.interrupt.is_cancelled()
    }
}

/// A probe's figures from the client's report and the server's CPU over its window.
pub fn measured(report: &Report, server_cpu: Option<Duration>) -> Measured {
    let s = &report.summary;
    let latency = report
        .latency
        .corrected
        .as_ref()
        .unwrap_or(&report.latency.round_trip);
    let slo_checks = report
        .slo
        .as_ref()
        .map(|slo| {
            slo.checks
                .iter()
                .map(|c| {
                    format!(
                        "{}: {}{}",
                        c.limit,
                        c.shown,
                        if c.met { "" } else { " (breached)" }
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default();
    Measured {
        achieved: s.round_trips_per_s,
        p50_ns: latency.p50,
        p99_ns: latency.p99,
        p999_ns: latency.p999,
        round_trips: s.round_trips,
        errors: s.errors,
        late_sends: s.late_sends.unwrap_or(0),
        pacer_late_sends: s.pacer_late_sends.unwrap_or(0),
        sends: report
            .broadcast
            .as_ref()
            .map_or(s.round_trips, |b| b.counts.published),
        client_utilization: report.client.utilization,
        client_saturated: report.flags.client_saturated,
        steal_percent: report.client.steal_percent,
        server_cpu_us_per_round_trip: server_cpu
            .filter(|_| s.round_trips > 0)
            .map(|cpu| cpu.as_secs_f64() * 1e6 / s.round_trips as f64),
        slo_met: report.slo.as_ref().is_some_and(|slo| slo.met),
        slo_checks,
        report_file: None,
    }
}
