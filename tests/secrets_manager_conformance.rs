//! The conformance suite against `SecretsManagerStore` on LocalStack, each
//! check on its own random prefix (so they run in parallel).

mod common;

zoho_token_store::conformance_tests!(common::new_store().await.0);
