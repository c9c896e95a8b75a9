//! The issuer over real HTTP: discovery, token, JWKS verification,
//! introspection, rotation.

use fleet_test_issuer::{Client, IssuerConfig, SigningAlg, TestIssuer};
use jsonwebtoken::jwk::JwkSet;

async fn start(alg: SigningAlg, opaque: bool) -> TestIssuer {
    TestIssuer::start(IssuerConfig {
        clients: vec![Client::new("agent-a", "secret-a")],
        alg,
        opaque_tokens: opaque,
        ..IssuerConfig::default()
    })
    .await
    .expect("issuer starts")
}

async fn get_token(http: &reqwest::Client, issuer: &TestIssuer, secret: &str) -> reqwest::Response {
    http.post(format!("{}/oauth/v2/token", issuer.url()))
        .basic_auth("agent-a", Some(secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "openid")])
        .send()
        .await
        .expect("token request")
}

async fn verify_with_jwks(
    http: &reqwest::Client,
    issuer: &TestIssuer,
    token: &str,
) -> serde_json::Value {
    let disco: serde_json::Value = http
        .get(format!("{}/.well-known/openid-configuration", issuer.url()))
        .send()
        .await
        .expect("discovery")
        .json()
        .await
        .expect("discovery json");
    assert_eq!(disco["issuer"], issuer.url());
    let jwks: JwkSet = http
        .get(disco["jwks_uri"].as_str().expect("jwks_uri"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("jwks json");
    let header = jsonwebtoken::decode_header(token).expect("header");
    let jwk = jwks
        .find(header.kid.as_deref().expect("kid"))
        .expect("kid published");
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.set_audience(&[issuer.audience()]);
    v.set_issuer(&[issuer.url()]);
    jsonwebtoken::decode::<serde_json::Value>(
        token,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).expect("decoding key"),
        &v,
    )
    .expect("token verifies against the published JWKS")
    .claims
}

#[tokio::test]
async fn client_credentials_token_verifies_and_rotation_changes_kid() {
    let issuer = start(SigningAlg::EdDsa, false).await;
    let http = reqwest::Client::new();

    let bad = get_token(&http, &issuer, "wrong").await;
    assert_eq!(bad.status(), 401);

    let resp = get_token(&http, &issuer, "secret-a").await;
    assert!(resp.status().is_success(), "{}", resp.status());
    let body: serde_json::Value = resp.json().await.expect("json");
    let token = body["access_token"].as_str().expect("token").to_string();
    let claims = verify_with_jwks(&http, &issuer, &token).await;
    assert_eq!(claims["sub"], "agent-a");

    let intro: serde_json::Value = http
        .post(format!("{}/oauth/v2/introspect", issuer.url()))
        .basic_auth("agent-a", Some("secret-a"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .expect("introspect")
        .json()
        .await
        .expect("json");
    assert_eq!(intro["active"], true);

    let old_kid = issuer.current_kid();
    let rotated: serde_json::Value = http
        .post(format!("{}/admin/rotate", issuer.url()))
        .send()
        .await
        .expect("rotate")
        .json()
        .await
        .expect("json");
    assert_ne!(rotated["kid"].as_str(), Some(old_kid.as_str()));
    let token2 = get_token(&http, &issuer, "secret-a")
        .await
        .json::<serde_json::Value>()
        .await
        .expect("json");
    let token2 = token2["access_token"].as_str().expect("token");
    verify_with_jwks(&http, &issuer, token2).await;
    // The old key stays published unless dropped.
    verify_with_jwks(&http, &issuer, &token).await;
}

#[tokio::test]
async fn opaque_tokens_are_only_known_to_introspection() {
    let issuer = start(SigningAlg::EdDsa, true).await;
    let http = reqwest::Client::new();
    let body: serde_json::Value = get_token(&http, &issuer, "secret-a")
        .await
        .json()
        .await
        .expect("json");
    let token = body["access_token"].as_str().expect("token");
    assert!(
        jsonwebtoken::decode_header(token).is_err(),
        "opaque token is not a JWT"
    );
    let introspect = |t: String, secret: &'static str| {
        let http = http.clone();
        let url = format!("{}/oauth/v2/introspect", issuer.url());
        async move {
            http.post(url)
                .basic_auth("agent-a", Some(secret))
                .form(&[("token", t)])
                .send()
                .await
                .expect("introspect")
        }
    };
    let live: serde_json::Value = introspect(token.to_string(), "secret-a")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(live["active"], true);
    assert_eq!(live["sub"], "agent-a");
    let unknown: serde_json::Value = introspect("nope".into(), "secret-a")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(unknown["active"], false);
    assert_eq!(introspect(token.to_string(), "bad").await.status(), 401);
}

#[tokio::test]
async fn rs256_tokens_verify() {
    let issuer = start(SigningAlg::Rs256, false).await;
    let http = reqwest::Client::new();
    let body: serde_json::Value = get_token(&http, &issuer, "secret-a")
        .await
        .json()
        .await
        .expect("json");
    let token = body["access_token"].as_str().expect("token");
    assert_eq!(
        jsonwebtoken::decode_header(token).expect("header").alg,
        jsonwebtoken::Algorithm::RS256
    );
    verify_with_jwks(&http, &issuer, token).await;
}
