//! Results: per workload and server the measured values of every run, their median /
//! min / max, the ratio to the reference server, the server CPU cost, and memory; written
//! as JSON and as a Markdown table.
//!
//! Owns: the statistics and both output formats (JSON written by hand: a dozen lines do
//! not justify a serializer dependency).
//! Must never: judge a figure (no thresholds here: --quick checks that the tool runs).

use std::fmt::Write as _;

use crate::procstat::Memory;

/// Measurements of one workload on one server.
#[derive(Debug, Clone, Default)]
pub struct Cell {
    /// Rate per run (higher is better): MB/s, ops/s or entries/s.
    pub values: Vec<f64>,
    /// Server CPU seconds per cost unit, per run.
    pub cpu: Vec<f64>,
    /// duet-bench's own CPU seconds per cost unit, per run (pipelined client only).
    pub client_cpu: Vec<f64>,
    pub errors: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct WorkloadResult {
    pub id: &'static str,
    pub client: &'static str,
    pub title: String,
    pub unit: &'static str,
    pub cost_unit: &'static str,
    /// One per server, in the report's server order.
    pub cells: Vec<Cell>,
}

#[derive(Debug, Clone)]
pub struct MemRow {
    pub label: String,
    /// One per server.
    pub values: Vec<Result<Memory, String>>,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub started_utc: String,
    pub mode: String,
    pub runs: usize,
    /// (name, version) in run order; the reference for ratios is `reference`.
    pub servers: Vec<(String, String)>,
    pub reference: Option<usize>,
    pub machine: Vec<(String, String)>,
    pub settings: Vec<(String, String)>,
    pub workloads: Vec<WorkloadResult>,
    pub memory: Vec<MemRow>,
    /// The kernel's share of a file moved over loopback (see floor.rs), when the
    /// sequential workloads ran.
    pub floor: Option<crate::floor::Floor>,
    pub notes: Vec<String>,
}

pub fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    Some(if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    })
}

pub fn min(v: &[f64]) -> Option<f64> {
    v.iter().copied().reduce(f64::min)
}

pub fn max(v: &[f64]) -> Option<f64> {
    v.iter().copied().reduce(f64::max)
}

/// A figure with about three significant digits.
pub fn fmt_num(x: f64) -> String {
    let a = x.abs();
    if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn json_num(x: Option<f64>) -> String {
    match x {
        Some(v) if v.is_finite() => format!("{v}"),
        _ => "null".into(),
    }
}

fn json_nums(v: &[f64]) -> String {
    let parts: Vec<String> = v.iter().map(|x| json_num(Some(*x))).collect();
    format!("[{}]", parts.join(","))
}

fn json_pairs(p: &[(String, String)]) -> String {
    let parts: Vec<String> = p
        .iter()
        .map(|(k, v)| format!("{}:{}", json_str(k), json_str(v)))
        .collect();
    format!("{{{}}}", parts.join(","))
}

impl Report {
    fn ratio(&self, w: &WorkloadResult, i: usize) -> Option<f64> {
        let r = self.reference?;
        let a = median(&w.cells.get(i)?.values)?;
        let b = median(&w.cells.get(r)?.values)?;
        (b > 0.0).then(|| a / b)
    }

    fn cpu_ratio(&self, w: &WorkloadResult, i: usize) -> Option<f64> {
        let r = self.reference?;
        let a = median(&w.cells.get(i)?.cpu)?;
        let b = median(&w.cells.get(r)?.cpu)?;
        (b > 0.0).then(|| a / b)
    }

    fn reference_name(&self) -> Option<&str> {
        self.reference.map(|r| self.servers[r].0.as_str())
    }

    pub fn to_json(&self) -> String {
        let mut o = String::new();
        o.push_str("{\n");
        let _ = writeln!(o, "  \"tool\": \"duet-bench\",");
        let _ = writeln!(o, "  \"started_utc\": {},", json_str(&self.started_utc));
        let _ = writeln!(o, "  \"mode\": {},", json_str(&self.mode));
        let _ = writeln!(o, "  \"runs\": {},", self.runs);
        let _ = writeln!(
            o,
            "  \"reference\": {},",
            self.reference_name().map_or("null".into(), json_str)
        );
        let servers: Vec<String> = self
            .servers
            .iter()
            .map(|(n, v)| format!("{{\"name\":{},\"version\":{}}}", json_str(n), json_str(v)))
            .collect();
        let _ = writeln!(o, "  \"servers\": [{}],", servers.join(","));
        let _ = writeln!(o, "  \"machine\": {},", json_pairs(&self.machine));
        let _ = writeln!(o, "  \"settings\": {},", json_pairs(&self.settings));
        o.push_str("  \"workloads\": [\n");
        for (wi, w) in self.workloads.iter().enumerate() {
            let _ = write!(
                o,
                "    {{\"id\":{},\"client\":{},\"title\":{},\"unit\":{},\"cost_unit\":{},\"results\":{{",
                json_str(w.id),
                json_str(w.client),
                json_str(&w.title),
                json_str(w.unit),
                json_str(w.cost_unit)
            );
            for (i, c) in w.cells.iter().enumerate() {
                let errs: Vec<String> = c.errors.iter().map(|e| json_str(e)).collect();
                let _ = write!(
                    o,
                    "{}{}:{{\"values\":{},\"median\":{},\"min\":{},\"max\":{},\"ratio_to_reference\":{},\"cpu\":{},\"cpu_median\":{},\"cpu_ratio_to_reference\":{},\"client_cpu\":{},\"errors\":[{}]}}",
                    if i > 0 { "," } else { "" },
                    json_str(&self.servers[i].0),
                    json_nums(&c.values),
                    json_num(median(&c.values)),
                    json_num(min(&c.values)),
                    json_num(max(&c.values)),
                    json_num(self.ratio(w, i)),
                    json_nums(&c.cpu),
                    json_num(median(&c.cpu)),
                    json_num(self.cpu_ratio(w, i)),
                    json_nums(&c.client_cpu),
                    errs.join(",")
                );
            }
            let _ = writeln!(
                o,
                "}}}}{}",
                if wi + 1 < self.workloads.len() {
                    ","
                } else {
                    ""
                }
            );
        }
        o.push_str("  ],\n  \"memory\": [\n");
        for (mi, m) in self.memory.iter().enumerate() {
            let _ = write!(o, "    {{\"state\":{},\"results\":{{", json_str(&m.label));
            for (i, v) in m.values.iter().enumerate() {
                let sep = if i > 0 { "," } else { "" };
                let name = json_str(&self.servers[i].0);
                match v {
                    Ok(mem) => {
                        let _ = write!(
                            o,
                            "{sep}{name}:{{\"rss_kib\":{},\"pss_kib\":{},\"processes\":{}}}",
                            mem.rss_kib, mem.pss_kib, mem.processes
                        );
                    }
                    Err(e) => {
                        let _ = write!(o, "{sep}{name}:{{\"error\":{}}}", json_str(e));
                    }
                }
            }
            let _ = writeln!(
                o,
                "}}}}{}",
                if mi + 1 < self.memory.len() { "," } else { "" }
            );
        }
        o.push_str("  ],\n");
        if let Some(f) = &self.floor {
            let _ = writeln!(
                o,
                "  \"kernel_floor_cpu_s_per_gib\": {{\"pread_write\":{:.3},\"sendfile\":{:.3},\"recv_pwrite\":{:.3}}},",
                f.read, f.sendfile, f.write
            );
        }
        let notes: Vec<String> = self.notes.iter().map(|n| json_str(n)).collect();
        let _ = writeln!(o, "  \"notes\": [{}]", notes.join(","));
        o.push_str("}\n");
        o
    }

    pub fn to_markdown(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "# duet-bench results, {} UTC ({} mode)\n",
            self.started_utc, self.mode
        );
        let names: Vec<&str> = self.servers.iter().map(|s| s.0.as_str()).collect();
        let _ = writeln!(
            o,
            "{} run(s) per workload, servers interleaved run by run ({}); figures are the median with min-max.",
            self.runs,
            names.join(" ")
        );
        if let Some(r) = self.reference_name() {
            let _ = writeln!(
                o,
                "Ratios are to {r} (higher is better for rates, lower for CPU)."
            );
        }
        o.push_str("\n**Machine:** ");
        let m: Vec<String> = self
            .machine
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        o.push_str(&m.join("; "));
        o.push_str("\n\n**Versions:**\n");
        for (n, v) in &self.servers {
            let _ = writeln!(o, "- {n}: {v}");
        }
        o.push_str("\n**Settings:**\n");
        for (k, v) in &self.settings {
            let _ = writeln!(o, "- {k}: {v}");
        }
        let others: Vec<usize> = (0..self.servers.len())
            .filter(|&i| Some(i) != self.reference)
            .collect();

        o.push_str("\n## Throughput\n\n| workload | client | unit |");
        for n in &names {
            let _ = write!(o, " {n} |");
        }
        if let Some(r) = self.reference_name() {
            for &i in &others {
                let _ = write!(o, " {} / {r} |", names[i]);
            }
        }
        o.push_str("\n|---|---|---|");
        for _ in 0..names.len()
            + if self.reference.is_some() {
                others.len()
            } else {
                0
            }
        {
            o.push_str("---|");
        }
        o.push('\n');
        for w in &self.workloads {
            let _ = write!(o, "| {} | {} | {} |", w.title, w.client, w.unit);
            for c in &w.cells {
                let _ = write!(o, " {} |", cell_text(&c.values, c.errors.len()));
            }
            if self.reference.is_some() {
                for &i in &others {
                    let _ = write!(
                        o,
                        " {} |",
                        self.ratio(w, i).map_or("-".into(), |r| format!("{r:.2}"))
                    );
                }
            }
            o.push('\n');
        }

        o.push_str("\n## Server CPU (seconds per unit of work, median)\n\n| workload | unit |");
        for n in &names {
            let _ = write!(o, " {n} |");
        }
        if let Some(r) = self.reference_name() {
            for &i in &others {
                let _ = write!(o, " {} / {r} |", names[i]);
            }
        }
        o.push_str("\n|---|---|");
        for _ in 0..names.len()
            + if self.reference.is_some() {
                others.len()
            } else {
                0
            }
        {
            o.push_str("---|");
        }
        o.push('\n');
        for w in &self.workloads {
            let _ = write!(o, "| {} | {} |", w.title, w.cost_unit);
            for c in &w.cells {
                let _ = write!(
                    o,
                    " {} |",
                    median(&c.cpu).map_or("-".into(), |v| format!("{v:.3}"))
                );
            }
            if self.reference.is_some() {
                for &i in &others {
                    let _ = write!(
                        o,
                        " {} |",
                        self.cpu_ratio(w, i)
                            .map_or("-".into(), |r| format!("{r:.2}"))
                    );
                }
            }
            o.push('\n');
        }

        if self
            .workloads
            .iter()
            .any(|w| w.cells.iter().any(|c| !c.client_cpu.is_empty()))
        {
            o.push_str("\n## Client CPU (duet-bench's pipelined client, same units, median)\n\n| workload |");
            for n in &names {
                let _ = write!(o, " against {n} |");
            }
            o.push_str("\n|---|");
            for _ in &names {
                o.push_str("---|");
            }
            o.push('\n');
            for w in self
                .workloads
                .iter()
                .filter(|w| w.cells.iter().any(|c| !c.client_cpu.is_empty()))
            {
                let _ = write!(o, "| {} |", w.title);
                for c in &w.cells {
                    let _ = write!(
                        o,
                        " {} |",
                        median(&c.client_cpu).map_or("-".into(), |v| format!("{v:.3}"))
                    );
                }
                o.push('\n');
            }
        }

        if let Some(f) = &self.floor {
            o.push_str("\n## Kernel floor (no SMB: what any server copying through user space pays here)\n\n| path | CPU s/GiB |\n|---|---|\n");
            let _ = writeln!(
                o,
                "| read: pread 1 MiB + write to loopback TCP | {:.3} |",
                f.read
            );
            let _ = writeln!(
                o,
                "| read: sendfile 1 MiB to loopback TCP | {:.3} |",
                f.sendfile
            );
            let _ = writeln!(
                o,
                "| write: recv 1 MiB from loopback TCP + pwrite to a new file | {:.3} |",
                f.write
            );
        }

        if !self.memory.is_empty() {
            o.push_str("\n## Server memory (MiB: RSS summed over the server's processes; PSS in brackets)\n\n| state |");
            for n in &names {
                let _ = write!(o, " {n} |");
            }
            o.push_str("\n|---|");
            for _ in &names {
                o.push_str("---|");
            }
            o.push('\n');
            for m in &self.memory {
                let _ = write!(o, "| {} |", m.label);
                for v in &m.values {
                    match v {
                        Ok(mem) => {
                            let procs = if mem.processes > 1 {
                                format!(", {} processes", mem.processes)
                            } else {
                                String::new()
                            };
                            let _ =
                                write!(o, " {} ({}{procs}) |", mib(mem.rss_kib), mib(mem.pss_kib));
                        }
                        Err(_) => o.push_str(" failed |"),
                    }
                }
                o.push('\n');
            }
        }

        let mut errors = Vec::new();
        for w in &self.workloads {
            for (i, c) in w.cells.iter().enumerate() {
                for e in &c.errors {
                    errors.push(format!("{} on {}: {e}", w.id, names[i]));
                }
            }
        }
        for m in &self.memory {
            for (i, v) in m.values.iter().enumerate() {
                if let Err(e) = v {
                    errors.push(format!("memory '{}' on {}: {e}", m.label, names[i]));
                }
            }
        }
        if !errors.is_empty() {
            o.push_str("\n## Errors\n\n");
            errors.sort();
            errors.dedup();
            for e in errors {
                let _ = writeln!(o, "- {}", e.replace('\n', " "));
            }
        }
        if !self.notes.is_empty() {
            o.push_str("\n## Notes\n\n");
            for n in &self.notes {
                let _ = writeln!(o, "- {n}");
            }
        }
        o
    }
}

fn cell_text(v: &[f64], errors: usize) -> String {
    match (median(v), min(v), max(v)) {
        (Some(m), Some(lo), Some(hi)) if v.len() > 1 => {
            let e = if errors > 0 {
                format!(" ({errors} failed)")
            } else {
                String::new()
            };
            format!("{} ({}-{}){e}", fmt_num(m), fmt_num(lo), fmt_num(hi))
        }
        (Some(m), _, _) => fmt_num(m),
        _ if errors > 0 => "failed".into(),
        _ => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(min(&[3.0, 1.0]), Some(1.0));
        assert_eq!(max(&[3.0, 1.0]), Some(3.0));
    }

    #[test]
    fn json_and_markdown_hold_the_figures() {
        let r = Report {
            started_utc: "2026-01-01 00:00:00".into(),
            mode: "quick".into(),
            runs: 2,
            servers: vec![
                ("duetd".into(), "x".into()),
                ("smbd".into(), "y \"4.17\"".into()),
            ],
            reference: Some(1),
            workloads: vec![WorkloadResult {
                id: "seq-read-1m",
                client: "pipelined",
                title: "read".into(),
                unit: "MB/s",
                cost_unit: "CPU s/GiB",
                cells: vec![
                    Cell {
                        values: vec![300.0, 100.0],
                        cpu: vec![0.5],
                        client_cpu: vec![],
                        errors: vec![],
                    },
                    Cell {
                        values: vec![100.0, 100.0],
                        cpu: vec![1.0],
                        client_cpu: vec![],
                        errors: vec!["boom".into()],
                    },
                ],
            }],
            floor: Some(crate::floor::Floor {
                read: 0.336,
                write: 0.5,
                sendfile: 0.47,
            }),
            ..Default::default()
        };
        let j = r.to_json();
        assert!(
            j.contains("\"kernel_floor_cpu_s_per_gib\": {\"pread_write\":0.336,\"sendfile\":0.470,\"recv_pwrite\":0.500},"),
            "{j}"
        );
        assert!(j.contains("\"ratio_to_reference\":2"), "{j}");
        assert!(j.contains("\"cpu_ratio_to_reference\":0.5"), "{j}");
        assert!(j.contains("y \\\"4.17\\\""));
        assert!(j.contains("\"reference\": \"smbd\""));
        let m = r.to_markdown();
        assert!(
            m.contains(
                "| read | pipelined | MB/s | 200 (100-300) | 100 (100-100) (1 failed) | 2.00 |"
            ),
            "{m}"
        );
        assert!(m.contains("seq-read-1m on smbd: boom"));
        assert!(
            m.contains("| read: pread 1 MiB + write to loopback TCP | 0.336 |"),
            "{m}"
        );
    }
}
