//! The state machine driven entry by entry, as Raft would.

use std::sync::Arc;

use herald_storage::{CmdResult, Command, KvEngine, StateMachine, TypeConfig};
use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};

pub struct Sm<E: KvEngine> {
    pub sm: StateMachine<E>,
    index: u64,
}

impl<E: KvEngine> Sm<E> {
    pub fn open(engine: Arc<E>, group: u32) -> Self {
        Self {
            sm: StateMachine::open(engine, group, None).unwrap(),
            index: 0,
        }
    }

    pub async fn apply(&mut self, cmd: Command) -> CmdResult {
        self.index += 1;
        let entry: Entry<TypeConfig> = Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), self.index),
            payload: EntryPayload::Normal(cmd),
        };
        self.sm.apply(vec![entry]).await.unwrap().remove(0)
    }
}
