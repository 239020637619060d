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
            Cond::Match(key, kind) => any_at(payload, key, &|v| kind.matches(v)),
            Cond::Range(key, bounds) => any_at(payload, key, &|v| {
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
            // Missing, null, or an empty array.
            Cond::IsEmpty(key) => !any_at(payload, key, &|v| !is_null(v)),
            Cond::IsNull(key) => any_at(payload, key, &is_null),
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

/// Whether any value at a payload path passes `test`, arrays looked through at every level
/// (as Qdrant does). Allocates nothing: counts and deletes by filter walk every point.
fn any_at(
    payload: Option<&HashMap<String, Value>>,
    key: &[String],
    test: &dyn Fn(&Value) -> bool,
) -> bool {
    let Some((first, rest)) = key.split_first() else {
        return false;
    };
    payload
        .and_then(|p| p.get(first))
        .is_some_and(|value| walk(value, rest, test))
}

fn walk(value: &Value, rest: &[String], test: &dyn Fn(&Value) -> bool) -> bool {
    match (&value.kind, rest.split_first()) {
        (Some(Kind::ListValue(list)), _) => list.values.iter().any(|v| match &v.kind {
            // An array inside an array is not looked through again.
            Some(Kind::ListValue(_)) if rest.is_empty() => test(v),
            _ => walk(v, rest, test),
        }),
        (_, None) => test(value),
        (Some(Kind::StructValue(s)), Some((segment, rest))) => s
            .fields
            .get(segment)
            .is_some_and(|child| walk(child, rest, test)),
        (_, Some(_)) => false,
    }
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
    fn dotted_paths_look_through_arrays_and_is_empty_covers_missing_null_and_empty() {
        let meta = Value::from(vec![
            Value::from(qdrant_client::Payload::from([("lang", Value::from("ko"))])),
            Value::from(qdrant_client::Payload::from([("lang", Value::from("en"))])),
        ]);
        let p = payload(&[
            ("meta", meta),
            (
                "none",
                Value::from(qdrant_client::qdrant::value::Kind::NullValue(0)),
            ),
            ("empty", Value::from(Vec::<i64>::new())),
            ("one", Value::from(vec![1_i64])),
        ]);
        let id = PointKey::Num(1);
        let check = |c: Condition| {
            CompiledFilter::compile(&Filter::must([c]))
                .unwrap()
                .matches(&id, Some(&p))
        };
        assert!(check(Condition::matches("meta[].lang", "en".to_string())));
        assert!(check(Condition::matches("meta.lang", "ko".to_string())));
        assert!(!check(Condition::matches("meta.lang", "fr".to_string())));
        assert!(check(Condition::is_empty("missing")));
        assert!(check(Condition::is_empty("none")));
        assert!(check(Condition::is_empty("empty")));
        assert!(!check(Condition::is_empty("one")));
        assert!(check(Condition::is_null("none")));
        assert!(!check(Condition::is_null("empty")));
    }

    #[test]
    fn full_text_match_is_refused_as_unimplemented() {
        let err = CompiledFilter::compile(&Filter::must([Condition::matches_text("t", "x")]))
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unimplemented);
    }
}
