//! The LocalStack harness works: LocalStack answers, the client reaches it,
//! and the call counter counts each operation once.

mod common;

use std::collections::BTreeMap;

#[tokio::test]
async fn harness_reaches_localstack_and_counts_calls() {
    let (client, counter, _ledger) = common::client_with_counter().await;
    let name = format!("{}/smoke", common::random_prefix());

    client
        .create_secret()
        .name(&name)
        .secret_string(r#"{"hello":"localstack"}"#)
        .send()
        .await
        .expect("CreateSecret on LocalStack");
    let value = client
        .get_secret_value()
        .secret_id(&name)
        .send()
        .await
        .expect("GetSecretValue on LocalStack");
    assert_eq!(value.secret_string(), Some(r#"{"hello":"localstack"}"#));

    let expected: BTreeMap<String, u64> = [("CreateSecret", 1), ("GetSecretValue", 1)]
        .into_iter()
        .map(|(op, n)| (op.to_owned(), n))
        .collect();
    assert_eq!(counter.snapshot(), expected);
    assert_eq!(counter.total(), 2);
    assert_eq!(counter.count("CreateSecret"), 1);
    assert_eq!(counter.count("GetSecretValue"), 1);
    assert_eq!(counter.count("PutSecretValue"), 0);

    counter.reset();
    assert_eq!(counter.total(), 0);
    assert!(counter.snapshot().is_empty());

    client
        .delete_secret()
        .secret_id(&name)
        .force_delete_without_recovery(true)
        .send()
        .await
        .expect("DeleteSecret on LocalStack");
    assert_eq!(counter.count("DeleteSecret"), 1);
}
