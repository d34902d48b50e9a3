// The first-run walk in a real browser: setup link → passkey → sign out → usernameless sign-in
// → an OIDC app signs in with Proxmox's exact sequence → a second passkey, renamed, deleted,
// and refused afterwards. Screenshots land in test-output/browser/.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import * as jose from "jose";
import * as oidc from "openid-client";
import {
  startServer,
  launchBrowser,
  addAuthenticator,
  screenshot,
  landingOf,
  PVE,
  proxmoxRequest,
  proxmoxExchange,
} from "./harness.mjs";

const APP = "https://app.example.com/callback";

describe("passkeys in Chromium", () => {
  let server;
  let browser;
  let page;
  let firstAuthenticator;

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    page = browser.page;
    firstAuthenticator = await addAuthenticator(browser.cdp);
  });

  after(async () => {
    await browser?.close();
    server?.stop();
  });

  it("sets up the first administrator with a passkey from the setup link", async () => {
    await page.goto(server.setupLink);
    await screenshot(page, "01-setup");
    await page.getByLabel("Username").fill("ada");
    await page.getByLabel("Display name").fill("Ada Lovelace");
    await page.getByLabel("Email").fill("ada@example.com");
    await page.getByRole("button", { name: "Create account and passkey" }).click();
    await page.waitForURL(`${server.issuer}/account`);
    await assert.doesNotReject(page.getByText("Administrator", { exact: true }).waitFor());
    assert.equal(await page.locator(".passkey-name").count(), 1);
    await screenshot(page, "02-account-after-setup");

    const { credentials } = await browser.cdp.send("WebAuthn.getCredentials", {
      authenticatorId: firstAuthenticator,
    });
    assert.equal(credentials.length, 1);
    assert.equal(credentials[0].isResidentCredential, true, "a discoverable credential");

    await page.goto(server.setupLink);
    assert.match(await page.textContent("body"), /not valid any more/, "the setup link is spent");
  });

  it("signs out, then signs in from the browser's passkey autofill", async () => {
    await page.goto(`${server.issuer}/account`);
    await page.getByRole("button", { name: "Sign out", exact: true }).last().click();
    await assert.doesNotReject(page.getByRole("heading", { name: "Signed out" }).waitFor());
    await page.goto(`${server.issuer}/account`);
    // /account sends the signed-out browser to /login, whose script asks for a passkey with
    // conditional mediation; the virtual authenticator answers it as a person picking the
    // suggested passkey would.
    await page.waitForURL(`${server.issuer}/account`);
    await assert.doesNotReject(page.getByText("Ada Lovelace").first().waitFor());
  });

  it("signs in without a username by clicking the passkey button", async () => {
    await page.getByRole("button", { name: "Sign out", exact: true }).last().click();
    await assert.doesNotReject(page.getByRole("heading", { name: "Signed out" }).waitFor());
    // From here on, this page has no autofill, so that only the button can sign in.
    await page.addInitScript(() => {
      PublicKeyCredential.isConditionalMediationAvailable = async () => false;
    });
    await page.goto(`${server.issuer}/login`);
    await screenshot(page, "03-login");
    await page.waitForTimeout(300);
    assert.equal(new URL(page.url()).pathname, "/login", "nothing signs in by itself");
    await page.getByRole("button", { name: "Sign in with a passkey" }).click();
    await page.waitForURL(`${server.issuer}/account`);
    await assert.doesNotReject(page.getByText("Ada Lovelace").first().waitFor());
  });

  it("completes Proxmox's sign-in with the passkey session", async () => {
    server.cli("group", "add", "pve-admins");
    server.cli("group", "add-member", "pve-admins", "ada");
    const created = JSON.parse(
      server.cli("client", "add", "proxmox", "--redirect-uri", PVE, "--allowed-group", "pve-admins", "--json"),
    );
    const discovery = await (await fetch(`${server.issuer}/.well-known/openid-configuration`)).json();
    assert.equal(discovery.issuer, server.issuer);

    // What Proxmox sends: PKCE S256, nonce, display=page, a JSON state, the bare origin.
    const { url, verifier, nonce, state } = proxmoxRequest(discovery.authorization_endpoint);
    const landed = await landingOf(page, url, PVE);
    assert.equal(landed.searchParams.get("state"), state);
    assert.equal(landed.searchParams.get("iss"), server.issuer);
    const code = landed.searchParams.get("code");
    assert.ok(code);

    const tokenResponse = await proxmoxExchange(
      discovery.token_endpoint,
      created.client_secret,
      code,
      verifier,
    );
    assert.equal(tokenResponse.status, 200);
    const tokens = await tokenResponse.json();
    const jwks = jose.createRemoteJWKSet(new URL(discovery.jwks_uri));
    const { payload, protectedHeader } = await jose.jwtVerify(tokens.id_token, jwks, {
      issuer: server.issuer,
      audience: "proxmox",
      algorithms: ["RS256"],
    });
    assert.ok(protectedHeader.kid);
    assert.equal(payload.nonce, nonce);
    assert.equal(payload.preferred_username, "ada");
    assert.equal(payload.email, "ada@example.com");
    assert.equal(payload.email_verified, true);
    assert.equal(payload.given_name, "Ada");
    assert.equal(payload.family_name, "Lovelace");
    assert.deepEqual(payload.groups, ["pve-admins"]);
    assert.deepEqual(payload.amr, ["hwk", "user", "mfa"]);

    const userinfo = await fetch(discovery.userinfo_endpoint, {
      headers: { authorization: `Bearer ${tokens.access_token}`, accept: "application/json" },
    });
    assert.equal(userinfo.status, 200);
    const claims = await userinfo.json();
    assert.equal(claims.sub, payload.sub);
    assert.deepEqual(claims.groups, ["pve-admins"]);
  });

  it("works with a certified relying-party library too", async () => {
    const created = JSON.parse(server.cli("client", "add", "webapp", "--redirect-uri", APP, "--json"));
    const config = await oidc.discovery(
      new URL(server.issuer),
      "webapp",
      created.client_secret,
      undefined,
      { execute: [oidc.allowInsecureRequests] },
    );
    const verifier = oidc.randomPKCECodeVerifier();
    const nonce = oidc.randomNonce();
    const state = oidc.randomState();
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: APP,
      scope: "openid profile email groups offline_access",
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: "S256",
      nonce,
      state,
    });
    const landed = await landingOf(page, url.href, APP);
    const tokens = await oidc.authorizationCodeGrant(config, landed, {
      pkceCodeVerifier: verifier,
      expectedNonce: nonce,
      expectedState: state,
    });
    const claims = tokens.claims();
    assert.equal(claims.preferred_username, "ada");
    assert.ok(tokens.refresh_token, "offline_access gives a refresh token");
    const info = await oidc.fetchUserInfo(config, tokens.access_token, claims.sub);
    assert.equal(info.email, "ada@example.com");
    const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token);
    assert.notEqual(refreshed.refresh_token, tokens.refresh_token, "refresh tokens rotate");
  });

  it("adds a second passkey, renames and deletes it, and then refuses it", async () => {
    // The first authenticator leaves; a second device arrives.
    await browser.cdp.send("WebAuthn.removeVirtualAuthenticator", { authenticatorId: firstAuthenticator });
    await addAuthenticator(browser.cdp);
    await page.goto(`${server.issuer}/account`);
    await page.getByRole("button", { name: "Add a passkey" }).click();
    await page.waitForFunction(() => document.querySelectorAll(".passkey-name").length === 2);
    await screenshot(page, "04-two-passkeys");

    const second = page.locator("li[data-passkey]").nth(1);
    await second.getByRole("textbox").fill("Backup phone");
    await second.getByRole("button", { name: "Rename" }).click();
    await assert.doesNotReject(page.locator(".passkey-name", { hasText: "Backup phone" }).waitFor());

    const renamed = page.locator("li[data-passkey]", { hasText: "Backup phone" });
    await renamed.getByRole("button", { name: "Delete" }).click();
    await page.waitForFunction(() => document.querySelectorAll(".passkey-name").length === 1);
    assert.equal(await page.locator(".passkey-name", { hasText: "Backup phone" }).count(), 0);
    await assert.doesNotReject(page.getByText("This is your only passkey").waitFor());
    await screenshot(page, "05-after-delete");

    // Signed out, the device that still holds the deleted passkey offers it, and is refused.
    await page.getByRole("button", { name: "Sign out", exact: true }).last().click();
    await page.goto(`${server.issuer}/login`);
    await page.getByRole("button", { name: "Sign in with a passkey" }).click();
    const message = page.locator("#message");
    await assert.doesNotReject(message.getByText("not registered here").waitFor());
    assert.equal(new URL(page.url()).pathname, "/login");
    await screenshot(page, "06-refused");
  });
});
