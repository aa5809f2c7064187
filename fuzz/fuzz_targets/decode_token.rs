//! Fuzzes the stored-token decoder: any input decodes to a token (which
//! re-encodes to itself) or to `StoreError::Corrupt` whose reason shows none
//! of the input, and nothing panics.
//!
//! From the crate root, with a nightly toolchain and `cargo install cargo-fuzz`:
//! `mkdir -p fuzz/corpus/decode_token && cargo +nightly fuzz run decode_token
//! fuzz/corpus/decode_token fuzz/seeds/decode_token -- -max_total_time=60`
#![no_main]

use libfuzzer_sys::fuzz_target;
use zoho_token_store::{StoreError, decode_token, encode_token};

fuzz_target!(|data: &[u8]| {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    match decode_token("fuzz-id", json) {
        // What decodes re-encodes, and decodes again to the same token.
        Ok(token) => {
            if let Ok(encoded) = encode_token(&token) {
                let again = decode_token("fuzz-id", &encoded).expect("re-encoded token decodes");
                assert!(again == token, "re-encoding changed the token");
            }
        }
        Err(StoreError::Corrupt { id, reason }) => {
            assert_eq!(id, "fuzz-id");
            // The reason is fixed words and positions only, never any of the
            // input: without its digits it is one of these.
            let shape: String = reason.chars().filter(|c| !c.is_ascii_digit()).collect();
            assert!(
                matches!(
                    shape.as_str(),
                    "not a JSON object"
                        | "not a token JSON object (Syntax error at line  column )"
                        | "not a token JSON object (Data error at line  column )"
                        | "not a token JSON object (Eof error at line  column )"
                ),
                "unexpected error reason: {reason}"
            );
        }
        Err(other) => panic!("decode_token failed with a non-Corrupt error: {other:?}"),
    }
});
