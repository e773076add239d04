//! Execution order for files that list tensors by name.
//!
//! Owns: deciding whether a name-only file's tensor order says anything, and if not, the order in
//! which its primitive layers run. A torch state dict lists tensors in module registration order,
//! and most writers keep their insertion order: that order is kept. But the `safetensors`
//! library writes tensors sorted by name, where `layer.10` comes before `layer.2` and Silero VAD's
//! `decoder` before its `encoder`. When a file's order is exactly the sorted order of its names
//! it carries no information, and layers are ordered instead:
//!
//! 1. names compare segment by segment (split on `.` and `/`), numbers by value (`2 < 10`);
//! 2. at each level of the module tree, sibling groups (`encoder`, `decoder`, `stft`) are chained by
//!    width: a group follows the group whose last layer writes as many neurons as its first
//!    layer reads. Each chain starts at the first group (in name order) that no other group feeds;
//!    among several candidates the name order decides, so a tree the widths cannot order keeps
//!    its (numeric-aware) name order.
//!
//! The chosen order is reported as a note (`gmnscope inspect` prints it).

use std::cmp::Ordering;

use super::primitives::Prim;

/// The segments of a module path (`a.b/c` -> `a`, `b`, `c`).
fn segments(name: &str) -> impl Iterator<Item = &str> {
    name.split(['.', '/']).filter(|s| !s.is_empty())
}

/// Numeric-aware comparison of two segments: numbers by value, otherwise bytewise.
fn compare_segment(a: &str, b: &str) -> Ordering {
    let number = |s: &str| {
        (!s.is_empty() && s.len() <= 18 && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    match (number(a), number(b)) {
        (Some(x), Some(y)) => x.cmp(&y).then_with(|| a.cmp(b)),
        _ => a.cmp(b),
    }
}

/// Numeric-aware comparison of two module paths.
pub(super) fn compare_names(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (segments(a), segments(b));
    loop {
        match (x.next(), y.next()) {
            (Some(p), Some(q)) => match compare_segment(p, q) {
                Ordering::Equal => continue,
                other => return other,
            },
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
        }
    }
}

/// True when the tensors (`(dtype, name)` in file order) are sorted bytewise by name within
/// runs of one dtype, each dtype one run: the order of a writer that sorts (the `safetensors`
/// library sorts by alignment, then name), which says nothing about execution. Two names or
/// fewer say nothing either way.
pub(super) fn is_sorted_by_name<'a, K: PartialEq>(tensors: impl Iterator<Item = (K, &'a str)>) -> bool {
    let mut previous: Option<(K, &str)> = None;
    let mut finished: Vec<K> = Vec::new();
    let mut count = 0usize;
    for (key, name) in tensors {
        match previous.take() {
            Some((k, p)) if k == key && p > name => return false,
            Some((k, _)) if k == key => {}
            Some((k, _)) => {
                if finished.contains(&key) {
                    return false;
                }
                finished.push(k);
            }
            None => {}
        }
        previous = Some((key, name));
        count += 1;
    }
    count > 2
}

/// Puts `prims` into execution order (rules in the module docs) and renumbers their `order`.
/// Returns the order of the top-level groups it chose, for the note.
pub(super) fn arrange(prims: &mut Vec<Prim>) -> Vec<String> {
    prims.sort_by(|a, b| compare_names(&a.name, &b.name));
    let taken = std::mem::take(prims);
    let (arranged, top) = arrange_level(taken, 0);
    *prims = arranged;
    for (rank, p) in prims.iter_mut().enumerate() {
        p.order = rank;
    }
    top
}

/// Orders prims (sorted by name, all sharing their first `depth` segments); returns them and the
/// group names at the first level that has several groups.
fn arrange_level(prims: Vec<Prim>, depth: usize) -> (Vec<Prim>, Vec<String>) {
    // Module trees are shallow; the cap keeps a hostile name with thousands of segments cheap.
    if prims.len() <= 1 || depth > 32 {
        return (prims, Vec::new());
    }
    let mut groups: Vec<(String, Vec<Prim>)> = Vec::new();
    for p in prims {
        let key = segments(&p.name).nth(depth).unwrap_or_default().to_string();
        match groups.last_mut() {
            Some((k, members)) if *k == key => members.push(p),
            _ => groups.push((key, vec![p])),
        }
    }
    if groups.len() == 1 {
        let Some((key, members)) = groups.pop() else { return (Vec::new(), Vec::new()) };
        if key.is_empty() {
            return (members, Vec::new());
        }
        return arrange_level(members, depth + 1);
    }
    let groups: Vec<(String, Vec<Prim>)> =
        groups.into_iter().map(|(k, members)| (k, arrange_level(members, depth + 1).0)).collect();
    let ends: Vec<(Option<usize>, Option<usize>)> = groups
        .iter()
        .map(|(_, m)| (m.first().and_then(|p| p.kind.in_width()), m.last().map(|p| p.kind.out_width())))
        .collect();
    let feeds = |a: usize, b: usize| a != b && ends[a].1.is_some() && ends[a].1 == ends[b].0;
    let n = groups.len();
    let mut placed = vec![false; n];
    let mut chosen: Vec<usize> = Vec::with_capacity(n);
    while chosen.len() < n {
        let open: Vec<usize> = (0..n).filter(|&i| !placed[i]).collect();
        let start = open.iter().copied().find(|&i| !open.iter().any(|&j| feeds(j, i))).or(open.first().copied());
        let Some(mut current) = start else { break };
        loop {
            placed[current] = true;
            chosen.push(current);
            match (0..n).find(|&j| !placed[j] && feeds(current, j)) {
                Some(next) => current = next,
                None => break,
            }
        }
    }
    let names: Vec<String> = chosen.iter().filter_map(|&i| groups.get(i).map(|(k, _)| k.clone())).collect();
    let mut slots: Vec<Option<Vec<Prim>>> = groups.into_iter().map(|(_, m)| Some(m)).collect();
    let mut out = Vec::new();
    for i in chosen {
        if let Some(members) = slots.get_mut(i).and_then(Option::take) {
            out.extend(members);
        }
    }
    (out, names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_compare_by_value() {
        let mut names = vec!["layer.10.fc", "layer.2.fc", "layer.1.fc", "head", "layer.2"];
        names.sort_by(|a, b| compare_names(a, b));
        assert_eq!(names, ["head", "layer.1.fc", "layer.2", "layer.2.fc", "layer.10.fc"]);
        assert!(is_sorted_by_name(["a.bias", "a.weight", "b.bias"].map(|n| (0, n)).into_iter()));
        assert!(!is_sorted_by_name(["a.weight", "a.bias", "b.bias"].map(|n| (0, n)).into_iter()));
        // The safetensors library: runs of one dtype, each sorted.
        assert!(is_sorted_by_name([(1, "a"), (1, "c"), (0, "b"), (0, "d")].into_iter()));
        assert!(!is_sorted_by_name([(1, "a"), (0, "b"), (1, "c")].into_iter()));
    }
}
