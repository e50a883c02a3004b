//! A small layered layout and its SVG: no Graphviz on the machines charmer runs on.
//!
//! Rows come from a breadth-first walk over relations (ignoring their direction) that starts
//! at the "outside the cluster" node, so traffic reads top-down from the entry point; parts
//! not reachable from outside start at the applications no one requires. A breadth-first
//! walk puts the two ends of every relation in the same or neighbouring rows, so no arrow
//! crosses a row of boxes. Within a row, boxes are ordered by the mean position of their
//! neighbours (a few barycentre sweeps), ties by name. Text widths are estimated for a
//! monospace font, which the SVG asks for.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write;

use super::{Diagram, OUTSIDE};
use crate::render::Manifests;
use crate::resolve::Model;

const CHAR_W: f64 = 7.2;
const LABEL_CHAR_W: f64 = 6.6;
const LINE_H: f64 = 16.0;
const PAD_X: f64 = 12.0;
const PAD_Y: f64 = 10.0;
const H_GAP: f64 = 48.0;
const V_GAP: f64 = 84.0;
const MARGIN: f64 = 24.0;
const TITLE_H: f64 = 34.0;
const LEGEND: [&str; 2] = [
    "arrows: requiring end → providing end, labelled with the interface and its ports",
    "dashed: reachable from outside the cluster",
];
const LEGEND_LINE_H: f64 = 15.0;
const FONT: &str = "DejaVu Sans Mono, Menlo, Consolas, monospace";

/// A box: an application, or the outside node.
struct Node {
    lines: Vec<String>,
    outside: bool,
    exposed: bool,
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

/// An arrow between two boxes, with every relation it stands for.
struct Arrow {
    from: usize,
    to: usize,
    label: String,
    title: String,
    dashed: bool,
}

/// The bundle as a self-contained SVG picture (see the module docs for the layout);
/// `manifests` as for [`super::dot`].
pub fn svg(model: &Model, manifests: Option<&Manifests>) -> String {
    let d = Diagram::new(model, manifests);
    let (mut nodes, arrows) = boxes_and_arrows(&d);
    let rows = order_rows(&nodes, &arrows);
    let beside = neighbours(&rows, &arrows);
    let (width, height) = place(&mut nodes, &rows, &beside, &d.title);
    draw(&d.title, &nodes, &arrows, &beside, width, height)
}

/// Boxes (the outside node first, when there is one, then applications by name) and
/// arrows, relations between the same two applications merged into one.
fn boxes_and_arrows(d: &Diagram) -> (Vec<Node>, Vec<Arrow>) {
    let size = |lines: &[String]| {
        let chars = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0) as f64;
        (chars * CHAR_W + 2.0 * PAD_X, lines.len() as f64 * LINE_H + 2.0 * PAD_Y)
    };
    let mut nodes = Vec::new();
    let mut index = BTreeMap::new();
    let mut arrows = Vec::new();
    if d.apps.values().any(|a| a.external.is_some()) {
        let lines = vec![OUTSIDE.to_string()];
        let (w, h) = size(&lines);
        nodes.push(Node { lines, outside: true, exposed: false, x: 0.0, y: 0.0, w, h });
    }
    for (name, app) in &d.apps {
        let (w, h) = size(&app.lines);
        index.insert(name.as_str(), nodes.len());
        nodes.push(Node {
            lines: app.lines.clone(),
            outside: false,
            exposed: app.external.is_some(),
            x: 0.0,
            y: 0.0,
            w,
            h,
        });
        if let Some(external) = &app.external {
            let to = nodes.len() - 1;
            arrows.push(Arrow {
                from: 0,
                to,
                label: external.clone(),
                title: format!("reachable from outside the cluster: {external}"),
                dashed: true,
            });
        }
    }
    // (from, to) → the interfaces and the details of every relation between them.
    let mut merged: BTreeMap<(usize, usize), [Vec<&str>; 2]> = BTreeMap::new();
    for e in &d.edges {
        if let (Some(&from), Some(&to)) = (index.get(e.from.as_str()), index.get(e.to.as_str())) {
            let [labels, titles] = merged.entry((from, to)).or_default();
            if !labels.contains(&e.label.as_str()) {
                labels.push(&e.label);
            }
            titles.push(&e.detail);
        }
    }
    for ((from, to), [labels, titles]) in merged {
        arrows.push(Arrow {
            from,
            to,
            label: labels.join(", "),
            title: titles.join("\n"),
            dashed: false,
        });
    }
    (nodes, arrows)
}

/// Rows of box indexes, top first, each ordered left to right.
fn order_rows(nodes: &[Node], arrows: &[Arrow]) -> Vec<Vec<usize>> {
    let n = nodes.len();
    let mut adjacent = vec![BTreeSet::new(); n];
    let mut required = vec![false; n];
    for a in arrows {
        adjacent[a.from].insert(a.to);
        adjacent[a.to].insert(a.from);
        required[a.to] = true;
    }
    let mut row: Vec<Option<usize>> = vec![None; n];
    let mut first_row = 0;
    if nodes.first().is_some_and(|node| node.outside) {
        walk(&[0], 0, &adjacent, &mut row);
        first_row = 1;
    }
    for start in 0..n {
        if row[start].is_some() {
            continue;
        }
        let component = reachable(start, &adjacent);
        let mut roots: Vec<usize> = component.iter().copied().filter(|&i| !required[i]).collect();
        if roots.is_empty() {
            roots.push(start);
        }
        walk(&roots, first_row, &adjacent, &mut row);
    }
    let count = row.iter().flatten().max().map_or(0, |m| m + 1);
    let mut rows = vec![Vec::new(); count];
    for (i, r) in row.iter().enumerate() {
        if let Some(r) = r {
            rows[*r].push(i);
        }
    }
    // Barycentre sweeps: down, up, down.
    let sweeps: Vec<(usize, usize)> = (1..count)
        .map(|r| (r, r - 1))
        .chain((0..count.saturating_sub(1)).rev().map(|r| (r, r + 1)))
        .chain((1..count).map(|r| (r, r - 1)))
        .collect();
    for (r, by) in sweeps {
        let position: BTreeMap<usize, f64> =
            rows[by].iter().enumerate().map(|(p, &i)| (i, p as f64)).collect();
        let keyed: Vec<(f64, usize)> = rows[r]
            .iter()
            .enumerate()
            .map(|(p, &i)| {
                let near: Vec<f64> =
                    adjacent[i].iter().filter_map(|j| position.get(j).copied()).collect();
                let key = if near.is_empty() {
                    p as f64
                } else {
                    near.iter().sum::<f64>() / near.len() as f64
                };
                (key, i)
            })
            .collect();
        let mut keyed = keyed;
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
        rows[r] = keyed.into_iter().map(|(_, i)| i).collect();
    }
    rows
}

/// Breadth-first walk from `roots` (in row `first`), giving unvisited boxes their row.
fn walk(roots: &[usize], first: usize, adjacent: &[BTreeSet<usize>], row: &mut [Option<usize>]) {
    let mut queue = VecDeque::new();
    for &r in roots {
        row[r] = Some(first);
        queue.push_back(r);
    }
    while let Some(i) = queue.pop_front() {
        let next = row[i].map_or(first, |r| r + 1);
        for &j in &adjacent[i] {
            if row[j].is_none() {
                row[j] = Some(next);
                queue.push_back(j);
            }
        }
    }
}

/// Every box connected to `start`.
fn reachable(start: usize, adjacent: &[BTreeSet<usize>]) -> BTreeSet<usize> {
    let mut seen = BTreeSet::from([start]);
    let mut stack = vec![start];
    while let Some(i) = stack.pop() {
        for &j in &adjacent[i] {
            if seen.insert(j) {
                stack.push(j);
            }
        }
    }
    seen
}

/// Width of an arrow's label box.
fn label_width(arrow: &Arrow) -> f64 {
    arrow.label.chars().count() as f64 * LABEL_CHAR_W + 8.0
}

/// Boxes side by side in a row with an arrow between them, (left, right) → the gap they
/// need for the arrow and its label, drawn straight across.
fn neighbours(rows: &[Vec<usize>], arrows: &[Arrow]) -> BTreeMap<(usize, usize), f64> {
    let mut beside = BTreeMap::new();
    for pair in rows.iter().flat_map(|row| row.windows(2)) {
        let (left, right) = (pair[0], pair[1]);
        let between = arrows
            .iter()
            .filter(|a| (a.from, a.to) == (left, right) || (a.from, a.to) == (right, left));
        if let Some(widest) = between.map(label_width).reduce(f64::max) {
            beside.insert((left, right), (widest + 40.0).max(H_GAP));
        }
    }
    beside
}

/// Gives every box its position, rows centred; returns the picture's size.
fn place(
    nodes: &mut [Node],
    rows: &[Vec<usize>],
    beside: &BTreeMap<(usize, usize), f64>,
    title: &str,
) -> (f64, f64) {
    let gap = |pair: &[usize]| beside.get(&(pair[0], pair[1])).copied().unwrap_or(H_GAP);
    let row_width = |nodes: &[Node], row: &Vec<usize>| {
        row.iter().map(|&i| nodes[i].w).sum::<f64>() + row.windows(2).map(gap).sum::<f64>()
    };
    let text_width = LEGEND
        .iter()
        .map(|l| l.chars().count() as f64 * LABEL_CHAR_W)
        .fold(title.chars().count() as f64 * CHAR_W * 1.2, f64::max);
    let widest = rows.iter().map(|row| row_width(nodes, row)).fold(text_width, f64::max);
    let mut y = MARGIN + TITLE_H;
    for row in rows {
        let height = row.iter().map(|&i| nodes[i].h).fold(0.0, f64::max);
        let mut x = MARGIN + (widest - row_width(nodes, row)) / 2.0;
        for (p, &i) in row.iter().enumerate() {
            nodes[i].x = x;
            nodes[i].y = y + (height - nodes[i].h) / 2.0;
            x += nodes[i].w + row.get(p + 1).map_or(0.0, |&next| gap(&[i, next]));
        }
        y += height + V_GAP;
    }
    let height = if rows.is_empty() { y } else { y - V_GAP };
    (widest + 2.0 * MARGIN, height + 8.0 + LEGEND.len() as f64 * LEGEND_LINE_H + MARGIN)
}

/// The side of a box an arrow leaves or enters by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Side {
    Top,
    Bottom,
    Left,
    Right,
}

/// One end of an arrow on a side of a box: the other box's centre (x along the top and
/// bottom, y along the left and right), the arrow, and whether the arrow starts here.
type End = (f64, usize, bool);

/// Where an arrow starts and ends, and the side of its box it leaves by.
type Anchors = ((f64, f64), (f64, f64), Side);

/// Where each arrow leaves and enters its boxes, and the side it leaves by: the bottom or
/// top facing the other row; facing sides for neighbours in a row; the tops otherwise (an
/// arc over the row). Ends sharing a side are spread along it in the order of the other
/// ends, so arrows do not start at one point.
fn anchors(
    nodes: &[Node],
    arrows: &[Arrow],
    beside: &BTreeMap<(usize, usize), f64>,
) -> Vec<Anchors> {
    let mut sides: BTreeMap<(usize, Side), Vec<End>> = BTreeMap::new();
    let mut leaves = Vec::with_capacity(arrows.len());
    for (k, a) in arrows.iter().enumerate() {
        let (f, t) = (&nodes[a.from], &nodes[a.to]);
        let (from_side, to_side) = if f.y + f.h <= t.y {
            (Side::Bottom, Side::Top)
        } else if t.y + t.h <= f.y {
            (Side::Top, Side::Bottom)
        } else if beside.contains_key(&(a.from, a.to)) {
            (Side::Right, Side::Left)
        } else if beside.contains_key(&(a.to, a.from)) {
            (Side::Left, Side::Right)
        } else {
            (Side::Top, Side::Top)
        };
        let key = |side: Side, other: &Node| {
            if matches!(side, Side::Top | Side::Bottom) {
                other.x + other.w / 2.0
            } else {
                other.y + other.h / 2.0
            }
        };
        sides.entry((a.from, from_side)).or_default().push((key(from_side, t), k, true));
        sides.entry((a.to, to_side)).or_default().push((key(to_side, f), k, false));
        leaves.push(from_side);
    }
    let mut points = vec![((0.0, 0.0), (0.0, 0.0)); arrows.len()];
    for ((i, side), mut ends) in sides {
        ends.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let node = &nodes[i];
        let count = ends.len() as f64;
        for (slot, (_, k, start)) in ends.into_iter().enumerate() {
            let along = (slot as f64 + 1.0) / (count + 1.0);
            let point = match side {
                Side::Top => (node.x + node.w * along, node.y),
                Side::Bottom => (node.x + node.w * along, node.y + node.h),
                Side::Left => (node.x, node.y + node.h * along),
                Side::Right => (node.x + node.w, node.y + node.h * along),
            };
            if start {
                points[k].0 = point;
            } else {
                points[k].1 = point;
            }
        }
    }
    points.into_iter().zip(leaves).map(|((start, end), side)| (start, end, side)).collect()
}

fn draw(
    title: &str,
    nodes: &[Node],
    arrows: &[Arrow],
    beside: &BTreeMap<(usize, usize), f64>,
    width: f64,
    height: f64,
) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"{FONT}\" font-size=\"12\">"
    );
    let _ = writeln!(out, "<title>{}</title>", xml(title));
    out.push_str(
        "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"8\" markerHeight=\"8\" orient=\"auto-start-reverse\">\
         <path d=\"M0,0 L10,5 L0,10 z\" fill=\"#34495e\"/></marker></defs>\n",
    );
    let _ = writeln!(out, "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>");
    let _ = writeln!(out, "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"14\" font-weight=\"bold\" fill=\"#2c3e50\">{}</text>", MARGIN, MARGIN + 12.0, xml(title));
    let curves: Vec<Curve> = anchors(nodes, arrows, beside)
        .into_iter()
        .map(|(start, end, side)| Curve::between(start, end, side))
        .collect();
    for (a, curve) in arrows.iter().zip(&curves) {
        let dash = if a.dashed { " stroke-dasharray=\"6,4\"" } else { "" };
        let [p0, c1, c2, p3] = curve.0;
        let _ = writeln!(out, "<g class=\"relation\"><title>{}</title>", xml(&a.title));
        let _ = writeln!(
            out,
            "<path d=\"M{:.1},{:.1} C{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}\" fill=\"none\" stroke=\"#34495e\" stroke-width=\"1.5\"{dash} marker-end=\"url(#arrow)\"/></g>",
            p0.0, p0.1, c1.0, c1.1, c2.0, c2.1, p3.0, p3.1
        );
    }
    // Labels after every arrow, so no arrow is drawn over a label; each at the first point
    // along its arrow where it does not cover a label already placed.
    let mut placed: Vec<(f64, f64, f64)> = Vec::new();
    for (a, curve) in arrows.iter().zip(&curves) {
        let w = label_width(a);
        let overlaps = |(x, y): (f64, f64)| {
            placed
                .iter()
                .any(|&(px, py, pw)| (x - px).abs() * 2.0 < w + pw && (y - py).abs() < 17.0)
        };
        let candidates = [0.5, 0.35, 0.65, 0.2, 0.8].map(|t| curve.at(t));
        let (x, y) = candidates.iter().copied().find(|&p| !overlaps(p)).unwrap_or(candidates[0]);
        placed.push((x, y, w));
        let _ = writeln!(
            out,
            "<g class=\"label\"><rect x=\"{:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"16\" rx=\"3\" fill=\"#ffffff\" fill-opacity=\"0.9\"/>",
            x - w / 2.0,
            y - 8.0
        );
        let _ = writeln!(out, "<text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\" fill=\"#2c3e50\">{}</text></g>", y + 4.0, xml(&a.label));
    }
    for node in nodes {
        let (fill, stroke, dash, rx) = match (node.outside, node.exposed) {
            (true, _) => ("#fdfefe", "#7f8c8d", " stroke-dasharray=\"6,4\"", node.h / 2.0),
            (false, true) => ("#fef5e7", "#d35400", "", 6.0),
            (false, false) => ("#eef3f8", "#34495e", "", 6.0),
        };
        let _ =
            writeln!(out, "<g class=\"{}\">", if node.outside { "outside" } else { "application" });
        let _ = writeln!(
            out,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" rx=\"{rx:.1}\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"1.5\"{dash}/>",
            node.x, node.y, node.w, node.h
        );
        for (k, text) in node.lines.iter().enumerate() {
            let weight = if k == 0 && !node.outside { " font-weight=\"bold\"" } else { "" };
            let y = node.y + PAD_Y + LINE_H * (k as f64 + 1.0) - 4.0;
            let _ = writeln!(out, "<text x=\"{:.1}\" y=\"{y:.1}\" text-anchor=\"middle\"{weight} fill=\"#2c3e50\">{}</text>", node.x + node.w / 2.0, xml(text));
        }
        out.push_str("</g>\n");
    }
    for (k, legend) in LEGEND.iter().enumerate() {
        let y = height - MARGIN - LEGEND_LINE_H * (LEGEND.len() - 1 - k) as f64;
        let _ = writeln!(
            out,
            "<text x=\"{MARGIN:.1}\" y=\"{y:.1}\" font-size=\"11\" fill=\"#7f8c8d\">{}</text>",
            xml(legend)
        );
    }
    out.push_str("</svg>\n");
    out
}

/// A cubic Bézier arrow: start, two control points, end.
struct Curve([(f64, f64); 4]);

impl Curve {
    /// A straight arrow between facing sides, an arc over the row between two tops, or an
    /// S-curve between rows.
    fn between((x1, y1): (f64, f64), (x2, y2): (f64, f64), leaves: Side) -> Curve {
        if matches!(leaves, Side::Left | Side::Right) {
            let third = ((x2 - x1) / 3.0, (y2 - y1) / 3.0);
            Curve([(x1, y1), (x1 + third.0, y1 + third.1), (x2 - third.0, y2 - third.1), (x2, y2)])
        } else if (y1 - y2).abs() < f64::EPSILON {
            let lift = 48.0 + (x2 - x1).abs() / 6.0;
            Curve([(x1, y1), (x1, y1 - lift), (x2, y2 - lift), (x2, y2)])
        } else {
            let dy = (y2 - y1) / 2.0;
            Curve([(x1, y1), (x1, y1 + dy), (x2, y2 - dy), (x2, y2)])
        }
    }

    /// The point at `t` in 0..=1.
    fn at(&self, t: f64) -> (f64, f64) {
        let u = 1.0 - t;
        let weights = [u * u * u, 3.0 * u * u * t, 3.0 * u * t * t, t * t * t];
        self.0.iter().zip(weights).fold((0.0, 0.0), |(x, y), (p, w)| (x + p.0 * w, y + p.1 * w))
    }
}

/// Text escaped for XML content and attribute values.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::appstore;
    use super::*;

    fn text_y(svg: &str, text: &str) -> f64 {
        let at = svg
            .find(&format!("font-weight=\"bold\" fill=\"#2c3e50\">{text}</text>"))
            .unwrap_or_else(|| panic!("{text} not drawn"));
        let start = svg[..at].rfind(" y=\"").unwrap() + 4;
        svg[start..].split('"').next().unwrap().parse().unwrap()
    }

    #[test]
    fn svg_reads_top_down_from_the_entry_point() {
        let picture = svg(&appstore("NodePort"), None);
        assert!(picture.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(picture.ends_with("</svg>\n"));
        let rows: Vec<f64> = ["istio-gateway", "frontend", "backend", "mongodb"]
            .iter()
            .map(|a| text_y(&picture, a))
            .collect();
        assert!(rows.windows(2).all(|w| w[0] < w[1]), "{rows:?}");
        assert!(picture.contains(">outside the cluster</text>"));
        assert!(picture.contains(">Service NodePort</text>"));
        assert!(picture.contains(">mongodb_client</text>"));
        assert!(
            picture.contains("<title>backend:database → mongodb:database (mongodb_client)</title>")
        );
        assert!(
            picture.contains(">charm backend 2.3.1</text>") && picture.contains(">scale 3</text>")
        );
        assert_eq!(picture, svg(&appstore("NodePort"), None), "deterministic");
    }

    #[test]
    fn without_exposure_roots_are_the_apps_no_one_requires() {
        let picture = svg(&appstore("ClusterIP"), None);
        assert!(!picture.contains(">outside the cluster</text>"));
        // Nothing requires the gateway, so it is still the top row.
        assert!(text_y(&picture, "istio-gateway") < text_y(&picture, "frontend"));
        assert!(text_y(&picture, "backend") < text_y(&picture, "mongodb"));
    }

    #[test]
    fn every_relation_spans_at_most_one_row() {
        let model = appstore("LoadBalancer");
        let d = Diagram::new(&model, None);
        let (nodes, arrows) = boxes_and_arrows(&d);
        let rows = order_rows(&nodes, &arrows);
        let row_of = |i: usize| rows.iter().position(|r| r.contains(&i)).unwrap();
        for a in &arrows {
            assert!(row_of(a.from).abs_diff(row_of(a.to)) <= 1);
        }
        assert_eq!(rows.iter().map(Vec::len).sum::<usize>(), nodes.len());
    }

    #[test]
    fn related_neighbours_in_a_row_get_a_straight_arrow() {
        // The gateway routes to backend too: frontend and backend share a row.
        let mut model = appstore("LoadBalancer");
        model.relations.push(crate::resolve::Relation {
            a: ("backend".into(), "api".into()),
            b: ("istio-gateway".into(), "ingress".into()),
            interface: "http-api".into(),
        });
        model.relations.sort();
        let picture = svg(&model, None);
        assert_eq!(text_y(&picture, "frontend"), text_y(&picture, "backend"));
        let title = "<title>frontend:api → backend:api (http-api)</title>\n<path d=\"M";
        let path = &picture[picture.find(title).unwrap() + title.len()..];
        let path = &path[..path.find('"').unwrap()];
        let ys: Vec<&str> = path
            .split([' ', 'C'])
            .filter(|p| !p.is_empty())
            .map(|p| p.split(',').nth(1).unwrap())
            .collect();
        assert!(ys.windows(2).all(|w| w[0] == w[1]), "{path}");
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(xml("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
    }
}
