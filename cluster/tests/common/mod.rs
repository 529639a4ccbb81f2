//! Helpers shared by the cluster tests.

use herald_model::wire::EndpointRequest;
use herald_storage::{ApplyLimits, Command, EndpointUpsert};

/// An UpdateEndpoint-like write of one email endpoint `id` of app "app".
pub fn upsert(id: &str) -> Command {
    Command::UpsertEndpoints {
        app_id: "app".into(),
        now_iso: "2026-11-29T00:00:00.000Z".into(),
        limits: ApplyLimits {
            endpoint_bytes_max: 15_360,
            endpoint_attributes_max: 250,
            session_idle_timeout_ms: 60_000,
            rollups: true,
        },
        items: vec![EndpointUpsert {
            endpoint_id: id.into(),
            request: EndpointRequest {
                address: Some(format!("{id}@example.com")),
                channel_type: Some("EMAIL".into()),
                ..Default::default()
            },
            seq: 0,
        }],
    }
}
