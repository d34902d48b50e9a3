//! Several instances: two `latchkey serve` processes on one PostgreSQL database behind HAProxy
//! with round robin and no stickiness. Every flow works whichever instance answers each of its
//! requests, a key rotation made through one is served by the other, and killing one loses
//! only the requests in flight to it. A test binary of its own, so that it runs once rather
//! than in both runs of the api suite; it needs PostgreSQL's server programs and HAProxy.

// Shared with the api suite, which uses the rest of them.
#[allow(dead_code)]
#[path = "../api/ceremonies.rs"]
mod ceremonies;
// Shared with the api suite, which uses the rest of them.
#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;
// Shared with the api suite, which uses the rest of them.
#[allow(dead_code)]
#[path = "../api/postgres.rs"]
mod postgres;
// Shared with the api suite, which uses the rest of them.
#[allow(dead_code)]
#[path = "../api/process.rs"]
mod process;

mod balancer;
mod cluster;
mod failover;
mod key_rotation;
mod passkeys;
mod sign_in;
