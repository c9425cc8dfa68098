//! Property tests: whatever bytes go in as arguments and environment values
//! (NUL aside, which is a typed error) come out unchanged in the child.

use brood::{Command, Error, SpawnError};
use proptest::prelude::*;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

fn os(bytes: Vec<u8>) -> OsString {
    OsString::from_vec(bytes)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arguments_and_env_arrive_intact(
        args in prop::collection::vec(prop::collection::vec(1u8..=255, 0..40), 0..6),
        value in prop::collection::vec(1u8..=255, 0..40),
    ) {
        let out = Command::new("sh")
            .args(["-c", r#"for a; do printf '%s\0' "$a"; done; printf '%s' "$BROOD_PROP""#, "sh"])
            .args(args.iter().cloned().map(os))
            .env("BROOD_PROP", os(value.clone()))
            .run()
            .unwrap();
        let mut expected = Vec::new();
        for a in &args {
            expected.extend_from_slice(a);
            expected.push(0);
        }
        expected.extend_from_slice(&value);
        prop_assert_eq!(out.stdout, expected);
    }

    #[test]
    fn a_nul_anywhere_is_a_typed_error(
        before in prop::collection::vec(1u8..=255, 0..10),
        after in prop::collection::vec(1u8..=255, 0..10),
        position in 0usize..3,
    ) {
        let mut bad = before;
        bad.push(0);
        bad.extend(after);
        let mut cmd = Command::new("true");
        match position {
            0 => { cmd.arg(os(bad)); }
            1 => { cmd.env("BROOD_PROP", os(bad)); }
            _ => { cmd.env(os(bad), "v"); }
        }
        let err = cmd.spawn().unwrap_err();
        // A name holding '=' as well may be reported for that instead.
        let typed = matches!(
            err,
            Error::Spawn { cause: SpawnError::NulByte { .. } | SpawnError::InvalidEnvKey { .. }, .. }
        );
        prop_assert!(typed, "{:?}", err);
    }
}
