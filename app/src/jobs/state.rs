//! The job state machine: seven states and the only transitions allowed between them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    /// Written, not yet queued (only inside the submitting transaction).
    Created,
    /// Waiting for a worker (or for `execution_at`, or for a retry's backoff).
    Queued,
    /// Claimed by a worker that has not started the work yet.
    Assigned,
    /// The work is running.
    Running,
    /// Final: the work succeeded.
    Succeeded,
    /// Final (until retried): the last attempt failed.
    Failed,
    /// Final: canceled by the client.
    Canceled,
}

impl State {
    /// Every state.
    pub const ALL: [State; 7] = [
        State::Created,
        State::Queued,
        State::Assigned,
        State::Running,
        State::Succeeded,
        State::Failed,
        State::Canceled,
    ];

    /// The states not yet final, which count against the active-job limits.
    pub const ACTIVE: [State; 4] = [
        State::Created,
        State::Queued,
        State::Assigned,
        State::Running,
    ];

    /// The state's name as stored and sent: `QUEUED`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Created => "CREATED",
            State::Queued => "QUEUED",
            State::Assigned => "ASSIGNED",
            State::Running => "RUNNING",
            State::Succeeded => "SUCCEEDED",
            State::Failed => "FAILED",
            State::Canceled => "CANCELED",
        }
    }

    /// The state named `name` (as [`as_str`](Self::as_str) writes it).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// SUCCEEDED, FAILED and CANCELED. A FAILED job can still be retried by its client.
    pub fn is_final(self) -> bool {
        matches!(self, State::Succeeded | State::Failed | State::Canceled)
    }

    /// Whether `self → to` is one of the allowed transitions:
    ///
    /// | from | to |
    /// |---|---|
    /// | CREATED | QUEUED, CANCELED |
    /// | QUEUED | ASSIGNED, CANCELED |
    /// | ASSIGNED | RUNNING, CANCELED, QUEUED |
    /// | RUNNING | SUCCEEDED, FAILED, CANCELED, QUEUED |
    /// | FAILED | QUEUED |
    pub fn can_become(self, to: State) -> bool {
        use State::*;
        matches!(
            (self, to),
            (Created, Queued | Canceled)
                | (Queued, Assigned | Canceled)
                | (Assigned, Running | Canceled | Queued)
                | (Running, Succeeded | Failed | Canceled | Queued)
                | (Failed, Queued)
        )
    }

    /// The name of the event a transition into this state records: `job.queued`.
    pub fn event_name(self) -> &'static str {
        match self {
            State::Created => "job.created",
            State::Queued => "job.queued",
            State::Assigned => "job.assigned",
            State::Running => "job.running",
            State::Succeeded => "job.succeeded",
            State::Failed => "job.failed",
            State::Canceled => "job.canceled",
        }
    }

    /// A SQL list of the states' quoted names, `('QUEUED', 'RUNNING')`, for `state IN …`. The
    /// names are constants, never input.
    pub fn sql_list(states: &[State]) -> String {
        let names: Vec<String> = states.iter().map(|s| format!("'{}'", s.as_str())).collect();
        format!("({})", names.join(", "))
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::State::{self, *};

    #[test]
    fn exactly_the_specified_transitions_are_allowed() {
        let allowed = [
            (Created, Queued),
            (Created, Canceled),
            (Queued, Assigned),
            (Queued, Canceled),
            (Assigned, Running),
            (Assigned, Canceled),
            (Assigned, Queued),
            (Running, Succeeded),
            (Running, Failed),
            (Running, Canceled),
            (Running, Queued),
            (Failed, Queued),
        ];
        for from in State::ALL {
            for to in State::ALL {
                assert_eq!(
                    from.can_become(to),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for s in State::ALL {
            assert_eq!(State::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(State::parse("queued"), None);
        assert_eq!(State::sql_list(&[Queued, Running]), "('QUEUED', 'RUNNING')");
    }
}
