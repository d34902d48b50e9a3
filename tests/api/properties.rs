//! Property tests for the parsers and rules that take outside input: names, durations, the
//! issuer, request parameters, scopes and the config file. Each property holds for any
//! input: no panics, round trips, and refusal of the known-bad shapes.

use latchkey::config::{self, FileConfig, Issuer, Overrides, Settings};
use latchkey::directory::names;
use latchkey::oidc::params::Params;
use latchkey::oidc::scope::{SUPPORTED, Scopes};
use proptest::prelude::*;

/// Enough cases to find the edges, few enough for a debug build to finish in seconds.
fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Characters a name may never hold: whitespace, controls, path and URI separators, and
/// non-ASCII.
fn forbidden_in_names() -> impl Strategy<Value = char> {
    prop_oneof![
        Just(' '),
        Just('\t'),
        Just('\n'),
        Just('\u{0}'),
        Just('\u{7f}'),
        Just('/'),
        Just(':'),
        Just('@'),
        Just('%'),
        Just('\u{a0}'),
        Just('é'),
        Just('\u{202e}'),
    ]
}

/// A valid name of `allowed` characters with one forbidden character put inside it.
fn with_forbidden(allowed: &'static str) -> impl Strategy<Value = String> {
    (allowed, forbidden_in_names(), any::<prop::sample::Index>()).prop_map(|(name, bad, at)| {
        let mut chars: Vec<char> = name.chars().collect();
        chars.insert(at.index(chars.len() + 1), bad);
        chars.into_iter().collect()
    })
}

const USERNAME: &str = "[a-z0-9._-]{1,64}";
const GROUP_OR_CLIENT: &str = "[A-Za-z0-9._-]{1,64}";

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn names_never_panic_and_what_they_accept_re_parses_to_itself(input in any::<String>()) {
        for parse in [
            names::username,
            names::group_name,
            names::client_id,
            names::email,
            names::display_name,
        ] {
            if let Ok(name) = parse(&input) {
                prop_assert_eq!(parse(&name).ok(), Some(name));
            }
        }
    }

    #[test]
    fn valid_usernames_are_kept_and_capitals_lowered(name in "[A-Za-z0-9._-]{1,64}") {
        prop_assert_eq!(names::username(&name).unwrap(), name.to_lowercase());
    }

    #[test]
    fn group_names_and_client_ids_are_exactly_their_character_set(input in any::<String>()) {
        let fits = (1..=64).contains(&input.len())
            && input.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        prop_assert_eq!(names::group_name(&input).is_ok(), fits);
        prop_assert_eq!(names::client_id(&input).is_ok(), fits);
    }

    #[test]
    fn valid_group_names_and_client_ids_are_kept(name in GROUP_OR_CLIENT) {
        prop_assert_eq!(names::group_name(&name).unwrap(), name.clone());
        prop_assert_eq!(names::client_id(&name).unwrap(), name);
    }

    #[test]
    fn names_with_a_forbidden_character_are_refused(
        username in with_forbidden(USERNAME),
        other in with_forbidden(GROUP_OR_CLIENT),
    ) {
        // Surrounding whitespace is trimmed from usernames, so only an inner one counts.
        if username.trim() == username {
            prop_assert!(names::username(&username).is_err(), "{:?}", username);
        }
        prop_assert!(names::group_name(&other).is_err(), "{:?}", other);
        prop_assert!(names::client_id(&other).is_err(), "{:?}", other);
    }

    #[test]
    fn names_over_64_characters_are_refused(name in "[a-z0-9._-]{65,200}") {
        prop_assert!(names::username(&name).is_err());
        prop_assert!(names::group_name(&name).is_err());
        prop_assert!(names::client_id(&name).is_err());
    }

    #[test]
    fn an_accepted_email_has_one_at_sign_and_no_space_or_control(input in any::<String>()) {
        if let Ok(email) = names::email(&input) {
            prop_assert_eq!(email.matches('@').count(), 1);
            prop_assert!(!email.chars().any(|c| c.is_whitespace() || c.is_control()));
            prop_assert!(email.len() <= 254);
        }
    }

    #[test]
    fn emails_with_inner_whitespace_or_controls_are_refused(
        local in "[a-z0-9.]{1,20}",
        domain in "[a-z0-9.]{1,20}",
        bad in prop_oneof![Just(' '), Just('\t'), Just('\n'), Just('\u{0}'), Just('\u{85}')],
    ) {
        let good = format!("{local}@{domain}");
        prop_assert!(names::email(&good).is_ok());
        for bad in [format!("{local}{bad}x@{domain}"), format!("{local}@{domain}{bad}x")] {
            prop_assert!(names::email(&bad).is_err(), "{:?}", bad);
        }
    }

    #[test]
    fn an_accepted_display_name_is_short_and_free_of_controls(input in any::<String>()) {
        if let Ok(name) = names::display_name(&input) {
            prop_assert!(name.chars().count() <= 128);
            prop_assert!(!name.chars().any(char::is_control));
        }
    }

    #[test]
    fn display_names_with_inner_controls_are_refused(
        name in "[a-zA-Z ]{0,20}",
        control in prop::char::range('\u{0}', '\u{1f}'),
    ) {
        let name = format!("x{name}{control}{name}x");
        prop_assert!(names::display_name(&name).is_err(), "{:?}", name);
    }

    #[test]
    fn durations_are_their_number_of_units(n in 1_i64..1_000_000, unit in 0_usize..4) {
        let (suffix, seconds) = [("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)][unit];
        prop_assert_eq!(config::parse_duration(&format!("{n}{suffix}")), Some(n * seconds));
        prop_assert_eq!(config::parse_duration(&n.to_string()), Some(n));
    }

    #[test]
    fn durations_that_overflow_or_are_zero_are_refused(
        digits in "[1-9][0-9]{19,40}",
        unit in prop_oneof![Just(""), Just("s"), Just("m"), Just("h"), Just("d")],
        zeros in "0{1,5}",
    ) {
        prop_assert_eq!(config::parse_duration(&format!("{digits}{unit}")), None);
        prop_assert_eq!(config::parse_duration(&format!("{zeros}{unit}")), None);
    }

    #[test]
    fn durations_never_panic(input in any::<String>()) {
        if let Some(seconds) = config::parse_duration(&input) {
            prop_assert!(seconds > 0);
        }
    }

    #[test]
    fn an_issuer_never_ends_with_a_slash_and_re_parses_to_itself(
        input in prop_oneof![
            any::<String>(),
            "https?://[a-z.]{1,12}(:[0-9]{1,5})?(/[a-z/.]{0,12})?/{0,3}",
            "https?://[a-z.]{1,12}[ \t\n\r]?(/[a-z/.]{0,12})?/{0,3}[ \t\n\r]?",
        ],
    ) {
        if let Ok(issuer) = Issuer::parse(&input) {
            // Relying parties compare the issuer byte for byte: what is published is what
            // the operator can see and type.
            let published = issuer.as_str();
            prop_assert!(!published.ends_with('/'), "{:?}", published);
            prop_assert!(
                !published.chars().any(|c| c.is_whitespace() || c.is_control()),
                "{:?} from {:?}",
                published,
                input
            );
            prop_assert!(!issuer.path().ends_with('/'));
            prop_assert_eq!(Issuer::parse(issuer.as_str()).ok(), Some(issuer));
        }
    }

    #[test]
    fn params_never_panic(input in any::<String>()) {
        let _ = Params::parse(&input);
    }

    #[test]
    fn params_round_trip_through_form_encoding(
        pairs in prop::collection::btree_map(any::<String>(), ".+", 0..8),
    ) {
        let encoded = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&pairs)
            .finish();
        let params = Params::parse(&encoded).unwrap();
        for (name, value) in &pairs {
            prop_assert_eq!(params.get(name), Some(value.as_str()));
        }
    }

    #[test]
    fn a_repeated_parameter_is_refused(
        name in any::<String>(),
        first in ".+",
        second in ".+",
        others in prop::collection::btree_map("[a-z]{1,8}", ".+", 0..4),
    ) {
        let mut pairs: Vec<(String, String)> = others
            .into_iter()
            .filter(|(other, _)| *other != name)
            .collect();
        pairs.insert(0, (name.clone(), first));
        pairs.push((name.clone(), second));
        let encoded = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&pairs)
            .finish();
        prop_assert_eq!(Params::parse(&encoded), Err(name));
    }

    #[test]
    fn scopes_keep_only_what_was_asked_and_re_parse_to_themselves(
        input in prop_oneof![
            any::<String>(),
            prop::collection::vec(
                prop_oneof![prop::sample::select(SUPPORTED), Just(""), Just("admin"), Just("OPENID")],
                0..8,
            )
            .prop_map(|words| words.join(" ")),
        ],
    ) {
        let scopes = Scopes::from_request(&input);
        let asked: Vec<&str> = input.split(' ').collect();
        prop_assert!(scopes.names().all(|s| SUPPORTED.contains(&s) && asked.contains(&s)));
        prop_assert_eq!(Scopes::from_request(&scopes.joined()), scopes);
    }
}

/// Lines that look like the config file's: its keys, tables and plausible values, mixed.
fn config_text() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "issuer",
        "listen",
        "data_dir",
        "trusted_proxies",
        "session_lifetime",
        "session_idle_timeout",
        "audit_retention",
        "name",
        "client_id",
        "secret",
        "redirect_uris",
        "allowed_groups",
        "public",
        "access_token_lifetime",
        "unknown",
    ]);
    let value = prop_oneof![
        "\"[a-z0-9:/.\\[\\] -]{0,20}\"",
        "-?[0-9]{1,25}",
        Just("true".to_string()),
        Just("[]".to_string()),
        "\\[\"[a-z0-9:./]{0,12}\"\\]",
        "[^\n]{0,12}",
    ];
    let line = prop_oneof![
        (key, value).prop_map(|(k, v)| format!("{k} = {v}")),
        Just("[[clients]]".to_string()),
        Just("[[groups]]".to_string()),
        "[^\n]{0,30}",
    ];
    prop::collection::vec(line, 0..12).prop_map(|lines| lines.join("\n"))
}

/// Resolves settings from a config file holding `bytes`; an error is fine, a panic is not.
fn resolve(bytes: &[u8]) -> Result<Settings, config::ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latchkey.toml");
    std::fs::write(&path, bytes).unwrap();
    let direct = FileConfig::load(&path);
    let settings = Settings::resolve(Overrides {
        data_dir: Some(dir.path().to_path_buf()),
        config: Some(path),
        ..Overrides::default()
    });
    assert!(
        direct.is_ok() || settings.is_err(),
        "a file that fails to load fails"
    );
    settings
}

proptest! {
    #![proptest_config(cases(128))]

    #[test]
    fn any_config_file_is_settings_or_an_error(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..256),
            config_text().prop_map(String::into_bytes),
        ],
    ) {
        if let Ok(settings) = resolve(&bytes) {
            prop_assert!(settings.sessions.lifetime_secs > 0 && settings.sessions.idle_secs > 0);
        }
    }
}

/// Redirect URIs as registered: http(s), a host, an optional port and path.
fn registered_uri() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("https"), Just("http")],
        "[a-z][a-z0-9-]{0,12}(\\.[a-z]{2,5})?",
        proptest::option::of(1u16..),
        "(/[A-Za-z0-9._~-]{1,8}){0,3}/?",
    )
        .prop_map(|(scheme, host, port, path)| match port {
            Some(port) => format!("{scheme}://{host}:{port}{path}"),
            None => format!("{scheme}://{host}{path}"),
        })
}

/// Characters no URI may carry as they are.
fn whitespace_or_control() -> impl Strategy<Value = char> {
    prop_oneof![
        Just(' '),
        Just('\t'),
        Just('\n'),
        Just('\r'),
        Just('\u{0}'),
        Just('\u{7f}'),
        Just('\u{85}'),
        Just('\u{a0}'),
        Just('\u{2028}'),
    ]
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn a_registered_uri_matches_itself_and_its_root_spelling_only(uri in registered_uri()) {
        use latchkey::oidc::redirect::{find_registered, same_uri};
        let registered = vec![uri.clone()];
        prop_assert_eq!(find_registered(&registered, &uri), Some(uri.as_str()));
        let authority_only = uri.matches('/').count() == 2;
        if authority_only {
            let root = format!("{uri}/");
            prop_assert!(same_uri(&uri, &root));
            prop_assert!(find_registered(&registered, &root).is_some());
        }
        for near_miss in [
            format!("{uri}x"),
            format!("{uri}//"),
            uri.to_uppercase(),
            format!("{uri}?a=1"),
            format!("{uri}#f"),
        ] {
            if near_miss != uri && !(authority_only && near_miss == format!("{uri}/")) {
                prop_assert!(
                    find_registered(&registered, &near_miss).is_none(),
                    "{} matched {}", near_miss, uri
                );
            }
        }
    }

    #[test]
    fn whitespace_and_control_characters_never_match_or_register(
        uri in registered_uri(),
        bad in whitespace_or_control(),
        at in any::<prop::sample::Index>(),
    ) {
        let mut chars: Vec<char> = uri.chars().collect();
        chars.insert(at.index(chars.len() + 1), bad);
        let spoiled: String = chars.into_iter().collect();
        let registered = vec![uri.clone()];
        prop_assert!(latchkey::oidc::redirect::find_registered(&registered, &spoiled).is_none());
        prop_assert!(names::redirect_uri(&spoiled).is_err());
    }

    #[test]
    fn redirect_rules_never_panic(registered in any::<String>(), requested in any::<String>()) {
        let registered = vec![registered];
        let _ = latchkey::oidc::redirect::find_registered(&registered, &requested);
        let _ = latchkey::oidc::redirect::is_plain_http(&requested);
        let _ = names::redirect_uri(&requested);
    }
}

/// A store with one public client, `app`, registered at `https://app.example.com/cb`.
fn authorize_world() -> (tempfile::TempDir, latchkey::store::Store) {
    use latchkey::directory::clients::{self, ClientSettings, NewClient};
    let dir = tempfile::tempdir().unwrap();
    let store = latchkey::store::Store::open(dir.path()).unwrap();
    store
        .write(|tx| {
            clients::add(
                tx,
                &NewClient {
                    client_id: latchkey::names::ClientId::parse("app").unwrap(),
                    settings: ClientSettings {
                        redirect_uris: vec!["https://app.example.com/cb".into()],
                        public: true,
                        ..ClientSettings::default()
                    },
                },
                None,
                &latchkey::store::audit::Origin::cli(),
                0,
            )
        })
        .unwrap();
    (dir, store)
}

/// Authorization parameters: the ones the rules read, with values from plausible to hostile.
fn authorization_query() -> impl Strategy<Value = Vec<(String, String)>> {
    let value = prop_oneof![
        Just(String::new()),
        Just("code".to_string()),
        Just("app".to_string()),
        Just("https://app.example.com/cb".to_string()),
        Just("openid".to_string()),
        Just("S256".to_string()),
        Just("none login".to_string()),
        "[ -~]{0,64}",
        any::<String>(),
        "s{4090,4100}",
    ];
    let name = prop_oneof![
        Just("state"),
        Just("nonce"),
        Just("prompt"),
        Just("max_age"),
        Just("response_mode"),
        Just("login_hint"),
        Just("display"),
        Just("junk"),
    ];
    // A valid request's core, then other parameters in any number and shape.
    let core = [
        ("response_type", "code"),
        ("client_id", "app"),
        ("redirect_uri", "https://app.example.com/cb"),
        ("scope", "openid profile"),
        (
            "code_challenge",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        ),
        ("code_challenge_method", "S256"),
    ]
    .map(|(name, value)| (name.to_string(), value.to_string()));
    proptest::collection::vec((name.prop_map(str::to_string), value), 0..8).prop_map(move |extra| {
        let mut pairs = core.to_vec();
        pairs.extend(extra);
        pairs
    })
}

proptest! {
    #![proptest_config(cases(128))]

    #[test]
    fn authorization_requests_never_panic_and_valid_ones_are_bounded(
        pairs in authorization_query()
    ) {
        use latchkey::oidc::authorize;
        let (_dir, store) = authorize_world();
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&pairs)
            .finish();
        let Ok(params) = Params::parse(&query) else {
            return Ok(());
        };
        let issuer = Issuer::parse("https://id.example.com").unwrap();
        let validated = store.read(|conn| {
            Ok::<_, latchkey::store::StoreError>(authorize::validate(conn, &issuer, &params))
        });
        if let Ok(Ok(request)) = validated {
            prop_assert_eq!(request.redirect_uri.as_str(), "https://app.example.com/cb");
            prop_assert!(request.state.as_ref().is_none_or(|s| s.len() <= 4096));
            if let Ok(parked) = authorize::parked(&issuer, &request, &params) {
                prop_assert!(parked.len() <= authorize::MAX_PARKED_BYTES);
                for (name, _) in pairs.iter().filter(|(_, value)| !value.is_empty()) {
                    prop_assert_eq!(
                        parked.contains(&format!("\"{name}\"")),
                        authorize::PARKED_PARAMETERS.contains(&name.as_str()),
                    );
                }
            }
        }
    }
}
