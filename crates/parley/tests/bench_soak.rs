//! `parley bench soak`, briefly: the built binary spawns its own server and
//! holds a small load for a few seconds with every ingredient of the real
//! soak (reconnects, read receipts, group churn), a row a second. Checks
//! that the run reports a row per interval with the server's memory and
//! descriptors, that reconnects, receipts and churn happened, and that the
//! delivery checks and the socket-descriptor check are clean. The RSS verdict of
//! a run this short means nothing and is not asserted.

use std::process::{Command, Stdio};

#[test]
fn a_short_soak_reports_each_interval_and_verifies_delivery() {
    let data = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_parley"))
        .args([
            "bench",
            "soak",
            "--spawn",
            "--connections",
            "20",
            "--rate",
            "100",
            "--duration",
            "4s",
            "--interval",
            "1",
            "--warmup",
            "1",
            "--reconnect-every",
            "1",
            "--receipt-every",
            "0.5",
            "--churn-groups",
            "2",
            "--churn-rate",
            "10",
            "--concurrency",
            "4",
            "--json",
        ])
        .arg("--data-parent")
        .arg(data.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}); stderr: {stderr}"));
    let rows = report["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 4, "{report:#}");
    for row in rows {
        assert!(row["rss_kib"].as_u64().unwrap() > 0, "{row}");
        assert!(row["fds"]["all"].as_u64().unwrap() > 0, "{row}");
        assert!(row["fds"]["sockets"].as_u64().unwrap() > 0, "{row}");
    }
    for counter in ["reconnects", "receipts", "churn"] {
        assert!(
            report[counter].as_u64().unwrap() > 0,
            "{counter}: {report:#}"
        );
    }
    let verification = &report["verification"];
    assert!(verification["acked"].as_u64().unwrap() > 0, "{report:#}");
    assert_eq!(verification["lost"], 0, "{report:#}");
    assert_eq!(verification["duplicate_deliveries"], 0, "{report:#}");
    assert_eq!(verification["out_of_order"], 0, "{report:#}");
    let judgement = &report["judgement"];
    assert_eq!(judgement["verification_ok"], true, "{report:#}");
    assert_eq!(judgement["fds_ok"], true, "{report:#}");
    assert!(judgement["rss_growth_pct"].is_number(), "{report:#}");
}
