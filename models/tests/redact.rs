//! Redaction corpus: realistic ops text with exact expected output, text
//! that must pass through untouched, idempotence, counts and configuration.
//!
//! Every secret here is fake. Provider-format tokens are assembled with
//! `concat!` so that secret scanners (and push protection) looking at this
//! file do not mistake the fixtures for leaked credentials.
#![allow(clippy::unwrap_used)]

use models::redact::{RedactError, RedactionConfig, Redactor};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

macro_rules! ghp {
    () => {
        concat!("gh", "p_", "1A2b3C4d5E6f7G8h9I0jKlMnOpQrStUvWxYz")
    };
}
macro_rules! ghs {
    () => {
        concat!("gh", "s_", "9Z8y7X6w5V4u3T2s1R0qPoNmLkJiHgFeDcBa")
    };
}
macro_rules! github_pat {
    () => {
        concat!(
            "github",
            "_pat_",
            "11AAAAAAA0FakeFakeFake_0123456789abcdefFAKEfakeFAKEfake0123456789ABCDEFGHIJ"
        )
    };
}
macro_rules! glpat {
    () => {
        concat!("gl", "pat-", "FAKEfake0123456789ab")
    };
}
macro_rules! slack_bot {
    () => {
        concat!(
            "xo",
            "xb-",
            "000000000000-0000000000000-FAKEfakeFAKEfakeFAKEfake"
        )
    };
}
macro_rules! slack_hook_path {
    () => {
        concat!("T000", "00000/B00000000/", "XXXXXXXXXXXXXXXXXXXXXXXX")
    };
}
macro_rules! openai {
    () => {
        concat!("sk-", "proj-", "FAKE0abc1DEF2ghi3JKL4mno5PQR6stu7VWX8yz9")
    };
}
macro_rules! anthropic {
    () => {
        concat!(
            "sk-",
            "ant-api03-",
            "FAKE0abc1DEF2ghi3JKL4mno5PQR6stu7VWX8yz9-AA"
        )
    };
}
macro_rules! google {
    () => {
        concat!("AI", "za", "SyFAKE0abc1DEF2ghi3JKL4mno5PQR6stu7")
    };
}
macro_rules! stripe_sk {
    () => {
        concat!("sk", "_live_", "FAKE0000abcdEFGH1111ijkl")
    };
}
macro_rules! stripe_rk {
    () => {
        concat!("rk", "_live_", "FAKE2222mnopQRST3333uvwx")
    };
}
macro_rules! npm {
    () => {
        concat!("np", "m_", "FAKE0abc1DEF2ghi3JKL4mno5PQR6stu7VWX")
    };
}
macro_rules! vault {
    () => {
        concat!("hv", "s.", "CAESIFAKEfakeFAKEfake0123456789abcdEFGH")
    };
}
macro_rules! jwt {
    () => {
        concat!(
            "eyJhbGciOiJSUzI1NiIsImtpZCI6IkZBS0UifQ",
            ".eyJpc3MiOiJrdWJlcm5ldGVzL3NlcnZpY2VhY2NvdW50In0",
            ".c2lnbmF0dXJlLWZha2UtZm9yLXRlc3Rz"
        )
    };
}

/// One corpus entry: where the text comes from, the text, and exactly what
/// must leave the process.
struct Case {
    name: &'static str,
    input: &'static str,
    expected: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "env dump with AWS credentials",
        input: "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\nAWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\nAWS_REGION=us-east-1\n",
        expected: "AWS_ACCESS_KEY_ID=[REDACTED:aws_access_key]\nAWS_SECRET_ACCESS_KEY=[REDACTED:aws_secret_key]\nAWS_REGION=us-east-1\n",
    },
    Case {
        name: "~/.aws/credentials ini",
        input: "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\nregion = eu-west-1\n",
        expected: "[default]\naws_access_key_id = [REDACTED:aws_access_key]\naws_secret_access_key = [REDACTED:aws_secret_key]\nregion = eu-west-1\n",
    },
    Case {
        name: "aws sts assume-role JSON",
        input: r#"{
    "Credentials": {
        "AccessKeyId": "ASIAIOSFODNN7EXAMPLE",
        "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "SessionToken": "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD6EXAMPLE",
        "Expiration": "2024-05-01T12:00:00Z"
    }
}"#,
        expected: r#"{
    "Credentials": {
        "AccessKeyId": "[REDACTED:aws_access_key]",
        "SecretAccessKey": "[REDACTED:aws_secret_key]",
        "SessionToken": "[REDACTED:token]",
        "Expiration": "2024-05-01T12:00:00Z"
    }
}"#,
    },
    Case {
        name: "S3 error log with access key id",
        input: "2024-05-01T12:00:00Z ERROR s3 upload failed: InvalidAccessKeyId (AccessKeyId=AKIAIOSFODNN7EXAMPLE, bucket=prod-backups, request_id=4442587FB7D0A2F9)",
        expected: "2024-05-01T12:00:00Z ERROR s3 upload failed: InvalidAccessKeyId (AccessKeyId=[REDACTED:aws_access_key], bucket=prod-backups, request_id=4442587FB7D0A2F9)",
    },
    Case {
        name: "terraform apply output",
        input: "aws_iam_user.ci: Creation complete after 1s [id=ci]\naws_iam_access_key.ci: Creation complete after 2s [id=AKIAIOSFODNN7EXAMPLE]\n\nApply complete! Resources: 2 added, 0 changed, 0 destroyed.",
        expected: "aws_iam_user.ci: Creation complete after 1s [id=ci]\naws_iam_access_key.ci: Creation complete after 2s [id=[REDACTED:aws_access_key]]\n\nApply complete! Resources: 2 added, 0 changed, 0 destroyed.",
    },
    Case {
        name: "terraform HCL with a literal password",
        input: "resource \"aws_db_instance\" \"main\" {\n  engine   = \"postgres\"\n  username = \"app\"\n  password = \"S3cr3t-Pa55\"\n}\n",
        expected: "resource \"aws_db_instance\" \"main\" {\n  engine   = \"postgres\"\n  username = \"app\"\n  password = \"[REDACTED:password]\"\n}\n",
    },
    Case {
        name: "git remote with GitHub app token",
        input: concat!(
            "fatal: unable to access 'https://x-access-token:",
            ghs!(),
            "@github.com/acme/api.git/': The requested URL returned error: 403"
        ),
        expected: "fatal: unable to access 'https://x-access-token:[REDACTED:github_token]@github.com/acme/api.git/': The requested URL returned error: 403",
    },
    Case {
        name: "GitHub tokens in CI env",
        input: concat!(
            "GITHUB_TOKEN=",
            ghp!(),
            "\nexport GH_TOKEN=",
            github_pat!(),
            "\nGITHUB_SHA=9fceb02d0ae598e95dc970b74767f19372d61af8\n"
        ),
        expected: "GITHUB_TOKEN=[REDACTED:github_token]\nexport GH_TOKEN=[REDACTED:github_token]\nGITHUB_SHA=9fceb02d0ae598e95dc970b74767f19372d61af8\n",
    },
    Case {
        name: "GitLab token in clone URL",
        input: concat!(
            "+ git clone https://oauth2:",
            glpat!(),
            "@gitlab.example.com/infra/terraform.git"
        ),
        expected: "+ git clone https://oauth2:[REDACTED:gitlab_token]@gitlab.example.com/infra/terraform.git",
    },
    Case {
        name: "Slack bot token in YAML",
        input: concat!(
            "notifications:\n  slack:\n    bot_token: ",
            slack_bot!(),
            "\n    channel: \"#alerts-prod\"\n"
        ),
        expected: "notifications:\n  slack:\n    bot_token: [REDACTED:slack_token]\n    channel: \"#alerts-prod\"\n",
    },
    Case {
        name: "Alertmanager Slack webhook",
        input: concat!(
            "receivers:\n- name: oncall\n  slack_configs:\n  - api_url: https://hooks.slack.com/services/",
            slack_hook_path!(),
            "\n    send_resolved: true\n"
        ),
        expected: "receivers:\n- name: oncall\n  slack_configs:\n  - api_url: https://hooks.slack.com/services/[REDACTED:slack_webhook]\n    send_resolved: true\n",
    },
    Case {
        name: "OpenAI key in .env",
        input: concat!("OPENAI_API_KEY=", openai!(), "\nOPENAI_MODEL=gpt-4o-mini\n"),
        expected: "OPENAI_API_KEY=[REDACTED:openai_key]\nOPENAI_MODEL=gpt-4o-mini\n",
    },
    Case {
        name: "curl to Anthropic with x-api-key header",
        input: concat!(
            "curl https://api.anthropic.com/v1/messages -H \"x-api-key: ",
            anthropic!(),
            "\" -H \"anthropic-version: 2023-06-01\""
        ),
        expected: "curl https://api.anthropic.com/v1/messages -H \"x-api-key: [REDACTED:anthropic_key]\" -H \"anthropic-version: 2023-06-01\"",
    },
    Case {
        name: "curl with an opaque API key header",
        input: "curl -sf -H 'X-Api-Key: 7c9e6679f4c0d1a2b3c4' https://status.example.com/api/v2/components",
        expected: "curl -sf -H 'X-Api-Key: [REDACTED:secret]' https://status.example.com/api/v2/components",
    },
    Case {
        name: "Google API key in request log",
        input: concat!(
            "GET https://maps.googleapis.com/maps/api/geocode/json?address=Berlin&key=",
            google!(),
            " 403 12ms"
        ),
        expected: "GET https://maps.googleapis.com/maps/api/geocode/json?address=Berlin&key=[REDACTED:google_api_key] 403 12ms",
    },
    Case {
        name: "Stripe keys in shell profile and JSON",
        input: concat!(
            "export STRIPE_API_KEY=\"",
            stripe_sk!(),
            "\"\n{\"restricted\": \"",
            stripe_rk!(),
            "\"}"
        ),
        expected: "export STRIPE_API_KEY=\"[REDACTED:stripe_key]\"\n{\"restricted\": \"[REDACTED:stripe_key]\"}",
    },
    Case {
        name: "kubectl describe service-account secret",
        input: concat!(
            "Name:         default-token-x7k2p\nNamespace:    default\nType:  kubernetes.io/service-account-token\n\nData\n====\nca.crt:     1099 bytes\nnamespace:  7 bytes\ntoken:      ",
            jwt!(),
            "\n"
        ),
        expected: "Name:         default-token-x7k2p\nNamespace:    default\nType:  kubernetes.io/service-account-token\n\nData\n====\nca.crt:     1099 bytes\nnamespace:  7 bytes\ntoken:      [REDACTED:jwt]\n",
    },
    Case {
        name: "curl with bearer token",
        input: "curl -sS -H \"Authorization: Bearer 9f8e7d6c5b4a39281706f5e4d3c2b1a0\" https://api.internal.example.com/v1/incidents?limit=5",
        expected: "curl -sS -H \"Authorization: Bearer [REDACTED:bearer_token]\" https://api.internal.example.com/v1/incidents?limit=5",
    },
    Case {
        name: "curl with a JWT bearer",
        input: concat!(
            "curl -H 'Authorization: Bearer ",
            jwt!(),
            "' https://kubernetes.default.svc/api"
        ),
        expected: "curl -H 'Authorization: Bearer [REDACTED:jwt]' https://kubernetes.default.svc/api",
    },
    Case {
        name: "curl with basic auth header",
        input: "curl -H 'Authorization: Basic YWRtaW46aHVudGVyMg==' http://grafana.monitoring.svc:3000/api/health",
        expected: "curl -H 'Authorization: Basic [REDACTED:basic_auth]' http://grafana.monitoring.svc:3000/api/health",
    },
    Case {
        name: "curl -u user:password",
        input: "curl -fsS -u admin:hunter2 http://grafana.monitoring.svc:3000/api/dashboards/uid/api-latency",
        expected: "curl -fsS -u admin:[REDACTED:password] http://grafana.monitoring.svc:3000/api/dashboards/uid/api-latency",
    },
    Case {
        name: "Go http.Header dump",
        input: "DEBUG outgoing request headers: map[Accept:[application/json] Authorization:[Bearer 0a1b2c3d4e5f60718293a4b5c6d7e8f9] User-Agent:[cerebro/0.1]]",
        expected: "DEBUG outgoing request headers: map[Accept:[application/json] Authorization:[Bearer [REDACTED:bearer_token]] User-Agent:[cerebro/0.1]]",
    },
    Case {
        name: "HTTP request dump",
        input: "POST /api/v1/alerts HTTP/1.1\nHost: alertmanager:9093\nAuthorization: Bearer 5b0f8a7e6d5c4b3a29181706f5e4d3c2\nContent-Type: application/json\n",
        expected: "POST /api/v1/alerts HTTP/1.1\nHost: alertmanager:9093\nAuthorization: Bearer [REDACTED:bearer_token]\nContent-Type: application/json\n",
    },
    Case {
        name: "postgres URL with password",
        input: "DATABASE_URL=postgres://app:Sup3rS3cret@db.prod.internal:5432/orders?sslmode=require",
        expected: "DATABASE_URL=postgres://app:[REDACTED:password]@db.prod.internal:5432/orders?sslmode=require",
    },
    Case {
        name: "redis URL without user, mongodb+srv URL",
        input: "cache: redis://:r3d1sPass@redis-master.cache.svc.cluster.local:6379/0\nreports: mongodb+srv://svc_reporting:Xy9%40pq@cluster0.ab1cd.mongodb.net/reports?retryWrites=true",
        expected: "cache: redis://:[REDACTED:password]@redis-master.cache.svc.cluster.local:6379/0\nreports: mongodb+srv://svc_reporting:[REDACTED:password]@cluster0.ab1cd.mongodb.net/reports?retryWrites=true",
    },
    Case {
        name: "JDBC URL with password query parameter",
        input: "HikariPool-1 - Exception during pool initialization: jdbc:mysql://orders-db:3306/orders?user=orders&password=hunter2&useSSL=true",
        expected: "HikariPool-1 - Exception during pool initialization: jdbc:mysql://orders-db:3306/orders?user=orders&password=[REDACTED:password]&useSSL=true",
    },
    Case {
        name: "ADO.NET connection string with spaces in the password",
        input: "Server=tcp:sql-prod.database.windows.net,1433;Initial Catalog=orders;User ID=app;Password=P@ss w0rd!;Encrypt=True;",
        expected: "Server=tcp:sql-prod.database.windows.net,1433;Initial Catalog=orders;User ID=app;Password=[REDACTED:password];Encrypt=True;",
    },
    Case {
        name: "Azure storage connection string",
        input: "AZURE_STORAGE_CONNECTION_STRING=DefaultEndpointsProtocol=https;AccountName=stprodlogs;AccountKey=Zm9vYmFyYmF6cXV4ZmFrZWtleWZvcnRlc3RzMTIzNDU2Nzg5MA==;EndpointSuffix=core.windows.net",
        expected: "AZURE_STORAGE_CONNECTION_STRING=DefaultEndpointsProtocol=https;AccountName=stprodlogs;AccountKey=[REDACTED:azure_key];EndpointSuffix=core.windows.net",
    },
    Case {
        name: "Azure SAS URL",
        input: "azcopy: GET https://stprodlogs.blob.core.windows.net/logs/app.log?sv=2022-11-02&ss=b&sp=r&se=2024-06-01T00:00:00Z&sig=AbCdEf0123456789%2BgHiJkLmNoPqRsTuVwXyZ%3D 403",
        expected: "azcopy: GET https://stprodlogs.blob.core.windows.net/logs/app.log?sv=2022-11-02&ss=b&sp=r&se=2024-06-01T00:00:00Z&sig=[REDACTED:azure_sas] 403",
    },
    Case {
        name: "application YAML config",
        input: "database:\n  host: db.prod.internal\n  port: 5432\n  username: app\n  password: \"correct horse battery staple\"\n  pool_size: 20\n",
        expected: "database:\n  host: db.prod.internal\n  port: 5432\n  username: app\n  password: \"[REDACTED:password]\"\n  pool_size: 20\n",
    },
    Case {
        name: "unquoted YAML value with a trailing comment",
        input: "smtp:\n  user: alerts\n  password: p@ss w0rd  # rotate quarterly\n",
        expected: "smtp:\n  user: alerts\n  password: [REDACTED:password]  # rotate quarterly\n",
    },
    Case {
        name: "JSON config",
        input: r#"{"db":{"user":"app","password":"hunter2"},"api_key":"c2VjcmV0LWFwaS1rZXktMTIz","timeout_ms":500}"#,
        expected: r#"{"db":{"user":"app","password":"[REDACTED:password]"},"api_key":"[REDACTED:secret]","timeout_ms":500}"#,
    },
    Case {
        name: "JSON log with an escaped JSON body",
        input: r#"{"level":"error","msg":"login failed","body":"{\"username\":\"alice\",\"password\":\"hunter2\"}"}"#,
        expected: r#"{"level":"error","msg":"login failed","body":"{\"username\":\"alice\",\"password\":\"[REDACTED:password]\"}"}"#,
    },
    Case {
        name: "env dump",
        input: "HOME=/root\nPGPASSWORD=pg-Secr3t\nREDIS_PASSWORD=r3d1s\nLOG_LEVEL=info\nPWD=/srv/app\n",
        expected: "HOME=/root\nPGPASSWORD=[REDACTED:password]\nREDIS_PASSWORD=[REDACTED:password]\nLOG_LEVEL=info\nPWD=/srv/app\n",
    },
    Case {
        name: "docker compose environment",
        input: "services:\n  db:\n    image: postgres:16\n    environment:\n      - POSTGRES_USER=app\n      - POSTGRES_PASSWORD=hunter2\n      POSTGRES_DB: orders\n",
        expected: "services:\n  db:\n    image: postgres:16\n    environment:\n      - POSTGRES_USER=app\n      - POSTGRES_PASSWORD=[REDACTED:password]\n      POSTGRES_DB: orders\n",
    },
    Case {
        name: "CLI flags",
        input: "docker login --username ci --password s3cr3tT0ken registry.example.com\nvault login -method=userpass username=ops password=hunter2\n",
        expected: "docker login --username ci --password [REDACTED:password] registry.example.com\nvault login -method=userpass username=ops password=[REDACTED:password]\n",
    },
    Case {
        name: "mysql -p and openssl pass:",
        input: "mysql -h orders-db -u root -phunter2 orders\nopenssl rsa -in server.key -passin pass:hunter2 -out plain.key\n",
        expected: "mysql -h orders-db -u root -p[REDACTED:password] orders\nopenssl rsa -in server.key -passin pass:[REDACTED:password] -out plain.key\n",
    },
    Case {
        name: "kubectl create secret from literals",
        input: "kubectl -n prod create secret generic db --from-literal=username=app --from-literal=password='S3cr3t!'",
        expected: "kubectl -n prod create secret generic db --from-literal=username=app --from-literal=password='[REDACTED:password]'",
    },
    Case {
        name: "helm --set",
        input: "helm upgrade api ./chart --set image.tag=v1.4.2 --set db.password=hunter2 --set replicaCount=3",
        expected: "helm upgrade api ./chart --set image.tag=v1.4.2 --set db.password=[REDACTED:password] --set replicaCount=3",
    },
    Case {
        name: "pod spec env",
        input: "    env:\n    - name: DB_HOST\n      value: db.prod.internal\n    - name: DB_PASSWORD\n      value: hunter2\n    - name: API_TOKEN\n      valueFrom:\n        secretKeyRef:\n          name: api\n          key: token\n",
        expected: "    env:\n    - name: DB_HOST\n      value: db.prod.internal\n    - name: DB_PASSWORD\n      value: [REDACTED:password]\n    - name: API_TOKEN\n      valueFrom:\n        secretKeyRef:\n          name: api\n          key: token\n",
    },
    Case {
        name: "ECS task definition environment",
        input: r#""environment": [{"name": "DB_PASSWORD", "value": "hunter2"}, {"name": "LOG_LEVEL", "value": "info"}]"#,
        expected: r#""environment": [{"name": "DB_PASSWORD", "value": "[REDACTED:password]"}, {"name": "LOG_LEVEL", "value": "info"}]"#,
    },
    Case {
        name: "kubectl describe pod environment",
        input: "    Environment:\n      DB_HOST:      db.prod.internal\n      DB_PASSWORD:  hunter2\n      API_TOKEN:    <set to the key 'token' in secret 'api'>  Optional: false\n",
        expected: "    Environment:\n      DB_HOST:      db.prod.internal\n      DB_PASSWORD:  [REDACTED:password]\n      API_TOKEN:    <set to the key 'token' in secret 'api'>  Optional: false\n",
    },
    Case {
        name: "kubectl get secret -o yaml",
        input: "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db-credentials\ntype: Opaque\ndata:\n  username: YXBw\n  password: aHVudGVyMg==\n",
        expected: "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db-credentials\ntype: Opaque\ndata:\n  username: YXBw\n  password: [REDACTED:password]\n",
    },
    Case {
        name: "kubeconfig user",
        input: "users:\n- name: ci\n  user:\n    client-certificate-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t\n    client-key-data: LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQ==\n    token: 3f2a9c1e-8b7d-4e6f-a5b4-c3d2e1f0a9b8\n",
        expected: "users:\n- name: ci\n  user:\n    client-certificate-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t\n    client-key-data: [REDACTED:secret]\n    token: [REDACTED:token]\n",
    },
    Case {
        name: "PEM private key in a log",
        input: "loading signing key: -----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAz2Xz9FAKEfakeFAKEfakeFAKEfakeFAKEfakeFAKEfakeFAKEfa\nc2lnbmF0dXJlLWZha2UtZm9yLXRlc3RzLW9ubHktbm90LWEtcmVhbC1rZXk=\n-----END RSA PRIVATE KEY-----\nkey loaded in 3ms\n",
        expected: "loading signing key: [REDACTED:private_key]\nkey loaded in 3ms\n",
    },
    Case {
        name: "GCP service account JSON",
        input: r#"{"type": "service_account", "project_id": "acme-prod", "private_key_id": "0123456789abcdef0123456789abcdef01234567", "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCFAKEFAKE\n-----END PRIVATE KEY-----\n", "client_email": "ci-deployer@acme-prod.iam.gserviceaccount.com"}"#,
        expected: r#"{"type": "service_account", "project_id": "acme-prod", "private_key_id": "0123456789abcdef0123456789abcdef01234567", "private_key": "[REDACTED:private_key]\n", "client_email": "[REDACTED:email]"}"#,
    },
    Case {
        name: "truncated OpenSSH private key",
        input: "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\nQyNTUxOQAAACDFAKEfakeFAKEfakeFAKEfakeFAKEfake [message truncated]",
        expected: "[REDACTED:private_key] [message truncated]",
    },
    Case {
        name: "alert annotation with an owner email",
        input: "summary: Disk almost full on db-7 (owner: alice.smith@example.com, escalate to sre-oncall@example.com)",
        expected: "summary: Disk almost full on db-7 (owner: [REDACTED:email], escalate to [REDACTED:email])",
    },
    Case {
        name: "Alertmanager payload with credentials in a probe URL",
        input: r#"{"status":"firing","labels":{"alertname":"ProbeFailed","instance":"status.example.com"},"annotations":{"description":"probe failed for https://monitor:pr0be-Pass@status.example.com/health","runbook_url":"https://runbooks.example.com/probe"}}"#,
        expected: r#"{"status":"firing","labels":{"alertname":"ProbeFailed","instance":"status.example.com"},"annotations":{"description":"probe failed for https://monitor:[REDACTED:password]@status.example.com/health","runbook_url":"https://runbooks.example.com/probe"}}"#,
    },
    Case {
        name: "Python traceback with the source line",
        input: "Traceback (most recent call last):\n  File \"/app/db.py\", line 14, in connect\n    conn = psycopg2.connect(host=\"db\", user=\"app\", password=\"hunter2\")\npsycopg2.OperationalError: connection to server at \"db\" (10.0.3.7), port 5432 failed\n",
        expected: "Traceback (most recent call last):\n  File \"/app/db.py\", line 14, in connect\n    conn = psycopg2.connect(host=\"db\", user=\"app\", password=\"[REDACTED:password]\")\npsycopg2.OperationalError: connection to server at \"db\" (10.0.3.7), port 5432 failed\n",
    },
    Case {
        name: "logfmt line",
        input: "ts=2024-05-01T10:00:00Z level=warn msg=\"retrying login\" user=svc-backup password=Tr0ub4dor&3 attempt=2 token_count=5",
        expected: "ts=2024-05-01T10:00:00Z level=warn msg=\"retrying login\" user=svc-backup password=[REDACTED:password] attempt=2 token_count=5",
    },
    Case {
        name: "Go %+v struct",
        input: "level=error msg=\"connect failed\" cfg=\"{Host:db.prod.internal Port:5432 User:app Password:hunter2 SSLMode:require}\"",
        expected: "level=error msg=\"connect failed\" cfg=\"{Host:db.prod.internal Port:5432 User:app Password:[REDACTED:password] SSLMode:require}\"",
    },
    Case {
        name: "Maven settings.xml",
        input: "<server><id>nexus</id><username>deploy</username><password>d3pl0y-Pass</password></server>",
        expected: "<server><id>nexus</id><username>deploy</username><password>[REDACTED:password]</password></server>",
    },
    Case {
        name: "Java properties",
        input: "spring.datasource.url=jdbc:postgresql://db:5432/app\nspring.datasource.username=app\nspring.datasource.password=hunter2\n",
        expected: "spring.datasource.url=jdbc:postgresql://db:5432/app\nspring.datasource.username=app\nspring.datasource.password=[REDACTED:password]\n",
    },
    Case {
        name: "Python dict repr and Ruby hash",
        input: "{'user': 'app', 'password': 'hunter2', 'host': 'db'}\n{\"client_secret\" => \"9a8b7c6d5e4f\"}",
        expected: "{'user': 'app', 'password': '[REDACTED:password]', 'host': 'db'}\n{\"client_secret\" => \"[REDACTED:secret]\"}",
    },
    Case {
        name: "docker config.json",
        input: r#"{"auths":{"registry.example.com":{"auth":"Y2k6c3VwZXJzZWNyZXQ="}}}"#,
        expected: r#"{"auths":{"registry.example.com":{"auth":"[REDACTED:basic_auth]"}}}"#,
    },
    Case {
        name: ".npmrc",
        input: concat!(
            "registry=https://registry.npmjs.org/\n//registry.npmjs.org/:_authToken=",
            npm!(),
            "\n"
        ),
        expected: "registry=https://registry.npmjs.org/\n//registry.npmjs.org/:_authToken=[REDACTED:npm_token]\n",
    },
    Case {
        name: "Vault token header",
        input: concat!("X-Vault-Token: ", vault!(), "\nX-Vault-Namespace: ops\n"),
        expected: "X-Vault-Token: [REDACTED:vault_token]\nX-Vault-Namespace: ops\n",
    },
    Case {
        name: "bearer token mentioned in a log message",
        input: "token refresh ok, new credentials: Bearer 1a2b3c4d5e6f7a8b9c0d, expires_in=3600",
        expected: "token refresh ok, new credentials: Bearer [REDACTED:bearer_token], expires_in=3600",
    },
    Case {
        name: "specific format inside a key=value keeps the specific kind",
        input: concat!("password=", ghp!(), "!!tail"),
        expected: "password=[REDACTED:github_token][REDACTED:password]",
    },
    Case {
        name: "AWS credentials CSV download",
        input: "User name,Password,Access key ID,Secret access key,Console login link\nci,,AKIAIOSFODNN7EXAMPLE,wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY,https://123456789012.signin.aws.amazon.com/console\n",
        expected: "User name,Password,Access key ID,Secret access key,Console login link\nci,,[REDACTED:aws_access_key],[REDACTED:aws_secret_key],https://123456789012.signin.aws.amazon.com/console\n",
    },
    Case {
        name: ".NET appSettings",
        input: "<appSettings>\n  <add key=\"Environment\" value=\"prod\" />\n  <add key=\"SmtpPassword\" value=\"m@il-Pass1\" />\n</appSettings>",
        expected: "<appSettings>\n  <add key=\"Environment\" value=\"prod\" />\n  <add key=\"SmtpPassword\" value=\"[REDACTED:password]\" />\n</appSettings>",
    },
    Case {
        name: "cookies in a curl trace",
        input: "> GET /admin HTTP/1.1\n> Cookie: sessionid=8f14e45fceea167a5a36dedd4bea2543; csrftoken=c4ca4238a0b9\n< HTTP/1.1 302 Found\n< Set-Cookie: sessionid=c9f0f895fb98ab9159f51fd0297e236d; Path=/; HttpOnly; Secure\n",
        expected: "> GET /admin HTTP/1.1\n> Cookie: [REDACTED:cookie]\n< HTTP/1.1 302 Found\n< Set-Cookie: sessionid=[REDACTED:cookie]; Path=/; HttpOnly; Secure\n",
    },
    Case {
        name: "CRLF headers",
        input: "GET / HTTP/1.1\r\nX-Auth-Token: 0f1e2d3c4b5a69788796a5b4\r\nAccept: */*\r\n",
        expected: "GET / HTTP/1.1\r\nX-Auth-Token: [REDACTED:token]\r\nAccept: */*\r\n",
    },
];

/// Ordinary ops text that must leave the redactor byte for byte.
const UNCHANGED: &[&str] = &[
    "NAME                          READY   STATUS    RESTARTS   AGE\napi-7d9f8b6c5d-x2x9k          1/1     Running   0          3d4h\nsk-payments-6b8f9c7d5-q8w2e   1/1     Running   2          12m",
    "deploy 3f2a9c1e-8b7d-4e6f-a5b4-c3d2e1f0a9b8 rolled out commit 9fceb02d0ae598e95dc970b74767f19372d61af8 in 2m30s",
    "password_reset_total{job=\"auth\",instance=\"10.0.3.7:9100\"} 12",
    "sum(rate(password_reset_total[5m])) by (job) > 0.5",
    "llm_usage token_count=5 max_tokens=512 prompt_tokens: 1203 completion_tokens=88",
    "the token bucket is empty; requests are being throttled",
    "2024-05-01T10:00:00Z WARN auth: invalid token: signature has expired",
    "Password must be at least 12 characters and contain a digit",
    "org.postgresql.util.PSQLException: FATAL: password authentication failed for user \"orders\"\n\tat org.postgresql.core.v3.ConnectionFactoryImpl.doAuthentication(ConnectionFactoryImpl.java:693)",
    "java.sql.SQLException: Access denied for user 'app'@'10.0.0.5' (using password: YES)",
    "      volumes:\n      - name: tls\n        secret:\n          secretName: api-tls\n      - name: creds\n        secret: {secretName: db-creds}\n",
    "env:\n- name: API_TOKEN\n  valueFrom:\n    secretKeyRef:\n      name: api\n      key: token\nexistingSecret: db-credentials\nkind: Secret\n",
    "mounting /var/run/secrets/kubernetes.io/serviceaccount/token --token-file=/etc/vault/token",
    "https://grafana.example.com/d/abc123/api-latency?orgId=1&from=now-6h&to=now",
    "git@github.com:acme/api.git",
    "image: registry.example.com/api@sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "  + resource \"aws_db_instance\" \"main\" {\n      + password = (sensitive value)\n      + username = \"app\"\n    }\nOutputs:\ndb_password = <sensitive>",
    "{\"eos_token\": \"</s>\", \"bos_token\": \"<s>\", \"pad_token\": null, \"unk_token\": \"<unk>\"}",
    "openai.AuthenticationError: Error code: 401 - {'error': {'message': 'Incorrect API key provided: sk-abc12***************************xyz9.'}}",
    "docker login --username ci --password-stdin registry.example.com",
    "password: ${DB_PASSWORD}\ntoken: \"{{ .Values.api.token }}\"\napi_key: <your-api-key>\nsecret: $(cat /run/secrets/app)\n",
    "password=**** token=[FILTERED] secret=<redacted> api_key=REDACTED",
    "Data\n====\npassword:  16 bytes\nusername:  3 bytes\n",
    "dial tcp 10.0.3.7:5432: connect: connection refused",
    "npm ERR! 404 @acme/ui-kit@1.2.3 is not in the npm registry",
    "WWW-Authenticate: Bearer realm=\"api\", error=\"invalid_token\"",
    "Authorization: failed for service account ci",
    "def connect(host, password=None):\n    conn = psycopg2.connect(password=os.environ[\"DB_PASSWORD\"])\n    client = Client(token=self.token, api_key=settings.api_key)",
    "{\"password\": null, \"token\": \"\", \"secret\": {\"name\": \"db\"}, \"access_token\": [\"a\", \"b\"]}",
    "request_id=4442587FB7D0A2F9 trace_id=0af7651916cd43dd8448eb211c80319c duration=1.2s p99_latency_ms=830",
    "next_token: AAAAAExampleNextPageToken123 pageToken=CiAKGjBpNDd2Nmp2Zml2cXRwYjBpOXA",
    "Events:\n  Warning  FailedMount  2m  kubelet  MountVolume.SetUp failed for volume \"creds\" : secret \"db-credentials\" not found",
    "cerebro_redactions_total{kind=\"password\"} 3\ncerebro_redactions_total{kind=\"github_token\"} 1",
    "[REDACTED:password] was already removed upstream",
    "Error: secret:prod/db-creds not found (ref secret:kube-system/bootstrap-token-abcdef)",
    "9fceb02 fix: never log password= or token= in the auth middleware",
    "tokenizer: ./models/tokenizer.json\npassword_hash: $2b$12$KIXQ1sB0Wd0Z2Y9F7/3EKe9sVqNq0h8ZmQ5Yq4xFAKEhash",
];

fn redactor() -> Redactor {
    Redactor::new(&RedactionConfig::default()).unwrap()
}

#[test]
fn corpus_is_large_enough() {
    assert!(CASES.len() >= 40, "only {} corpus cases", CASES.len());
}

#[test]
fn corpus_matches_expected_output() {
    let r = redactor();
    let failures: Vec<String> = CASES
        .iter()
        .filter_map(|case| {
            let got = r.redact(case.input).text;
            (got != case.expected).then(|| {
                format!(
                    "--- {}\nexpected: {:?}\n     got: {:?}",
                    case.name, case.expected, got
                )
            })
        })
        .collect();
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn ordinary_text_passes_through_unchanged() {
    let r = redactor();
    let failures: Vec<String> = UNCHANGED
        .iter()
        .filter_map(|text| {
            let out = r.redact(text);
            (out.text != *text || !out.is_clean())
                .then(|| format!("input: {text:?}\n  got: {:?} {:?}", out.text, out.counts))
        })
        .collect();
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn redaction_is_idempotent() {
    let r = redactor();
    for text in CASES
        .iter()
        .flat_map(|c| [c.input, c.expected])
        .chain(UNCHANGED.iter().copied())
    {
        let once = r.redact(text);
        let twice = r.redact(&once.text);
        assert_eq!(twice.text, once.text, "not idempotent for {text:?}");
        assert!(twice.is_clean(), "second pass counted {:?}", twice.counts);
    }
}

#[test]
fn idempotent_on_the_whole_corpus_concatenated() {
    let r = redactor();
    let all: String = CASES
        .iter()
        .map(|c| c.input)
        .chain(UNCHANGED.iter().copied())
        .collect::<Vec<_>>()
        .join("\n");
    let once = r.redact(&all);
    assert_eq!(r.redact(&once.text).text, once.text);
    let expected: String = CASES
        .iter()
        .map(|c| c.expected)
        .chain(UNCHANGED.iter().copied())
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(once.text, expected);
}

/// Joining any two corpus entries must stay idempotent: placeholders next
/// to new text must not let a second pass find more.
#[test]
fn idempotent_across_joined_cases() {
    let r = redactor();
    let texts: Vec<&str> = CASES
        .iter()
        .map(|c| c.input)
        .chain(UNCHANGED.iter().copied())
        .collect();
    for a in &texts {
        for b in texts.iter().step_by(3) {
            for sep in ["", " ", ";", "&"] {
                let joined = format!("{a}{sep}{b}");
                let once = r.redact(&joined);
                assert_eq!(r.redact(&once.text).text, once.text, "input {joined:?}");
            }
        }
    }
}

/// Random strings of secret-shaped fragments, with extra patterns and IPs
/// switched on: redacting the output again never changes it.
#[test]
fn idempotent_on_generated_text() {
    const FRAGMENTS: &[&str] = &[
        "password",
        "token",
        "secret",
        "api_key",
        "=",
        ":",
        ": ",
        " ",
        "\n",
        "\r\n",
        "\"",
        "'",
        "\\\"",
        "[REDACTED:password]",
        "[",
        "]",
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "@",
        "example.com",
        "https://",
        "u",
        "host",
        ";",
        "&",
        ",",
        "{",
        "}",
        "(",
        ")",
        "-----BEGIN PRIVATE KEY-----",
        "-----END PRIVATE KEY-----",
        "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
        "Bearer ",
        "Authorization",
        "eyJhbGciOiJIUzI1NiJ9",
        ".",
        "eyJzdWIiOiIxMjM0In0",
        "abc123",
        "--",
        "-H ",
        "name",
        "value",
        "<",
        ">",
        "$",
        "#",
        "*",
        "Cookie",
        "curl -u a:b ",
        "mysql -pX ",
        ";Password=",
        "ü",
        "\\n",
        "sk-",
        "ABCdef1234567890XYZabc",
        "pass:",
        "Password:",
        "10.0.0.1",
    ];
    let config = RedactionConfig {
        ip_addresses: true,
        extra_patterns: vec!["REDACT".to_owned(), "[0-9]{3}".to_owned()],
        ..RedactionConfig::default()
    };
    let r = Redactor::new(&config).unwrap();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..5_000 {
        let len = 1 + next() % 14;
        let text: String = (0..len)
            .map(|_| FRAGMENTS[usize::try_from(next() % FRAGMENTS.len() as u64).unwrap()])
            .collect();
        let once = r.redact(&text);
        assert_eq!(r.redact(&once.text).text, once.text, "input {text:?}");
    }
}

#[test]
fn counts_are_per_kind() {
    let input = concat!(
        "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\n",
        "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
        "DATABASE_URL=postgres://app:pw1@db:5432/x\n",
        "REPLICA_URL=postgres://app:pw2@db-replica:5432/x\n",
        "GITHUB_TOKEN=",
        ghp!(),
        "\nowner: alice@example.com\n",
        "REDIS_PASSWORD=r3d1s\n",
    );
    let out = redactor().redact(input);
    let expected: BTreeMap<&'static str, usize> = [
        ("aws_access_key", 1),
        ("aws_secret_key", 1),
        ("email", 1),
        ("github_token", 1),
        ("password", 3),
    ]
    .into_iter()
    .collect();
    assert_eq!(out.counts, expected);
    assert_eq!(out.total(), 7);
    assert_eq!(out.text.matches("[REDACTED:").count(), 7);
}

#[test]
fn counts_match_placeholders_across_the_corpus() {
    let r = redactor();
    for case in CASES {
        let out = r.redact(case.input);
        for (kind, n) in &out.counts {
            let placeholder = format!("[REDACTED:{kind}]");
            let already = case.input.matches(placeholder.as_str()).count();
            assert_eq!(
                out.text.matches(placeholder.as_str()).count() - already,
                *n,
                "{}: count for {kind}",
                case.name
            );
        }
        assert!(!out.is_clean(), "{}: nothing redacted", case.name);
    }
}

#[test]
fn emails_can_be_kept() {
    let config = RedactionConfig {
        emails: false,
        ..RedactionConfig::default()
    };
    let r = Redactor::new(&config).unwrap();
    let text = "owner: alice.smith@example.com password=hunter2";
    assert_eq!(
        r.redact(text).text,
        "owner: alice.smith@example.com password=[REDACTED:password]"
    );
}

#[test]
fn ip_addresses_only_when_configured() {
    let text = "dial tcp 10.0.3.7:5432 via postgres://app:pw@192.168.1.20:5432/x (version 1.2.3)";
    assert_eq!(
        redactor().redact(text).text,
        "dial tcp 10.0.3.7:5432 via postgres://app:[REDACTED:password]@192.168.1.20:5432/x (version 1.2.3)"
    );
    let config = RedactionConfig {
        ip_addresses: true,
        ..RedactionConfig::default()
    };
    let out = Redactor::new(&config).unwrap().redact(text);
    assert_eq!(
        out.text,
        "dial tcp [REDACTED:ipv4]:5432 via postgres://app:[REDACTED:password]@[REDACTED:ipv4]:5432/x (version 1.2.3)"
    );
    assert_eq!(out.counts.get("ipv4"), Some(&2));
}

#[test]
fn extra_patterns_replace_the_match_or_the_secret_group() {
    let config = RedactionConfig {
        extra_patterns: vec![
            r"\bCUST-[0-9]{6}\b".to_owned(),
            r"session=(?P<secret>[a-f0-9]{32})".to_owned(),
        ],
        ..RedactionConfig::default()
    };
    let r = Redactor::new(&config).unwrap();
    let out = r.redact("refund for CUST-004211 failed, session=0123456789abcdef0123456789abcdef");
    assert_eq!(
        out.text,
        "refund for [REDACTED:custom] failed, session=[REDACTED:custom]"
    );
    assert_eq!(out.counts.get("custom"), Some(&2));
    assert_eq!(r.redact(&out.text).text, out.text);
}

#[test]
fn an_extra_pattern_cannot_rewrite_placeholders() {
    let config = RedactionConfig {
        extra_patterns: vec!["REDACTED".to_owned(), "x*".to_owned()],
        ..RedactionConfig::default()
    };
    let r = Redactor::new(&config).unwrap();
    let once = r.redact("password=hunter2 REDACTED");
    assert_eq!(once.text, "password=[REDACTED:password] [REDACTED:custom]");
    assert_eq!(r.redact(&once.text).text, once.text);
}

#[test]
fn extra_keys_extend_the_key_rule() {
    let config = RedactionConfig {
        extra_keys: vec!["signature".to_owned(), "session_cookie".to_owned()],
        ..RedactionConfig::default()
    };
    let r = Redactor::new(&config).unwrap();
    assert_eq!(
        r.redact(
            "GET /o?X-Amz-Signature=9a8b7c6d5e4f3a2b1c0d&X-Amz-Expires=300 session_cookie: abc123"
        )
        .text,
        "GET /o?X-Amz-Signature=[REDACTED:secret]&X-Amz-Expires=300 session_cookie: abc123"
    );
    assert_eq!(
        r.redact("session_cookie: abc123").text,
        "session_cookie: [REDACTED:secret]"
    );
}

#[test]
fn bad_extra_pattern_names_index_and_text() {
    let config = RedactionConfig {
        extra_patterns: vec!["ok-[0-9]+".to_owned(), "token=(unclosed".to_owned()],
        ..RedactionConfig::default()
    };
    let err = Redactor::new(&config).unwrap_err();
    match &err {
        RedactError::InvalidPattern { index, pattern, .. } => {
            assert_eq!(*index, 1);
            assert_eq!(pattern, "token=(unclosed");
        }
        other => panic!("unexpected error {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains("extra_patterns[1]"), "{message}");
    assert!(message.contains("token=(unclosed"), "{message}");
}

#[test]
fn bad_extra_key_is_rejected() {
    let config = RedactionConfig {
        extra_keys: vec!["cookie".to_owned(), "pass word".to_owned()],
        ..RedactionConfig::default()
    };
    let err = Redactor::new(&config).unwrap_err();
    assert!(
        matches!(&err, RedactError::InvalidKey { index: 1, key } if key == "pass word"),
        "{err:?}"
    );
}

#[test]
fn config_defaults_and_strict_parsing() {
    let default = RedactionConfig::default();
    assert!(default.emails);
    assert!(!default.ip_addresses);
    assert!(default.extra_patterns.is_empty());
    let parsed: RedactionConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(parsed, default);
    let parsed: RedactionConfig =
        serde_json::from_str(r#"{"ip_addresses": true, "extra_patterns": ["x"]}"#).unwrap();
    assert!(parsed.emails && parsed.ip_addresses);
    assert!(serde_json::from_str::<RedactionConfig>(r#"{"email": false}"#).is_err());
    let round: RedactionConfig =
        serde_json::from_str(&serde_json::to_string(&parsed).unwrap()).unwrap();
    assert_eq!(round, parsed);
}

#[test]
fn clean_text_is_returned_as_is() {
    let out = redactor().redact("all 12 pods healthy, p99 830ms");
    assert_eq!(out.text, "all 12 pods healthy, p99 830ms");
    assert!(out.is_clean());
    assert_eq!(out.total(), 0);
    assert!(redactor().redact("").is_clean());
}

#[test]
fn non_ascii_text_is_handled() {
    let r = redactor();
    assert_eq!(
        r.redact("Störung: Passwort falsch — password=hünter2 für Benutzer müller@example.de")
            .text,
        "Störung: Passwort falsch — password=[REDACTED:password] für Benutzer [REDACTED:email]"
    );
}

#[test]
fn redactor_is_shareable() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Redactor>();
}

/// A 100 KB prompt of mixed log lines must be redacted quickly; the bound
/// is loose (debug build, shared CI box) and only catches pathologies.
#[test]
fn large_prompt_is_fast() {
    let r = redactor();
    let mut text = String::new();
    let mut i = 0;
    while text.len() < 100 * 1024 {
        let case = &CASES[i % CASES.len()];
        text.push_str(UNCHANGED[i % UNCHANGED.len()]);
        text.push('\n');
        text.push_str(case.input);
        text.push('\n');
        i += 1;
    }
    let clean: String = UNCHANGED
        .iter()
        .cycle()
        .take(400)
        .copied()
        .collect::<Vec<_>>()
        .join("\n");
    let start = Instant::now();
    let out = r.redact(&text);
    let clean_out = r.redact(&clean);
    let elapsed = start.elapsed();
    assert!(out.total() > 100);
    assert_eq!(clean_out.text, clean);
    assert!(
        elapsed < Duration::from_secs(2),
        "redacting {} + {} bytes took {elapsed:?}",
        text.len(),
        clean.len()
    );
}
