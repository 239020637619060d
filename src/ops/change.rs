//! A destructive change as `ops::destructive` asks about it and the audit records it: the type
//! both share, below both, so that the audit does not import the path that calls it.

/// What an operator must type before the change goes ahead.
#[derive(Debug, Clone, Copy)]
pub enum Confirm {
    /// Nothing: the guide runs it unattended (reset-stuck-jobs from cron).
    Never,
    /// `yes`.
    Yes,
    /// A phrase, as the guide asks for reset-hard ("DELETE ALL").
    Phrase(&'static str),
}

/// A destructive change about to be made.
pub struct Change<'a> {
    /// The function or procedure making it (`jobs::reset_processing`).
    pub op: &'a str,
    /// In words: "reset 3 processing jobs to pending".
    pub summary: String,
    /// How many things it changes; nothing is asked when it is 0.
    pub count: i64,
    pub confirm: Confirm,
}
