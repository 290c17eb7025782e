//! The DAG picture, laid out on the server by dependency level.
//!
//! Levels run top to bottom (level 0, the roots, first), as the dependency
//! analysis computes them; a level's steps run left to right in template
//! order, wrapped every [`PER_ROW`] steps. Two rules keep a 1,000-step task
//! readable:
//!
//! - a level with more than [`MAX_PER_LEVEL`] steps shows that many (the
//!   troubled ones first: error, cancelled, running, on an error chain) and
//!   one "+N more" box counting the rest by state;
//! - with more than [`MAX_LEVELS`] levels, runs of quiet levels (nothing
//!   troubled or running) away from the first and last
//!   [`EDGE_LEVELS`] become one band box counting their steps by state.
//!
//! Edges into or out of a hidden step go to the box standing for it.
//! Every text is escaped ([`crate::format::esc`]).

use crate::format::{esc, esc_into, truncate};
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;
use tasker_core::StepState;

/// Steps per row of a level.
pub const PER_ROW: usize = 6;
/// Steps shown per level before the rest are counted in a "+N more" box.
pub const MAX_PER_LEVEL: usize = 36;
/// Levels drawn one by one before quiet runs are banded.
pub const MAX_LEVELS: usize = 60;
/// Levels always drawn at the top and the bottom when banding.
pub const EDGE_LEVELS: usize = 10;

const W: i64 = 170;
const H: i64 = 46;
const GAP_X: i64 = 14;
const ROW_GAP: i64 = 14;
const LEVEL_GAP: i64 = 34;
const LABEL_W: i64 = 64;
const PAD: i64 = 8;

/// One step (or step template) to draw.
#[derive(Debug, Clone)]
pub struct Node {
    /// Name (also the `data-step` attribute).
    pub name: String,
    /// Dependency level (0: roots).
    pub level: usize,
    /// State, for a task's step; `None` for a template.
    pub state: Option<StepState>,
    /// Second line: state, attempts, duration (or the handler kind).
    pub detail: String,
    /// Where the box links to.
    pub href: Option<String>,
    /// On an error chain: failed, or blocked behind a failure.
    pub in_chain: bool,
    /// Parents, as indexes into the node list.
    pub parents: Vec<usize>,
}

impl Node {
    fn troubled(&self) -> bool {
        self.in_chain
            || matches!(
                self.state,
                Some(StepState::Error | StepState::Cancelled | StepState::InProgress)
            )
    }
}

/// What a box on the picture stands for.
enum BoxKind {
    /// One step (index into the nodes).
    Step(usize),
    /// The steps of a level beyond [`MAX_PER_LEVEL`].
    More { level: usize, steps: Vec<usize> },
    /// A run of quiet levels.
    Band {
        from: usize,
        to: usize,
        steps: Vec<usize>,
    },
}

struct Placed {
    kind: BoxKind,
    x: i64,
    y: i64,
    w: i64,
    /// Index of its level's band in the layout.
    band: usize,
}

/// A drawn level (or band of levels): where it is, whether it wraps.
struct Band {
    top: i64,
    bottom: i64,
    left: i64,
    right: i64,
    wrapped: bool,
}

/// The SVG of `nodes` (in template order), titled `label` for screen readers.
pub fn render(nodes: &[Node], label: &str) -> String {
    let mut by_level: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, n) in nodes.iter().enumerate() {
        by_level.entry(n.level).or_default().push(i);
    }
    let levels: Vec<usize> = by_level.keys().copied().collect();
    let shown = shown_levels(&levels, &by_level, nodes);

    let mut placed: Vec<Placed> = Vec::new();
    let mut bands: Vec<Band> = Vec::new();
    let mut owner = vec![usize::MAX; nodes.len()];
    let mut labels: Vec<(i64, String)> = Vec::new();
    let mut y = PAD;
    let mut widest = 1usize;
    let mut li = 0;
    while li < levels.len() {
        let level = levels[li];
        if !shown[li] {
            // A band: this and the following hidden levels.
            let from = level;
            let mut steps = Vec::new();
            let mut to = level;
            while li < levels.len() && !shown[li] {
                to = levels[li];
                steps.extend(by_level[&levels[li]].iter().copied());
                li += 1;
            }
            let b = placed.len();
            for &s in &steps {
                owner[s] = b;
            }
            labels.push((y, format!("L{from}–{to}")));
            let w = (W + GAP_X) * PER_ROW as i64 - GAP_X;
            placed.push(Placed {
                kind: BoxKind::Band { from, to, steps },
                x: LABEL_W,
                y,
                w,
                band: bands.len(),
            });
            bands.push(Band {
                top: y,
                bottom: y + H,
                left: LABEL_W,
                right: LABEL_W + w,
                wrapped: false,
            });
            y += H + LEVEL_GAP;
            continue;
        }
        let members = &by_level[&level];
        let (visible, hidden) = pick(members, nodes);
        labels.push((y, format!("L{level}")));
        let mut boxes: Vec<BoxKind> = visible.iter().map(|&i| BoxKind::Step(i)).collect();
        if !hidden.is_empty() {
            boxes.push(BoxKind::More {
                level,
                steps: hidden,
            });
        }
        widest = widest.max(boxes.len().min(PER_ROW));
        let rows = boxes.len().div_ceil(PER_ROW);
        let cols = boxes.len().min(PER_ROW) as i64;
        bands.push(Band {
            top: y,
            bottom: y + rows as i64 * (H + ROW_GAP) - ROW_GAP,
            left: LABEL_W,
            right: LABEL_W + cols * (W + GAP_X) - GAP_X,
            wrapped: rows > 1,
        });
        let band = bands.len() - 1;
        for (k, kind) in boxes.into_iter().enumerate() {
            let (row, col) = ((k / PER_ROW) as i64, (k % PER_ROW) as i64);
            let b = placed.len();
            match &kind {
                BoxKind::Step(i) => owner[*i] = b,
                BoxKind::More { steps, .. } => steps.iter().for_each(|&s| owner[s] = b),
                BoxKind::Band { .. } => {}
            }
            placed.push(Placed {
                kind,
                x: LABEL_W + col * (W + GAP_X),
                y: y + row * (H + ROW_GAP),
                w: W,
                band,
            });
        }
        y += rows as i64 * (H + ROW_GAP) - ROW_GAP + LEVEL_GAP;
        li += 1;
    }
    if shown.iter().any(|s| !*s) {
        widest = PER_ROW; // bands span a full row
    }
    let width = LABEL_W + (W + GAP_X) * widest as i64 - GAP_X + PAD;
    let height = (y - LEVEL_GAP + PAD).max(H + 2 * PAD);

    let mut out = String::with_capacity(nodes.len() * 420 + 512);
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="dag" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-labelledby="dag-title"><title id="dag-title">"#
    );
    esc_into(&mut out, label);
    out.push_str("</title><g class=\"edges\">");
    // Edges first, so boxes cover their ends. A level that wraps onto
    // several rows is reached through buses (a line above it for edges in,
    // one below it for edges out), so no edge crosses its boxes.
    let mut seen: HashSet<(i64, i64, i64, i64)> = HashSet::new();
    let mut buses: HashSet<(usize, bool, bool)> = HashSet::new();
    for (i, n) in nodes.iter().enumerate() {
        for &p in &n.parents {
            let (Some(&a), Some(&b)) = (owner.get(p), owner.get(i)) else {
                continue;
            };
            if a == b || a == usize::MAX || b == usize::MAX {
                continue;
            }
            let (pa, pb) = (&placed[a], &placed[b]);
            let (ba, bb) = (&bands[pa.band], &bands[pb.band]);
            let failed = matches!(
                nodes[p].state,
                Some(StepState::Error | StepState::Cancelled)
            ) || (nodes[p].in_chain && n.in_chain);
            let (x1, y1) = if ba.wrapped {
                let x = (pb.x + pb.w / 2).clamp(ba.left, ba.right);
                buses.insert((pa.band, false, failed));
                (x, ba.bottom + ROW_GAP / 2)
            } else {
                (pa.x + pa.w / 2, pa.y + H)
            };
            let (x2, y2) = if bb.wrapped {
                buses.insert((pb.band, true, failed));
                (x1.clamp(bb.left, bb.right), bb.top - ROW_GAP / 2)
            } else {
                (pb.x + pb.w / 2, pb.y)
            };
            if !seen.insert((x1, y1, x2, y2)) {
                continue;
            }
            let bend = ((y2 - y1) / 2).max(6);
            let class = if failed { "edge chain" } else { "edge" };
            let _ = write!(
                out,
                r#"<path class="{class}" d="M{x1} {y1}C{x1} {},{x2} {},{x2} {y2}"/>"#,
                y1 + bend,
                y2 - bend
            );
        }
    }
    let mut buses: Vec<_> = buses.into_iter().collect();
    buses.sort_unstable();
    for (band, above, failed) in buses {
        let b = &bands[band];
        let y = if above {
            b.top - ROW_GAP / 2
        } else {
            b.bottom + ROW_GAP / 2
        };
        let class = if failed { "edge bus chain" } else { "edge bus" };
        let _ = write!(
            out,
            r#"<path class="{class}" d="M{} {y}H{}"/>"#,
            b.left + W / 2,
            b.right - W / 2
        );
    }
    out.push_str("</g><g class=\"labels\">");
    for (ly, text) in &labels {
        let _ = write!(
            out,
            r#"<text class="level" x="{PAD}" y="{}">{}</text>"#,
            ly + H / 2 + 4,
            esc(text)
        );
    }
    out.push_str("</g>");
    for p in &placed {
        draw_box(&mut out, p, nodes);
    }
    out.push_str("</svg>");
    out
}

/// Which levels are drawn one by one (the rest are banded).
fn shown_levels(
    levels: &[usize],
    by_level: &BTreeMap<usize, Vec<usize>>,
    nodes: &[Node],
) -> Vec<bool> {
    let n = levels.len();
    if n <= MAX_LEVELS {
        return vec![true; n];
    }
    (0..n)
        .map(|k| {
            k < EDGE_LEVELS
                || k >= n - EDGE_LEVELS
                || by_level[&levels[k]].iter().any(|&i| nodes[i].troubled())
        })
        .collect()
}

/// The steps of a level drawn one by one (troubled first when it must be
/// cut, then in template order) and the ones counted in its "+N more" box.
fn pick(members: &[usize], nodes: &[Node]) -> (Vec<usize>, Vec<usize>) {
    if members.len() <= MAX_PER_LEVEL {
        return (members.to_vec(), Vec::new());
    }
    let room = MAX_PER_LEVEL - 1;
    let mut chosen: Vec<usize> = members
        .iter()
        .copied()
        .filter(|&i| nodes[i].troubled())
        .take(room)
        .collect();
    for &i in members {
        if chosen.len() >= room {
            break;
        }
        if !nodes[i].troubled() {
            chosen.push(i);
        }
    }
    chosen.sort_unstable();
    let keep: HashSet<usize> = chosen.iter().copied().collect();
    let rest = members
        .iter()
        .copied()
        .filter(|i| !keep.contains(i))
        .collect();
    (chosen, rest)
}

/// "12 complete, 3 pending" for the steps a box counts.
fn counts(steps: &[usize], nodes: &[Node]) -> String {
    let mut by: BTreeMap<&str, usize> = BTreeMap::new();
    for &i in steps {
        let k = nodes[i].state.map_or("step", |s| s.as_str());
        *by.entry(k).or_default() += 1;
    }
    by.iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn draw_box(out: &mut String, p: &Placed, nodes: &[Node]) {
    let (x, y, w) = (p.x, p.y, p.w);
    match &p.kind {
        BoxKind::Step(i) => {
            let n = &nodes[*i];
            let state = n.state.map_or("template", |s| s.as_str());
            let chain = if n.in_chain { " chain" } else { "" };
            out.push_str("<g class=\"node s-");
            out.push_str(state);
            out.push_str(chain);
            out.push_str("\" data-step=\"");
            esc_into(out, &n.name);
            let _ = write!(out, "\" data-state=\"{state}\">");
            if let Some(href) = &n.href {
                out.push_str("<a href=\"");
                esc_into(out, href);
                out.push_str("\">");
            }
            out.push_str("<title>");
            esc_into(out, &n.name);
            out.push_str(" — ");
            esc_into(out, &n.detail);
            let _ = write!(
                out,
                r#"</title><rect x="{x}" y="{y}" width="{w}" height="{H}" rx="6"/><text class="name" x="{}" y="{}">"#,
                x + 8,
                y + 19
            );
            esc_into(out, &truncate(&n.name, 22));
            let _ = write!(
                out,
                r#"</text><text class="detail" x="{}" y="{}">"#,
                x + 8,
                y + 37
            );
            esc_into(out, &truncate(&n.detail, 26));
            out.push_str("</text>");
            if n.href.is_some() {
                out.push_str("</a>");
            }
            out.push_str("</g>");
        }
        BoxKind::More { level, steps } => {
            let c = counts(steps, nodes);
            let _ = write!(
                out,
                r#"<g class="node more" data-level="{level}"><title>{} more steps at level {level}: {}</title><rect x="{x}" y="{y}" width="{w}" height="{H}" rx="6"/><text class="name" x="{}" y="{}">+{} more</text><text class="detail" x="{}" y="{}">{}</text></g>"#,
                steps.len(),
                esc(&c),
                x + 8,
                y + 19,
                steps.len(),
                x + 8,
                y + 37,
                esc(&truncate(&c, 26))
            );
        }
        BoxKind::Band { from, to, steps } => {
            let c = counts(steps, nodes);
            let _ = write!(
                out,
                r#"<g class="node band"><title>levels {from} to {to}: {} steps ({})</title><rect x="{x}" y="{y}" width="{w}" height="{H}" rx="6"/><text class="name" x="{}" y="{}">levels {from}–{to}: {} steps</text><text class="detail" x="{}" y="{}">{}</text></g>"#,
                steps.len(),
                esc(&c),
                x + 8,
                y + 19,
                steps.len(),
                x + 8,
                y + 37,
                esc(&truncate(&c, 80))
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, level: usize, state: StepState, parents: Vec<usize>) -> Node {
        Node {
            name: name.into(),
            level,
            state: Some(state),
            detail: state.as_str().into(),
            href: None,
            in_chain: false,
            parents,
        }
    }

    #[test]
    fn wide_levels_collapse_with_counts_and_keep_failures() {
        let mut nodes = vec![node("root", 0, StepState::Complete, vec![])];
        for i in 0..998 {
            let st = if i == 700 {
                StepState::Error
            } else {
                StepState::Complete
            };
            nodes.push(node(&format!("m{i}"), 1, st, vec![0]));
        }
        nodes.push(node("join", 2, StepState::Pending, (1..999).collect()));
        let svg = render(&nodes, "t");
        assert_eq!(
            svg.matches("class=\"node s-").count(),
            2 + MAX_PER_LEVEL - 1
        );
        assert!(
            svg.contains("data-step=\"m700\""),
            "the failed step is drawn"
        );
        assert!(svg.contains("+963 more"), "{}", &svg[..200]);
        assert!(svg.contains("962 complete, 1 pending") || svg.contains("963 complete"));
        // Edges through buses: root down to its wrapped level's bus, one
        // edge per column, and the level's lower bus to join.
        assert!(
            svg.matches("<path").count() < 20,
            "{}",
            svg.matches("<path").count()
        );
        assert_eq!(svg.matches("class=\"edge bus\"").count(), 2);
    }

    #[test]
    fn long_chains_band_quiet_levels() {
        let nodes: Vec<Node> = (0..1000)
            .map(|i| {
                let st = if i == 500 {
                    StepState::Error
                } else if i < 500 {
                    StepState::Complete
                } else {
                    StepState::Pending
                };
                node(
                    &format!("s{i}"),
                    i,
                    st,
                    if i == 0 { vec![] } else { vec![i - 1] },
                )
            })
            .collect();
        let svg = render(&nodes, "chain");
        assert!(svg.contains("data-step=\"s500\""));
        assert!(
            svg.contains("levels 10–499: 490 steps"),
            "band before the failure"
        );
        assert!(svg.contains("levels 501–989: 489 steps"), "band after it");
        assert!(svg.matches("class=\"node").count() < 30);
    }

    #[test]
    fn names_are_escaped() {
        let nodes = vec![node("<script>x</script>", 0, StepState::Error, vec![])];
        let svg = render(&nodes, "<b>");
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;"));
    }
}
