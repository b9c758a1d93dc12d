//! Regression test for the histogram queue: the Prometheus recorder keeps
//! every histogram sample until something drains it, and a server nobody
//! scraped grew by every sample it recorded (found by the soak,
//! BENCHMARKS.md). `background::keep_metrics_bounded` must drain it
//! without a scrape. Live heap bytes are counted exactly by dhat's testing
//! mode, so this needs no timing and no RSS reading.

use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;
use parley_server::background::keep_metrics_bounded;

#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

const SAMPLES: u64 = 200_000;

fn live_bytes() -> u64 {
    dhat::HeapStats::get().curr_bytes as u64
}

#[tokio::test]
async fn histogram_samples_are_drained_without_a_scrape() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let recorder = PrometheusBuilder::new()
        .set_buckets(&[0.001, 0.01, 0.1, 1.0])
        .expect("buckets")
        .build_recorder();
    let handle = recorder.handle();
    let histogram = metrics::with_local_recorder(&recorder, || {
        metrics::histogram!("parley_test_commit_seconds")
    });

    let before = live_bytes();
    for _ in 0..SAMPLES {
        histogram.record(0.002);
    }
    let queued = live_bytes().saturating_sub(before);
    assert!(
        queued >= SAMPLES * 8,
        "the recorder should hold the undrained samples ({queued} bytes for {SAMPLES})"
    );

    let upkeep = tokio::spawn(keep_metrics_bounded(
        handle.clone(),
        Duration::from_millis(10),
    ));
    // Bounded wait: the drained blocks are freed once the recorder's
    // epoch-based reclamation runs, which recording drives.
    let mut held = queued;
    let mut recorded = SAMPLES;
    for _ in 0..500 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        histogram.record(0.002);
        recorded += 1;
        held = live_bytes().saturating_sub(before);
        if held < queued / 10 {
            break;
        }
    }
    upkeep.abort();
    assert!(
        held < queued / 10,
        "upkeep left {held} of {queued} bytes of queued samples"
    );
    let text = handle.render();
    assert!(
        text.contains(&format!("parley_test_commit_seconds_count {recorded}")),
        "the drained samples are counted, not lost:\n{text}"
    );
}
