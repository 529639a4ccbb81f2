//! Local peers for herald's tests and benchmarks, started on loopback: a
//! mock APNs (`apns`) and a mock FCM with its OAuth2 token endpoint (`fcm`). Contract: each speaks the provider's real protocol
//! (HTTP/2 over TLS for APNs), checks requests as the provider documents
//! and records what it accepted; scripted failures are chosen by the
//! request itself (e.g. a device token's prefix) so tests stay
//! deterministic. Never used by the herald binary.

pub mod apns;
pub mod fcm;
