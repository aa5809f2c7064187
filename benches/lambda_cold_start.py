"""First-invocation latency of a fresh Lambda process under cargo-lambda's
emulator: from exec to the first invoke's answer, and the second invoke.

Needs the emulator (`cargo lambda watch --only-lambda-apis`, on :9000),
LocalStack on :4566 and `cargo run --example fake_zoho` (see docs/lambda.md, "The
Lambda example, locally"). Usage, with release builds of examples/lambda.rs:

    python3 benches/lambda_cold_start.py target/release/examples/lambda ...

Each binary runs 16 times (the first run warms LocalStack and the token and
is not counted); it prints the medians.
"""
import json, os, statistics, subprocess, sys, time, urllib.request

ENV = dict(os.environ,
    AWS_ENDPOINT_URL="http://127.0.0.1:4566", AWS_ACCESS_KEY_ID="test",
    AWS_SECRET_ACCESS_KEY="test", AWS_REGION="us-east-1",
    AWS_LAMBDA_FUNCTION_NAME="_", AWS_LAMBDA_FUNCTION_VERSION="1",
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE="4096", AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:9000/.rt",
    ZOHO_TOKEN_PREFIX="zoho/crm-local", ZOHO_ACCOUNTS_URL="http://127.0.0.1:9090",
    ZOHO_API_DOMAIN="http://127.0.0.1:9090")
URL = "http://127.0.0.1:9000/2015-03-31/functions/_/invocations"
BODY = json.dumps({"user_name": "ada@example.com"}).encode()

def invoke():
    req = urllib.request.Request(URL, data=BODY, method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read().decode()

def run(binary, n):
    firsts, warms = [], []
    for i in range(n + 1):
        t = time.perf_counter()
        p = subprocess.Popen([binary], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        answer = invoke()
        first = time.perf_counter() - t
        t = time.perf_counter(); invoke(); warm = time.perf_counter() - t
        p.kill(); p.wait()
        if i == 0:
            print(binary, answer)
            continue  # the first run warms LocalStack and the token
        firsts.append(first * 1000); warms.append(warm * 1000)
    return statistics.median(firsts), statistics.median(warms)

for b in sys.argv[1:]:
    f, w = run(b, 15)
    print(f"{b}: first invocation from exec {f:.1f} ms (median of 15), second {w:.1f} ms")
