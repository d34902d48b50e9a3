//! Names for passkeys from their authenticator's AAGUID, for the few providers people
//! meet most. Anything else gets a plain default the user can rename.

use std::collections::BTreeMap;

use serde_cbor_2::Value;

/// Well-known AAGUIDs (from the public passkey provider lists).
const KNOWN: &[(&str, &str)] = &[
    ("fbfc3007-154e-4ecc-8c0b-6e020557d7bd", "iCloud Keychain"),
    ("dd4ec289-e01d-41c9-bb89-70fa845d4bf2", "iCloud Keychain"),
    (
        "ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4",
        "Google Password Manager",
    ),
    ("adce0002-35bc-c60a-648b-0b25f1f05503", "Chrome on Mac"),
    ("08987058-cadc-4b81-b6e1-30de50dcbe96", "Windows Hello"),
    ("9ddd1817-af5a-4672-a2b9-3e3dd95000a9", "Windows Hello"),
    ("6028b017-b1d4-4c02-b4b3-afcdafc96bb2", "Windows Hello"),
    ("bada5566-a7aa-401f-bd96-45619a55120d", "1Password"),
    ("d548826e-79b4-db40-a3d8-11116f7e8349", "Bitwarden"),
    ("531126d6-e717-415c-9320-3d9aa6981239", "Dashlane"),
    ("b84e4048-15dc-4dd0-8640-f4f60813c8af", "NordPass"),
    ("53414d53-554e-4700-0000-000000000000", "Samsung Pass"),
    ("cb69481e-8ff7-4039-93ec-0a2729a154a8", "YubiKey 5"),
    ("ee882879-721c-4913-9775-3dfcce97072a", "YubiKey 5"),
    ("fa2b99dc-9e39-4257-8f92-4a30d23c4118", "YubiKey 5 NFC"),
    ("2fc0579f-8113-47ea-b116-bb5a8db9202a", "YubiKey 5 NFC"),
    (
        "a4e9fc6d-4cbe-4758-b8ba-37598bb5bbaa",
        "Security Key by Yubico",
    ),
];

/// The AAGUID in a registration's attestation object, if there is a non-zero one.
pub fn from_attestation_object(attestation_object: &[u8]) -> Option<String> {
    let map: BTreeMap<String, Value> = serde_cbor_2::from_slice(attestation_object).ok()?;
    let Some(Value::Bytes(auth_data)) = map.get("authData") else {
        return None;
    };
    // rpIdHash (32) · flags (1) · signCount (4) · AAGUID (16) …
    let aaguid = auth_data.get(37..53)?;
    if aaguid.iter().all(|b| *b == 0) {
        return None;
    }
    uuid::Uuid::from_slice(aaguid).ok().map(|u| u.to_string())
}

/// A friendly name for a passkey from this authenticator.
pub fn name_for(aaguid: Option<&str>) -> &'static str {
    aaguid
        .and_then(|id| KNOWN.iter().find(|(known, _)| *known == id))
        .map_or("Passkey", |(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_authenticators_get_their_names() {
        assert_eq!(
            name_for(Some("bada5566-a7aa-401f-bd96-45619a55120d")),
            "1Password"
        );
        assert_eq!(
            name_for(Some("00000000-0000-0000-0000-000000000001")),
            "Passkey"
        );
        assert_eq!(name_for(None), "Passkey");
    }

    #[test]
    fn aaguid_is_read_from_auth_data() {
        let mut auth_data = vec![0u8; 37];
        auth_data.extend_from_slice(&[
            0xba, 0xda, 0x55, 0x66, 0xa7, 0xaa, 0x40, 0x1f, 0xbd, 0x96, 0x45, 0x61, 0x9a, 0x55,
            0x12, 0x0d,
        ]);
        let mut map = BTreeMap::new();
        map.insert("fmt".to_string(), Value::Text("none".into()));
        map.insert("authData".to_string(), Value::Bytes(auth_data));
        let bytes = serde_cbor_2::to_vec(&map).unwrap();
        assert_eq!(
            from_attestation_object(&bytes).as_deref(),
            Some("bada5566-a7aa-401f-bd96-45619a55120d")
        );
        assert_eq!(from_attestation_object(b"junk"), None);
    }
}
