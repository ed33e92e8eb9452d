//! The report as one printable HTML page: tables and bar charts drawn as
//! plain SVG here (no script, no fonts or styles from elsewhere).

use super::{QueueFigures, Report};
use crate::site::LocalTime;

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn pct(v: Option<f64>) -> String {
    v.map(|x| format!("{:.1} %", x * 100.0))
        .unwrap_or_else(|| "–".into())
}

fn secs(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.1} s")).unwrap_or_else(|| "–".into())
}

/// The sum over queues of one hour or of the window.
fn totals(queues: &[QueueFigures]) -> (u32, u32, u32, u32) {
    queues.iter().fold((0, 0, 0, 0), |(o, a, b, f), q| {
        (
            o + q.offered,
            a + q.figures.answered,
            b + q.figures.abandoned,
            f + q.figures.overflowed,
        )
    })
}

/// The offered service level of several queues together, abandons within
/// the threshold counted as the report's setting says (as `acd::stats`).
fn service_level(queues: &[QueueFigures], short: crate::acd::stats::ShortAbandons) -> Option<f64> {
    use crate::acd::stats::ShortAbandons;
    let sum = |f: fn(&QueueFigures) -> u32| queues.iter().map(f).sum::<u32>();
    let offered = sum(|q| q.offered);
    let in_time = sum(|q| q.figures.answered_in_time);
    let short_abandons = sum(|q| q.figures.abandoned_in_time);
    let (met, counted) = match short {
        ShortAbandons::Ignore => (in_time, offered - short_abandons),
        ShortAbandons::Fail => (in_time, offered),
        ShortAbandons::Meet => (in_time + short_abandons, offered),
    };
    (counted > 0).then(|| met as f64 / counted as f64)
}

/// Bars per hour: answered (dark), abandoned (red), overflowed (grey),
/// stacked to the calls offered.
fn hours_chart(report: &Report) -> String {
    let (w, h, left, bottom) = (720.0, 220.0, 36.0, 24.0);
    let max = report
        .hours
        .iter()
        .map(|h| totals(&h.queues).0)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let slot = (w - left) / 24.0;
    let scale = (h - bottom - 10.0) / max;
    let mut svg = format!(
        "<svg viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"calls per hour\">"
    );
    svg += &format!(
        "<line x1=\"{left}\" y1=\"{y}\" x2=\"{w}\" y2=\"{y}\" stroke=\"#888\"/>",
        y = h - bottom
    );
    svg += &format!(
        "<text x=\"{}\" y=\"14\" font-size=\"11\" text-anchor=\"end\">{max}</text>",
        left - 4.0
    );
    for hour in 0..24u32 {
        let x = left + hour as f64 * slot;
        if hour % 3 == 0 {
            svg += &format!(
                "<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{hour:02}</text>",
                x + slot / 2.0,
                h - 6.0
            );
        }
        let Some(row) = report.hours.iter().find(|r| r.hour == hour) else {
            continue;
        };
        let (_, answered, abandoned, overflowed) = totals(&row.queues);
        let mut y = h - bottom;
        for (n, colour, what) in [
            (answered, "#1d4e89", "answered"),
            (abandoned, "#c0392b", "abandoned"),
            (overflowed, "#999999", "sent to the fallback"),
        ] {
            if n == 0 {
                continue;
            }
            let bar = n as f64 * scale;
            y -= bar;
            svg += &format!(
                "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{bar:.1}\" fill=\"{colour}\"><title>{hour:02}:00 {n} {what}</title></rect>",
                x + 2.0,
                slot - 4.0
            );
        }
    }
    svg + "</svg>"
}

/// Horizontal bars for counted names (tickets by category ...).
fn bars(items: &[(String, u32)]) -> String {
    let max = items.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1) as f64;
    let (w, row) = (520.0, 22.0);
    let h = row * items.len() as f64 + 4.0;
    let mut svg = format!("<svg viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\">");
    for (i, (name, n)) in items.iter().enumerate() {
        let y = i as f64 * row + 2.0;
        let bar = (w - 220.0) * *n as f64 / max;
        svg += &format!(
            "<text x=\"150\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"end\">{}</text><rect x=\"156\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"{:.1}\" fill=\"#1d4e89\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\">{n}</text>",
            y + 14.0,
            escape(name),
            row - 6.0,
            160.0 + bar,
            y + 14.0
        );
    }
    svg + "</svg>"
}

pub fn render(report: &Report, local: LocalTime) -> String {
    let (offered, answered, abandoned, overflowed) = totals(&report.queues);
    let mut page = String::new();
    page += "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">";
    page += &format!("<title>Hotline report {}</title>", escape(&report.title));
    page += "<style>body{font-family:sans-serif;margin:24px;color:#222;max-width:1000px}\
h1{font-size:24px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}\
th:first-child,td:first-child{text-align:left}.tiles{display:flex;gap:12px;flex-wrap:wrap}\
.tile{border:1px solid #ccc;padding:8px 14px;min-width:110px}.tile b{display:block;font-size:26px}\
.missed{color:#c0392b;font-weight:bold}@media print{body{margin:0}h2{break-after:avoid}}</style></head><body>";
    page += &format!(
        "<h1>Hotline report {}</h1><p>{} to {} (local time); service level target: answered within {} s.</p>",
        escape(&report.title),
        local.format(report.from_ms),
        local.format(report.to_ms),
        report.threshold_seconds
    );
    page += "<div class=\"tiles\">";
    for (label, value) in [
        ("offered", offered.to_string()),
        ("answered", answered.to_string()),
        ("abandoned", abandoned.to_string()),
        ("to the fallback", overflowed.to_string()),
        ("occupancy", pct(report.occupancy)),
        ("tickets opened", report.tickets.opened.to_string()),
        (
            "satisfaction",
            report
                .tickets
                .satisfaction
                .map(|s| format!("{s:.2} / 5"))
                .unwrap_or_else(|| "–".into()),
        ),
    ] {
        page += &format!("<div class=\"tile\">{label}<b>{}</b></div>", escape(&value));
    }
    page += "</div><h2>Queues</h2><table><tr><th>queue</th><th>offered</th><th>answered</th><th>abandoned</th><th>to fallback</th><th>service level (answered)</th><th>service level (offered)</th><th>abandon rate</th><th>ASA</th><th>AHT</th></tr>";
    for q in &report.queues {
        let f = &q.figures;
        page += &format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&q.queue),
            q.offered,
            f.answered,
            f.abandoned,
            f.overflowed,
            pct(f.service_level_answered),
            pct(f.service_level_offered),
            pct(f.abandon_rate),
            secs(f.asa_seconds),
            secs(f.aht_seconds)
        );
    }
    page += "</table><h2>Calls by hour</h2>";
    page += "<p>Dark: answered; red: abandoned; grey: sent to the fallback.</p>";
    page += &hours_chart(report);
    page += "<table><tr><th>hour</th><th>offered</th><th>answered</th><th>abandoned</th><th>service level (offered)</th></tr>";
    for h in &report.hours {
        let (o, a, b, _) = totals(&h.queues);
        let sl = service_level(&h.queues, report.short_abandons);
        page += &format!(
            "<tr><td>{:02}:00</td><td>{o}</td><td>{a}</td><td>{b}</td><td>{}</td></tr>",
            h.hour,
            pct(sl)
        );
    }
    page += "</table><h2>Agents</h2><table><tr><th>agent</th><th>rung</th><th>missed</th><th>answered</th><th>handle time</th><th>AHT</th><th>occupancy</th></tr>";
    for a in &report.agents {
        page += &format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.0} s</td><td>{}</td><td>{}</td></tr>",
            escape(&a.agent),
            a.offers,
            a.misses,
            a.answered,
            a.handle_seconds,
            secs(a.aht_seconds),
            pct(a.occupancy)
        );
    }
    let t = &report.tickets;
    page += "</table><h2>Tickets</h2>";
    page += &format!(
        "<p>{} opened; of them {} done within the promise, <span class=\"{}\">{} past it</span>, {} warned, {} still open.</p>",
        t.opened,
        t.sla_kept,
        if t.sla_breached > 0 { "missed" } else { "" },
        t.sla_breached,
        t.sla_warned,
        t.still_open
    );
    page += &bars(&t.top_categories);
    page += &format!(
        "<h2>Return visits and satisfaction</h2><p>{} owners confirmed the fix, {} said it was not fixed, {} return calls went unanswered, {} visits were given up. {} ratings, mean {}.</p>",
        t.confirmed,
        t.not_fixed,
        t.return_calls_unanswered,
        t.return_visits_given_up,
        t.surveys,
        t.satisfaction
            .map(|s| format!("{s:.2} of 5"))
            .unwrap_or_else(|| "–".into())
    );
    page += "<h2>Complaints by building</h2>";
    if t.complaint_buildings.is_empty() {
        page += "<p>No complaints.</p>";
    } else {
        page += &bars(&t.complaint_buildings);
    }
    if !t.group_complaints.is_empty() {
        page += "<p>Group complaints raised:</p><ul>";
        for g in &t.group_complaints {
            page += &format!("<li>{}</li>", escape(g));
        }
        page += "</ul>";
    }
    page + "</body></html>\n"
}
