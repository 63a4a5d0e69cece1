//! The client's per-round-trip work outside the kernel: stamp the message id, verify the echo,
//! record the latency (into the worker's totals and the current second). Ids are
//! `hot_path/<step>/<bytes>`; throughput is the message size.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use echo_client::message;
use echo_client::recorder::{Paced, Recorder};

const SIZES: [usize; 2] = [32, 4096];

fn hot_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("hot_path");
    for size in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        let mut sent = vec![0u8; size];
        message::fill(&mut sent);
        let mut echo = sent.clone();
        let mut recorder = Recorder::new(false);
        let mut id = 0u64;
        group.bench_with_input(BenchmarkId::new("round_trip", size), &size, |b, _| {
            b.iter(|| {
                id += 1;
                message::stamp(&mut sent, id);
                message::stamp(&mut echo, id);
                let ok = message::verify(black_box(&sent), black_box(&echo)).is_ok();
                recorder.round_trip(
                    Duration::from_nanos(40_000 + (id & 0xfff)),
                    size,
                    size,
                    None,
                );
                black_box(ok)
            });
        });
        let mut open_loop = Recorder::new(true);
        group.bench_with_input(BenchmarkId::new("record_open_loop", size), &size, |b, _| {
            b.iter(|| {
                id += 1;
                let took = Duration::from_nanos(40_000 + (id & 0xfff));
                let paced = Paced {
                    corrected: took * 2,
                    held: id & 1 == 0,
                    lag: Duration::from_nanos(id & 0x3fff),
                };
                open_loop.round_trip(took, size, size, Some(paced));
            });
        });
    }
    group.finish();
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
