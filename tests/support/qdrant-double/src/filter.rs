//! Qdrant filters over payloads: the part opsh uses.
//!
//! A filter is checked once when the request arrives (unknown or unsupported conditions are
//! refused before anything is read or deleted) and then evaluated point by point without
//! allocation. Supported: `must` / `should` / `must_not` / `min_should`, nested filters,
//! `has_id`, field conditions with `match` on a keyword, integer or boolean (one value or any of
//! several), `range` on numbers, `is_empty` and `is_null`. Payload keys may be dotted paths;
//! arrays match when any element matches, as in Qdrant.

use std::collections::{HashMap, HashSet};

use qdrant_client::qdrant::condition::ConditionOneOf;
use qdrant_client::qdrant::r#match::MatchValue;
use qdrant_client::qdrant::value::Kind;
use qdrant_client::qdrant::{Condition, FieldCondition, Filter, Value};
use tonic::Status;

use crate::errors::{unimplemented, wrong_input};
use crate::ids::PointKey;

/// A checked filter, ready to evaluate.
#[derive(Debug, Default)]
pub struct CompiledFilter {
    must: Vec<Cond>,
    should: Vec<Cond>,
    must_not: Vec<Cond>,
    min_should: Option<(Vec<Cond>, usize)>,
}

#[derive(Debug)]
enum Cond {
    Match(Vec<String>, MatchKind),
    Range(Vec<String>, Bounds),
    IsEmpty(Vec<String>),
    IsNull(Vec<String>),
    HasId(HashSet<PointKey>),
    Filter(Box<CompiledFilter>),
    /// A field condition with several checks set: Qdrant passes it when any of them passes.
    Any(Vec<Cond>),
}

#[derive(Debug)]
enum MatchKind {
    Keyword(String),
    Integer(i64),
    Bool(bool),
    Keywords(HashSet<String>),
    Integers(HashSet<i64>),
}

#[derive(Debug, Default)]
struct Bounds {
    lt: Option<f64>,
    gt: Option<f64>,
    gte: Option<f64>,
    lte: Option<f64>,
}

impl CompiledFilter {
    /// Checks a request's filter, refusing what the double does not implement.
    pub fn compile(filter: &Filter) -> Result<Self, Status> {
        let all = |conds: &[Condition]| -> Result<Vec<Cond>, Status> {
            conds.iter().map(compile_condition).collect()
        };
        Ok(CompiledFilter {
            must: all(&filter.must)?,
            should: all(&filter.should)?,
            must_not: all(&filter.must_not)?,
            min_should: match &filter.min_should {
                Some(min) => Some((all(&min.conditions)?, min.min_count as usize)),
                None => None,
            },
        })
    }

    /// Whether a point passes the filter.
    pub fn matches(&self, id: &PointKey, payload: Option<&HashMap<String, Value>>) -> bool {
        self.must.iter().all(|c| c.check(id, payload))
            && (self.should.is_empty() || self.should.iter().any(|c| c.check(id, payload)))
            && !self.must_not.iter().any(|c| c.check(id, payload))
            && self.min_should.as_ref().is_none_or(|(conds, min)| {
                conds.iter().filter(|c| c.check(id, payload)).count() >= *min
            })
    }
}

fn compile_condition(condition: &Condition) -> Result<Cond, Status> {
    match &condition.condition_one_of {
        Some(ConditionOneOf::Field(field)) => compile_field(field),
        Some(ConditionOneOf::HasId(has_id)) => Ok(Cond::HasId(
            has_id
                .has_id
                .iter()
                .map(PointKey::from_grpc)
                .collect::<Result<_, _>>()?,
        )),
        Some(ConditionOneOf::Filter(filter)) => {
            Ok(Cond::Filter(Box::new(CompiledFilter::compile(filter)?)))
        }
        Some(ConditionOneOf::IsEmpty(c)) => Ok(Cond::IsEmpty(path(&c.key))),
        Some(ConditionOneOf::IsNull(c)) => Ok(Cond::IsNull(path(&c.key))),
        Some(ConditionOneOf::Nested(_)) => Err(unimplemented("the nested filter condition")),
        Some(ConditionOneOf::HasVector(_)) => Err(unimplemented("the has_vector condition")),
        Some(ConditionOneOf::Slice(_)) => Err(unimplemented("the slice condition")),
        None => Err(Status::invalid_argument("Malformed condition type")),
    }
}

fn compile_field(field: &FieldCondition) -> Result<Cond, Status> {
    let key = path(&field.key);
    let mut checks = Vec::new();
    if let Some(m) = &field.r#match {
        let kind = match &m.match_value {
            Some(MatchValue::Keyword(s)) => MatchKind::Keyword(s.clone()),
            Some(MatchValue::Integer(i)) => MatchKind::Integer(*i),
            Some(MatchValue::Boolean(b)) => MatchKind::Bool(*b),
            Some(MatchValue::Keywords(list)) => {
                MatchKind::Keywords(list.strings.iter().cloned().collect())
            }
            Some(MatchValue::Integers(list)) => {
                MatchKind::Integers(list.integers.iter().copied().collect())
            }
            Some(other) => return Err(unimplemented(&format!("the match {}", match_name(other)))),
            None => return Err(Status::invalid_argument("Malformed match condition")),
        };
        checks.push(Cond::Match(key.clone(), kind));
    }
    if let Some(r) = &field.range {
        checks.push(Cond::Range(
            key.clone(),
            Bounds {
                lt: r.lt,
                gt: r.gt,
                gte: r.gte,
                lte: r.lte,
            },
        ));
    }
    if field.is_empty == Some(true) {
        checks.push(Cond::IsEmpty(key.clone()));
    }
    if field.is_null == Some(true) {
        checks.push(Cond::IsNull(key.clone()));
    }
    if field.geo_bounding_box.is_some()
        || field.geo_radius.is_some()
        || field.geo_polygon.is_some()
        || field.values_count.is_some()
        || field.datetime_range.is_some()
    {
        return Err(unimplemented(
            "geo, values_count and datetime_range field conditions",
        ));
    }
    match checks.len() {
        0 => Err(wrong_input(format!(
            "At least one field condition must be specified for the key `{}`",
            field.key
        ))),
        1 => Ok(checks.pop().expect("one check")),
        _ => Ok(Cond::Any(checks)),
    }
}

fn match_name(value: &MatchValue) -> &'static str {
    match value {
        MatchValue::Text(_) => "text (full-text)",
        MatchValue::Phrase(_) => "phrase",
        MatchValue::TextAny(_) => "text_any",
        MatchValue::Prefix(_) => "prefix",
        MatchValue::Substring(_) => "substring",
        MatchValue::ExceptKeywords(_) | MatchValue::ExceptIntegers(_) => "except",
        _ => "condition",
    }
}

/// A payload key split into its path segments; `[]` marks (which Qdrant also accepts) are
/// dropped since arrays are looked through anyway.
fn path(key: &str) -> Vec<String> {
    key.split('.')
        .map(|segment| segment.trim_end_matches("[]").to_string())
        .collect()
}

impl Cond {
    fn check(&self, id: &PointKey, payload: Option<&HashMap<String, Value>>) -> bool {
        match self {
            Cond::HasId(ids) => ids.contains(id),
            Cond::Filter(filter) => filter.matches(id, payload),
            Cond::Any(conds) => conds.iter().any(|c| c.check(id, payload)),
            Cond::Match(key, kind) => values_at(payload, key).iter().any(|v| kind.matches(v)),
            Cond::Range(key, bounds) => values_at(payload, key).iter().any(|v| {
                let n = match v.kind {
                    Some(Kind::IntegerValue(i)) => i as f64,
                    Some(Kind::DoubleValue(d)) => d,
                    _ => return false,
                };
                bounds.lt.is_none_or(|b| n < b)
                    && bounds.gt.is_none_or(|b| n > b)
                    && bounds.lte.is_none_or(|b| n <= b)
                    && bounds.gte.is_none_or(|b| n >= b)
            }),
            Cond::IsEmpty(key) => values_at(payload, key).iter().all(|v| is_null(v)),
            Cond::IsNull(key) => values_at(payload, key).iter().any(|v| is_null(v)),
        }
    }
}

impl MatchKind {
    fn matches(&self, value: &Value) -> bool {
        match (self, &value.kind) {
            (MatchKind::Keyword(want), Some(Kind::StringValue(s))) => want == s,
            (MatchKind::Integer(want), Some(Kind::IntegerValue(i))) => want == i,
            (MatchKind::Bool(want), Some(Kind::BoolValue(b))) => want == b,
            (MatchKind::Keywords(set), Some(Kind::StringValue(s))) => set.contains(s),
            (MatchKind::Integers(set), Some(Kind::IntegerValue(i))) => set.contains(i),
            _ => false,
        }
    }
}

fn is_null(value: &Value) -> bool {
    matches!(value.kind, None | Some(Kind::NullValue(_)))
}

/// The values at a payload path, arrays looked through (at every level, as Qdrant does).
fn values_at<'a>(payload: Option<&'a HashMap<String, Value>>, key: &[String]) -> Vec<&'a Value> {
    let Some(payload) = payload else {
        return Vec::new();
    };
    let Some((first, rest)) = key.split_first() else {
        return Vec::new();
    };
    let mut current: Vec<&Value> = payload.get(first).into_iter().collect();
    for segment in rest {
        let mut next = Vec::new();
        for value in flatten(current) {
            if let Some(Kind::StructValue(s)) = &value.kind {
                next.extend(s.fields.get(segment));
            }
        }
        current = next;
    }
    flatten(current)
}

fn flatten(values: Vec<&Value>) -> Vec<&Value> {
    let mut out = Vec::with_capacity(values.len());
    for value in values {
        match &value.kind {
            Some(Kind::ListValue(list)) => out.extend(list.values.iter()),
            _ => out.push(value),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use qdrant_client::qdrant::{Condition, Filter};

    use super::*;

    fn payload(json: &[(&str, Value)]) -> HashMap<String, Value> {
        json.iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn keyword_and_integer_match_and_arrays_match_any_element() {
        let p = payload(&[
            ("content_id", Value::from(42_i64)),
            ("tags", Value::from(vec!["a", "b"])),
        ]);
        let id = PointKey::Num(1);
        let by_int =
            CompiledFilter::compile(&Filter::must([Condition::matches("content_id", 42_i64)]))
                .unwrap();
        assert!(by_int.matches(&id, Some(&p)));
        let by_kw =
            CompiledFilter::compile(&Filter::must([Condition::matches("tags", "b".to_string())]))
                .unwrap();
        assert!(by_kw.matches(&id, Some(&p)));
        let wrong_type = CompiledFilter::compile(&Filter::must([Condition::matches(
            "content_id",
            "42".to_string(),
        )]))
        .unwrap();
        assert!(!wrong_type.matches(&id, Some(&p)));
        assert!(!by_int.matches(&id, None));
    }

    #[test]
    fn full_text_match_is_refused_as_unimplemented() {
        let err = CompiledFilter::compile(&Filter::must([Condition::matches_text("t", "x")]))
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unimplemented);
    }
}
