//! deploy/: the Prometheus configuration and alert rules pass Prometheus'
//! own checks and rule tests, the Grafana dashboard's queries are valid
//! PromQL, and every metric the dashboard and the rules use is one the
//! hotline exports.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn deploy(path: &str) -> String {
    format!("{}/deploy/{path}", env!("CARGO_MANIFEST_DIR"))
}

fn promtool(args: &[&str]) {
    let out = Command::new("promtool")
        .args(args)
        .output()
        .expect("promtool (Debian package prometheus, installed by tests/run.sh)");
    assert!(
        out.status.success(),
        "promtool {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The dashboard's queries, by panel title.
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(deploy("grafana/hotline-dashboard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 15, "{} panels", panels.len());
    let mut queries = Vec::new();
    for p in panels {
        let title = p["title"].as_str().expect("every panel has a title");
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {title} has no query");
        for t in targets {
            queries.push((
                title.to_string(),
                t["expr"].as_str().expect("a PromQL expr").to_string(),
            ));
        }
    }
    queries
}

/// The alert rules' expressions (the `expr:` lines of alerts.yml).
fn rule_queries() -> Vec<String> {
    std::fs::read_to_string(deploy("prometheus/alerts.yml"))
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr:"))
        .map(|e| e.trim().to_string())
        .collect()
}

/// Metric names in a PromQL expression: identifiers starting `hotline_`,
/// with a histogram's series suffixes taken off.
fn metrics_in(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("hotline_") {
        let word: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + word.len()..];
        let name = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| word.strip_suffix(s))
            .unwrap_or(&word);
        names.insert(name.to_string());
    }
    names
}

#[test]
fn every_metric_the_dashboard_and_the_alert_rules_use_is_exported() {
    let exported: BTreeSet<String> = hotline::metrics::Metrics::new()
        .names()
        .iter()
        .cloned()
        .collect();
    let mut used = BTreeSet::new();
    for (title, expr) in dashboard_queries() {
        let names = metrics_in(&expr);
        assert!(
            !names.is_empty(),
            "panel {title}: no hotline metric in {expr}"
        );
        for n in names {
            assert!(
                exported.contains(&n),
                "panel {title} uses {n}, which the hotline does not export"
            );
            used.insert(n);
        }
    }
    let rules = rule_queries();
    assert_eq!(rules.len(), 8, "{rules:?}");
    for expr in rules {
        for n in metrics_in(&expr) {
            assert!(
                exported.contains(&n),
                "alert rule {expr} uses {n}, which the hotline does not export"
            );
            used.insert(n);
        }
    }
    // The supervisors' core figures are all on the dashboard.
    for core in [
        "hotline_service_level_ratio",
        "hotline_calls_waiting",
        "hotline_longest_wait_seconds",
        "hotline_asa_seconds",
        "hotline_aht_seconds",
        "hotline_abandon_ratio",
        "hotline_occupancy_ratio",
        "hotline_agents",
        "hotline_sla_breaches_total",
        "hotline_survey_score",
        "hotline_group_complaint_alerts_total",
    ] {
        assert!(used.contains(core), "{core} is on no panel or rule");
    }
    // The checker itself finds a name that is not exported.
    assert!(!exported.contains("hotline_service_level"));
    assert_eq!(
        metrics_in("histogram_quantile(0.9, rate(hotline_x_seconds_bucket[5m]))"),
        BTreeSet::from(["hotline_x_seconds".to_string()])
    );
}

#[test]
fn prometheus_accepts_the_config_and_the_alert_rules_fire_as_scripted() {
    promtool(&["check", "config", &deploy("prometheus/prometheus.yml")]);
    promtool(&["test", "rules", &deploy("prometheus/alerts_test.yml")]);
}

#[test]
fn every_dashboard_query_is_valid_promql() {
    // promtool parses the queries as recording rules.
    let dir = tempfile::tempdir().unwrap();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, expr)) in dashboard_queries().iter().enumerate() {
        rules.push_str(&format!(
            "      - record: dashboard:query{i}\n        expr: {}\n",
            serde_json::to_string(expr).unwrap()
        ));
    }
    let file = dir.path().join("dashboard_rules.yml");
    std::fs::write(&file, rules).unwrap();
    promtool(&["check", "rules", file.to_str().unwrap()]);
    assert!(Path::new(&deploy("hotline.service")).is_file());
    assert!(Path::new(&deploy("Dockerfile")).is_file());
}
