//! Prometheus metrics: one registry, kept in `AppState`, counted by the handlers through the
//! small methods below. What the store and the rate limiters know is read at scrape time.
//! Every label takes a bounded set of values: client ids only of registered clients.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// The media type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How someone signed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInMethod {
    Passkey,
    Link,
    Setup,
}

impl SignInMethod {
    const ALL: [SignInMethod; 3] = [
        SignInMethod::Passkey,
        SignInMethod::Link,
        SignInMethod::Setup,
    ];

    fn label(self) -> &'static str {
        match self {
            SignInMethod::Passkey => "passkey",
            SignInMethod::Link => "link",
            SignInMethod::Setup => "setup",
        }
    }
}

/// A passkey ceremony: signing in, the first administrator's setup, or adding a passkey.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ceremony {
    SignIn,
    Setup,
    Register,
}

impl Ceremony {
    const ALL: [Ceremony; 3] = [Ceremony::SignIn, Ceremony::Setup, Ceremony::Register];

    fn label(self) -> &'static str {
        match self {
            Ceremony::SignIn => "sign_in",
            Ceremony::Setup => "setup",
            Ceremony::Register => "register",
        }
    }
}

const SIGN_IN_RESULTS: [&str; 2] = ["success", "failure"];
const CEREMONY_STAGES: [&str; 3] = ["started", "finished", "failed"];

/// The client label of a client that is not (or not yet) known to be registered.
pub const UNKNOWN_CLIENT: &str = "unknown";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SignInLabels {
    method: &'static str,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuthorizationLabels {
    client: String,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    grant: &'static str,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CeremonyLabels {
    ceremony: &'static str,
    stage: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    limit: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Request durations, in seconds: from a millisecond to about 16 seconds.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// What is read when Prometheus scrapes, rather than counted as it happens.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Live {
    pub users: i64,
    pub clients: i64,
    pub sessions: i64,
    /// Requests refused by each per-address limit since the start.
    pub rate_limited: Vec<(&'static str, u64)>,
}

/// Every metric the server counts.
pub struct Metrics {
    registry: Registry,
    sign_ins: Family<SignInLabels, Counter>,
    authorizations: Family<AuthorizationLabels, Counter>,
    tokens: Family<TokenLabels, Counter>,
    ceremonies: Family<CeremonyLabels, Counter>,
    requests: Histograms<RouteLabels>,
    write_wait: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let metrics = Metrics {
            registry: Registry::with_prefix("latchkey"),
            sign_ins: Family::default(),
            authorizations: Family::default(),
            tokens: Family::default(),
            ceremonies: Family::default(),
            requests: Family::new_with_constructor(duration_histogram),
            write_wait: duration_histogram(),
        };
        metrics.registered()
    }

    fn registered(mut self) -> Metrics {
        let registry = &mut self.registry;
        registry.register(
            "build",
            "The running version",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        registry.register(
            "sign_ins",
            "Sign-ins by method and result",
            self.sign_ins.clone(),
        );
        registry.register(
            "authorizations",
            "Authorization requests by client and result",
            self.authorizations.clone(),
        );
        registry.register(
            "tokens",
            "Token requests by grant and result (issued, or the OAuth error)",
            self.tokens.clone(),
        );
        registry.register(
            "passkey_ceremonies",
            "Passkey ceremonies by kind and stage",
            self.ceremonies.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time to answer a request, by route pattern and method",
            self.requests.clone(),
        );
        registry.register(
            "write_queue_wait_seconds",
            "Time a database write waited for the writer's turn",
            self.write_wait.clone(),
        );
        self.zeroed()
    }

    /// Every sign-in and ceremony series exists from the start, at zero, so that the first
    /// of each is seen as an increase.
    fn zeroed(self) -> Metrics {
        for method in SignInMethod::ALL {
            for result in SIGN_IN_RESULTS {
                let labels = SignInLabels {
                    method: method.label(),
                    result,
                };
                drop(self.sign_ins.get_or_create(&labels));
            }
        }
        for ceremony in Ceremony::ALL {
            for stage in CEREMONY_STAGES {
                let labels = CeremonyLabels {
                    ceremony: ceremony.label(),
                    stage,
                };
                drop(self.ceremonies.get_or_create(&labels));
            }
        }
        self
    }

    pub fn sign_in(&self, method: SignInMethod, succeeded: bool) {
        let labels = SignInLabels {
            method: method.label(),
            result: SIGN_IN_RESULTS[usize::from(!succeeded)],
        };
        self.sign_ins.get_or_create(&labels).inc();
    }

    /// `client` must be the id of a registered client, or `UNKNOWN_CLIENT`.
    pub fn authorization(&self, client: &str, result: &'static str) {
        let labels = AuthorizationLabels {
            client: client.to_string(),
            result,
        };
        self.authorizations.get_or_create(&labels).inc();
    }

    /// A token request with `grant_type` as sent, and its result: `issued` or an error code.
    pub fn token(&self, grant_type: Option<&str>, result: &'static str) {
        let grant = match grant_type {
            Some("authorization_code") => "authorization_code",
            Some("refresh_token") => "refresh_token",
            _ => "other",
        };
        self.tokens
            .get_or_create(&TokenLabels { grant, result })
            .inc();
    }

    pub fn ceremony_started(&self, ceremony: Ceremony) {
        self.ceremony(ceremony, CEREMONY_STAGES[0]);
    }

    pub fn ceremony_ended(&self, ceremony: Ceremony, succeeded: bool) {
        self.ceremony(ceremony, CEREMONY_STAGES[if succeeded { 1 } else { 2 }]);
    }

    fn ceremony(&self, ceremony: Ceremony, stage: &'static str) {
        let labels = CeremonyLabels {
            ceremony: ceremony.label(),
            stage,
        };
        self.ceremonies.get_or_create(&labels).inc();
    }

    /// A request answered: `route` is the matched route pattern, never the raw path.
    pub fn request(&self, route: &str, method: &actix_web::http::Method, took: Duration) {
        let labels = RouteLabels {
            route: route.to_string(),
            method: known_method(method),
        };
        self.requests
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// Observes how long database writers waited for their turn (see `Store::observe_waits`).
    pub fn write_waits(&self) -> impl Fn(Duration) + Send + Sync + 'static {
        let histogram = self.write_wait.clone();
        move |waited| histogram.observe(waited.as_secs_f64())
    }

    /// The scrape: everything counted, then the `live` values.
    pub fn render(&self, live: &Live) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_text::encode(&mut out, &self.registry)?;
        let mut now = Registry::with_prefix("latchkey");
        for (name, help, value) in [
            ("users", "People with an account", live.users),
            ("clients", "Registered clients", live.clients),
            ("active_sessions", "Sessions not yet expired", live.sessions),
        ] {
            let gauge: Gauge = Gauge::default();
            gauge.set(value);
            now.register(name, help, gauge);
        }
        let limited = Family::<LimitLabels, Counter>::default();
        for (limit, refused) in &live.rate_limited {
            limited
                .get_or_create(&LimitLabels { limit })
                .inc_by(*refused);
        }
        now.register(
            "rate_limited",
            "Requests refused by a per-address limit",
            limited,
        );
        prometheus_text::encode(&mut out, &now)?;
        Ok(out)
    }
}

/// The method as a label: the standard ones by name, anything else as `other`.
fn known_method(method: &actix_web::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        _ => "other",
    }
}
