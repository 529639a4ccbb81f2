//! Virtual endpoint actors: activated by their shard actor on demand for
//! interactive work on one endpoint, passivated when idle or when the shard's
//! resident cap needs room. They hold no state that is not also in storage,
//! so passivation loses nothing.

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::engagement::Engagement;

pub enum EndpointMsg {
    /// The endpoint's engagement row changed (None: endpoint deleted).
    Changed(Option<Engagement>),
    Get(RpcReplyPort<EndpointView>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointView {
    pub app_id: String,
    pub endpoint_id: String,
    pub engagement: Option<Engagement>,
    /// Changes observed since activation.
    pub changes_seen: u64,
}

pub struct EndpointActor;

impl Actor for EndpointActor {
    type Msg = EndpointMsg;
    type State = EndpointView;
    type Arguments = (String, String, Option<Engagement>);

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        (app_id, endpoint_id, engagement): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(EndpointView {
            app_id,
            endpoint_id,
            engagement,
            changes_seen: 0,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            EndpointMsg::Changed(e) => {
                st.engagement = e;
                st.changes_seen += 1;
            }
            EndpointMsg::Get(reply) => {
                let _ = reply.send(st.clone());
            }
        }
        Ok(())
    }
}
