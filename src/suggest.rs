//! "Did you mean …?" for procedure names and configuration keys.

/// The closest candidate by edit distance, if it is close enough to be a likely typo.
pub fn closest<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    ranked(wanted, candidates).into_iter().next()
}

/// Candidates that look like typos of `wanted`, best first (at most three).
pub fn ranked<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut scored: Vec<(f64, &str)> = candidates
        .into_iter()
        .map(|c| {
            let contains = c.contains(wanted) || wanted.contains(c);
            let score = strsim::jaro_winkler(wanted, c) + if contains { 0.1 } else { 0.0 };
            (score, c)
        })
        .filter(|(score, _)| *score >= 0.8)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(3).map(|(_, c)| c).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_typos_not_strangers() {
        let names = ["check-data", "check-data-fix", "check-jobs", "db-stats"];
        assert_eq!(ranked("check-dat", names)[0], "check-data");
        assert_eq!(closest("chek-jobs", names), Some("check-jobs"));
        assert_eq!(closest("zzz", names), None);
    }
}
