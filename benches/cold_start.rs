//! The first token of a new process, process by process: what every Lambda
//! cold start pays before its first CRM call.
//!
//! ```text
//! localstack/start && cargo bench --bench cold_start
//! ```
//!
//! It saves 1,000 tokens under a fresh prefix (one of them under an
//! explicit id, as an import keeps), then starts this binary again as a
//! child process, one at a time, in turns:
//!
//! - `ours`: load the AWS config, build `SecretsManagerStore` and
//!   `ZohoAuth`, `access_token` by user name for a token the store saved
//!   (its id derived from the user name: one `GetSecretValue`);
//! - `ours, imported id`: the same for the token saved under its own id (the
//!   derived id misses and the index path answers: three calls);
//! - `plain SDK`: load the AWS config, build a client, one `GetSecretValue`
//!   of the same token's secret: the floor.
//!
//! Each child reports the time from its `main` to the token in hand (runtime
//! and clients included); the parent also times spawn to exit. Medians of
//! `ZTS_COLD_RUNS` runs each (default 31), the first round not counted.

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::time::Instant;

use zoho_token_store::auth::ZohoAuth;
use zoho_token_store::conformance::sample_token;
use zoho_token_store::{OAuthToken, SecretsManagerStore, TokenStore};

const TOKENS: usize = 1000;
const USER: usize = 500;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A child: one first token, timed from `main`; prints microseconds.
fn child(started: Instant, mode: &str, prefix: &str, user: &str, secret: &str) {
    runtime().block_on(async {
        match mode {
            "ours" => {
                let store = SecretsManagerStore::from_env(prefix).await.expect("store");
                let auth = ZohoAuth::builder(store)
                    .accounts_url("http://127.0.0.1:9")
                    .build()
                    .expect("auth");
                let token = auth
                    .access_token(&OAuthToken::for_user(user))
                    .await
                    .expect("access_token");
                std::hint::black_box(token.as_str());
            }
            "plain" => {
                let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
                let client = aws_sdk_secretsmanager::Client::new(&config);
                let value = client
                    .get_secret_value()
                    .secret_id(secret)
                    .send()
                    .await
                    .expect("GetSecretValue");
                std::hint::black_box(value.secret_string());
            }
            other => panic!("unknown mode {other}"),
        }
    });
    println!("{}", started.elapsed().as_micros());
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let started = Instant::now();
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, mode, prefix, user, secret] = &args[..]
        && flag == "--cold-child"
    {
        return child(started, mode, prefix, user, secret);
    }
    // `cargo bench` passes `--bench`; anything else is ignored.
    let runs: usize = std::env::var("ZTS_COLD_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(31);
    let rt = runtime();
    let (client, _counter, _ledger) = rt.block_on(common::client_with_counter());
    let prefix = common::random_prefix_under("bench/cold-start");
    let store = common::store_on(&client, &prefix);
    let (saved, imported) = rt.block_on(async {
        let mut tokens: Vec<OAuthToken> = (0..TOKENS).map(sample_token).collect();
        tokens[TOKENS - 1].id = Some("imported-1".into());
        store.save_tokens(&mut tokens).await.expect("seed");
        (tokens[USER].clone(), tokens[TOKENS - 1].clone())
    });
    let exe = std::env::current_exe().expect("current_exe");
    let cases = [
        (
            "ours",
            &saved,
            "ours: store + ZohoAuth + access_token by user",
        ),
        (
            "ours",
            &imported,
            "ours, a token imported under its own id (index fallback)",
        ),
        ("plain", &saved, "plain SDK: load config + GetSecretValue"),
    ];
    let mut inside = vec![Vec::new(); cases.len()];
    let mut wall = vec![Vec::new(); cases.len()];
    for round in 0..=runs {
        for (n, (mode, token, _)) in cases.iter().enumerate() {
            let secret = common::token_secret(&prefix, token.id.as_deref().unwrap());
            let user = token.user_name.as_deref().unwrap();
            let spawned = Instant::now();
            let out = Command::new(&exe)
                .args(["--cold-child", mode, &prefix, user, &secret])
                // The usual environment of a Lambda, pointed at LocalStack.
                .env("AWS_ENDPOINT_URL", common::endpoint())
                .env("AWS_ACCESS_KEY_ID", "test")
                .env("AWS_SECRET_ACCESS_KEY", "test")
                .env("AWS_REGION", "us-east-1")
                .output()
                .expect("child");
            let took = spawned.elapsed();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let micros: f64 = String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .expect("child's time");
            if round > 0 {
                inside[n].push(micros / 1000.0);
                wall[n].push(took.as_secs_f64() * 1000.0);
            }
        }
    }
    let floor_inside = median(inside[2].clone());
    let floor_wall = median(wall[2].clone());
    println!("\n## Cold first token, {TOKENS} tokens stored, medians of {runs} processes each\n");
    println!("| case | main to token | ratio | spawn to exit | ratio |\n|---|---|---|---|---|");
    for (n, (_, _, label)) in cases.iter().enumerate() {
        let (i, w) = (median(inside[n].clone()), median(wall[n].clone()));
        println!(
            "| {label} | {i:.2} ms | {:.2}× | {w:.2} ms | {:.2}× |",
            i / floor_inside,
            w / floor_wall
        );
    }
    rt.block_on(common::delete_prefix(&client, &prefix));
}
