//! Per-incident budgets: tool calls, LLM tokens and wall time. Running out
//! of one does not fail the incident: the orchestrator escalates with what
//! was found so far.

use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// Limits for one incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub tool_calls: u32,
    pub llm_tokens: u64,
    pub wall: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            tool_calls: 80,
            llm_tokens: 20_000,
            wall: Duration::from_secs(300),
        }
    }
}

/// What is left of the limits while an incident is worked on.
#[derive(Debug)]
pub struct Budget {
    limits: Limits,
    started: Instant,
    pub tool_calls: u32,
    pub tokens: u64,
    /// The first limit that ran out, for the escalation note.
    pub exhausted: Option<&'static str>,
}

impl Budget {
    pub fn new(limits: Limits) -> Budget {
        Budget {
            limits,
            started: Instant::now(),
            tool_calls: 0,
            tokens: 0,
            exhausted: None,
        }
    }

    /// Count one tool call; false (and nothing counted) once the calls or
    /// the time are spent.
    pub fn take_tool_call(&mut self) -> bool {
        if self.tool_calls >= self.limits.tool_calls {
            self.exhausted.get_or_insert("tool calls");
            return false;
        }
        if self.started.elapsed() >= self.limits.wall {
            self.exhausted.get_or_insert("wall time");
            return false;
        }
        self.tool_calls += 1;
        true
    }

    /// Whether a model call of about `tokens` still fits.
    pub fn can_spend_tokens(&mut self, tokens: u64) -> bool {
        if self.tokens + tokens > self.limits.llm_tokens {
            self.exhausted.get_or_insert("LLM tokens");
            return false;
        }
        if self.started.elapsed() >= self.limits.wall {
            self.exhausted.get_or_insert("wall time");
            return false;
        }
        true
    }

    /// Whether optional work (the model's extra reads) still fits: a tool
    /// call and `tokens` more, with time left. Unlike the `take`/`can`
    /// checks, a `false` here marks nothing as exhausted: skipping
    /// optional work is not running out.
    pub fn fits_optional(&self, tokens: u64) -> bool {
        self.tool_calls < self.limits.tool_calls
            && self.tokens + tokens <= self.limits.llm_tokens
            && self.started.elapsed() < self.limits.wall
    }

    pub fn spend_tokens(&mut self, tokens: u64) {
        self.tokens += tokens;
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_calls_stop_at_the_limit_and_say_which_ran_out() {
        let mut b = Budget::new(Limits {
            tool_calls: 2,
            ..Limits::default()
        });
        assert!(b.take_tool_call());
        assert!(b.take_tool_call());
        assert!(!b.take_tool_call());
        assert_eq!((b.tool_calls, b.exhausted), (2, Some("tool calls")));
        assert!(b.can_spend_tokens(100));
        b.spend_tokens(19_950);
        assert!(!b.can_spend_tokens(100));
    }

    #[test]
    fn optional_work_is_skipped_without_marking_the_budget_spent() {
        let mut b = Budget::new(Limits {
            tool_calls: 1,
            llm_tokens: 1_000,
            ..Limits::default()
        });
        assert!(b.fits_optional(1_000));
        assert!(!b.fits_optional(1_001));
        assert!(b.take_tool_call());
        assert!(!b.fits_optional(0));
        assert_eq!(b.exhausted, None);
    }
}
