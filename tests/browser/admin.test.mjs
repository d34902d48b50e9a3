// The administrator's walk in real browsers: the first administrator sets up Latchkey, then
// in /admin creates a group, a person, an app for Proxmox VE and a login link, all by
// clicking the pages. Bob opens his link in his own browser (its page, then its button), adds
// a passkey, consents to Proxmox's sign-in and gets his groups in the ID token; he is kept
// out of /admin. Carol, outside the allowed group, is sent back with access_denied. A form
// posted without its CSRF token is refused. Screenshots land in test-output/browser/.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import * as jose from "jose";
import {
  startServer,
  launchBrowser,
  addAuthenticator,
  screenshot,
  landingOf,
  waitForRedirect,
  openLoginLink,
  PVE,
  proxmoxRequest,
  proxmoxExchange,
} from "./harness.mjs";

/// Clicks a form's submit button and waits until the page the form leads to has loaded.
async function submit(page, button) {
  const loaded = page.waitForEvent("load");
  await button.click();
  await loaded;
}

describe("administration in Chromium", () => {
  let server;
  let admin; // the first administrator's browser
  let bob; // Bob's own browser, with his own authenticator
  let carol; // Carol's browser
  let page;
  let clientSecret;
  let bobLink;

  before(async () => {
    server = await startServer();
    admin = await launchBrowser();
    page = admin.page;
    await addAuthenticator(admin.cdp);
  });

  after(async () => {
    await carol?.close();
    await bob?.close();
    await admin?.close();
    server?.stop();
  });

  /// Opens a person's admin page and issues a login link there; returns the link shown.
  async function issueLoginLink(username) {
    await page.goto(`${server.issuer}/admin/users/${username}`);
    await submit(page, page.getByRole("button", { name: "Issue a login link" }));
    assert.equal(new URL(page.url()).pathname, `/admin/users/${username}/login-link`);
    await assert.doesNotReject(page.getByRole("heading", { name: `Login link for ${username}` }).waitFor());
    const link = await page.locator("#login-link").inputValue();
    assert.match(link, new RegExp(`^${server.issuer}/login/link/[A-Za-z0-9_-]{43}$`));
    return link;
  }

  it("sets up the first administrator with a passkey from the setup link", async () => {
    await page.goto(server.setupLink);
    await page.getByLabel("Username").fill("ada");
    await page.getByLabel("Display name").fill("Ada Lovelace");
    await page.getByLabel("Email").fill("ada@example.com");
    await page.getByRole("button", { name: "Create account and passkey" }).click();
    await page.waitForURL(`${server.issuer}/account`);
    await assert.doesNotReject(page.getByText("Administrator", { exact: true }).waitFor());
    assert.equal(await page.locator(".passkey-name").count(), 1);

    await submit(page, page.getByRole("link", { name: "Administration" }));
    assert.equal(page.url(), `${server.issuer}/admin`);
    await assert.doesNotReject(page.getByRole("heading", { name: "Administration" }).waitFor());
    await screenshot(page, "admin-01-overview");
  });

  it("creates the group pve-admins", async () => {
    await page.goto(`${server.issuer}/admin/groups`);
    await assert.doesNotReject(page.getByText("No groups yet.").waitFor());
    await page.getByLabel("Name", { exact: true }).fill("pve-admins");
    await submit(page, page.getByRole("button", { name: "Add group" }));
    assert.equal(page.url(), `${server.issuer}/admin/groups/pve-admins`);
    await assert.doesNotReject(page.getByRole("heading", { name: "pve-admins" }).waitFor());
    await assert.doesNotReject(page.getByText("No members yet.").waitFor());
  });

  it("creates bob and puts him in pve-admins from his page", async () => {
    await page.goto(`${server.issuer}/admin/users`);
    await page.getByLabel("Username", { exact: true }).fill("bob");
    await page.getByLabel("Display name (optional)").fill("Bob Builder");
    await page.getByLabel("Email (optional)").fill("bob@example.com");
    await submit(page, page.getByRole("button", { name: "Add person" }));
    assert.equal(page.url(), `${server.issuer}/admin/users/bob`);
    await assert.doesNotReject(page.getByRole("heading", { name: "Bob Builder" }).waitFor());

    const membership = page.getByRole("checkbox", { name: "pve-admins" });
    assert.equal(await membership.isChecked(), false);
    await membership.check();
    await submit(page, page.getByRole("button", { name: "Save groups" }));
    assert.equal(page.url(), `${server.issuer}/admin/users/bob`);
    assert.equal(await page.getByRole("checkbox", { name: "pve-admins" }).isChecked(), true);

    await page.goto(`${server.issuer}/admin/groups/pve-admins`);
    await assert.doesNotReject(page.getByRole("link", { name: "bob", exact: true }).waitFor());
  });

  it("adds the Proxmox VE client and shows its secret once, with the Proxmox snippet", async () => {
    await page.goto(`${server.issuer}/admin/clients`);
    await assert.doesNotReject(page.getByText("No clients yet.").waitFor());
    await page.getByLabel("Client id").fill("proxmox");
    await page.getByLabel("Name shown to people").fill("Proxmox VE");
    await page.getByLabel("Redirect URIs, one per line", { exact: true }).fill(PVE);
    await page.getByRole("checkbox", { name: "pve-admins" }).check();
    const consent = page.getByRole("checkbox", { name: /Ask people for consent/ });
    assert.equal(await consent.isChecked(), true, "asking for consent is the default");
    assert.equal(await page.getByRole("checkbox", { name: /Public client/ }).isChecked(), false);
    await screenshot(page, "admin-02-clients");

    await submit(page, page.getByRole("button", { name: "Add client" }));
    await assert.doesNotReject(page.getByRole("heading", { name: "Proxmox VE", level: 1 }).waitFor());
    clientSecret = await page.locator("#client-secret").inputValue();
    assert.match(clientSecret, /^[A-Za-z0-9_-]{43}$/);
    const snippet = await page.locator("#pve-snippet").inputValue();
    assert.match(snippet, /^pveum realm add latchkey --type openid /);
    assert.ok(snippet.includes(`--issuer-url ${server.issuer} `), snippet);
    assert.ok(snippet.includes("--client-id proxmox "), snippet);
    assert.ok(snippet.includes(`--client-key '${clientSecret}'`), snippet);
    await screenshot(page, "admin-03-client-secret");

    // Shown once: the client's own page has no secret, and the list shows the client.
    await page.goto(`${server.issuer}/admin/clients/proxmox`);
    assert.equal(await page.locator("#client-secret").count(), 0);
    assert.ok(!(await page.content()).includes(clientSecret), "the secret is not shown again");
    await page.goto(`${server.issuer}/admin/clients`);
    const row = page.getByRole("row", { name: /Proxmox VE/ });
    await assert.doesNotReject(row.waitFor());
    assert.match(await row.textContent(), /confidential.*https:\/\/pve\.example\.com:8006.*pve-admins/s);
  });

  it("issues a login link for bob on his page", async () => {
    bobLink = await issueLoginLink("bob");
  });

  it("lets bob in with the link, in his own browser, and he adds a passkey", async () => {
    bob = await launchBrowser();
    const bobAuthenticator = await addAuthenticator(bob.cdp);
    await openLoginLink(bob.page, bobLink, "bob", "admin-03-login-link-page");
    await bob.page.waitForURL(`${server.issuer}/account`);
    await assert.doesNotReject(bob.page.getByRole("heading", { name: "Bob Builder" }).waitFor());
    await assert.doesNotReject(bob.page.getByText("You have no passkey yet").waitFor());
    assert.equal(await bob.page.getByRole("link", { name: "Administration" }).count(), 0);

    await bob.page.getByRole("button", { name: "Add a passkey" }).click();
    await bob.page.waitForFunction(() => document.querySelectorAll(".passkey-name").length === 1);
    const { credentials } = await bob.cdp.send("WebAuthn.getCredentials", {
      authenticatorId: bobAuthenticator,
    });
    assert.equal(credentials.length, 1);
    assert.equal(credentials[0].isResidentCredential, true, "a discoverable credential");

    await bob.page.goto(bobLink);
    assert.match(await bob.page.textContent("body"), /already been used/, "the link is spent");
  });

  it("asks bob's consent for Proxmox VE, then signs him in with his groups", async () => {
    const request = proxmoxRequest(`${server.issuer}/authorize`);
    const consentPage = await bob.page.goto(request.url);
    assert.equal(consentPage.status(), 200);
    assert.equal(new URL(bob.page.url()).pathname, "/authorize");
    await assert.doesNotReject(bob.page.getByRole("heading", { name: "Allow Proxmox VE?" }).waitFor());
    assert.match(await bob.page.locator("main").textContent(), /sign you in as\s+bob/);
    await screenshot(bob.page, "admin-04-consent");

    const redirect = waitForRedirect(bob.page, PVE);
    const settled = bob.page.waitForEvent("load");
    await bob.page.getByRole("button", { name: "Allow" }).click();
    const landed = new URL((await redirect).headers().location);
    await settled; // on the error page of the missing Proxmox host
    assert.equal(landed.origin + landed.pathname, `${PVE}/`);
    assert.equal(landed.searchParams.get("state"), request.state, "the JSON state comes back unchanged");
    assert.equal(landed.searchParams.get("iss"), server.issuer);
    assert.equal(landed.searchParams.get("error"), null);
    const code = landed.searchParams.get("code");
    assert.ok(code, "a code");

    const discovery = await (await fetch(`${server.issuer}/.well-known/openid-configuration`)).json();
    const tokenResponse = await proxmoxExchange(discovery.token_endpoint, clientSecret, code, request.verifier);
    assert.equal(tokenResponse.status, 200);
    const tokens = await tokenResponse.json();
    assert.equal(tokens.token_type, "Bearer");
    assert.ok(tokens.access_token);
    const jwks = jose.createRemoteJWKSet(new URL(discovery.jwks_uri));
    const { payload, protectedHeader } = await jose.jwtVerify(tokens.id_token, jwks, {
      issuer: server.issuer,
      audience: "proxmox",
      algorithms: ["RS256"],
    });
    assert.ok(protectedHeader.kid);
    assert.equal(payload.nonce, request.nonce);
    assert.equal(payload.preferred_username, "bob");
    assert.equal(payload.name, "Bob Builder");
    assert.equal(payload.email, "bob@example.com");
    assert.equal(payload.email_verified, true);
    assert.deepEqual(payload.groups, ["pve-admins"]);

    // Asked once: the same request again goes straight back to Proxmox.
    const again = proxmoxRequest(`${server.issuer}/authorize`);
    const second = await landingOf(bob.page, again.url, PVE);
    assert.equal(second.searchParams.get("state"), again.state);
    assert.equal(second.searchParams.get("iss"), server.issuer);
    assert.equal(second.searchParams.get("error"), null);
    assert.ok(second.searchParams.get("code"), "a code without the consent page");

    await bob.page.goto(`${server.issuer}/account`);
    const allowed = bob.page.locator("section", {
      has: bob.page.getByRole("heading", { name: "Apps you allowed" }),
    });
    await assert.doesNotReject(allowed.waitFor());
    assert.equal(await allowed.locator("li").count(), 1);
    await assert.doesNotReject(allowed.getByText("Proxmox VE", { exact: true }).waitFor());
  });

  it("keeps bob out of /admin", async () => {
    const response = await bob.page.goto(`${server.issuer}/admin`);
    assert.equal(response.status(), 403);
    assert.equal(new URL(bob.page.url()).pathname, "/admin");
    await assert.doesNotReject(bob.page.getByRole("heading", { name: "Administrators only" }).waitFor());
    await screenshot(bob.page, "admin-05-forbidden");
  });

  it("tells carol, outside pve-admins, why, then sends her back to Proxmox with access_denied", async () => {
    await page.goto(`${server.issuer}/admin/users`);
    await page.getByLabel("Username", { exact: true }).fill("carol");
    await page.getByLabel("Display name (optional)").fill("Carol Danvers");
    await page.getByLabel("Email (optional)").fill("carol@example.com");
    await submit(page, page.getByRole("button", { name: "Add person" }));
    assert.equal(page.url(), `${server.issuer}/admin/users/carol`);
    assert.equal(await page.getByRole("checkbox", { name: "pve-admins" }).isChecked(), false);
    const carolLink = await issueLoginLink("carol");

    carol = await launchBrowser();
    await openLoginLink(carol.page, carolLink, "carol");
    await carol.page.waitForURL(`${server.issuer}/account`);
    await assert.doesNotReject(carol.page.getByRole("heading", { name: "Carol Danvers" }).waitFor());

    const request = proxmoxRequest(`${server.issuer}/authorize`);
    // A clear page first; it then follows the app's access_denied redirect by itself.
    const leaving = carol.page.waitForRequest((r) => r.url().startsWith(PVE), { timeout: 15000 });
    const refused = await carol.page.goto(request.url);
    assert.equal(refused.status(), 403);
    await assert.doesNotReject(
      carol.page.getByRole("heading", { name: "You can't use Proxmox VE" }).waitFor(),
    );
    assert.match(await carol.page.textContent("body"), /carol.*is not in a group allowed/s);
    await screenshot(carol.page, "admin-06-not-allowed");
    const landed = new URL((await leaving).url());
    assert.equal(landed.origin + landed.pathname, `${PVE}/`);
    assert.equal(landed.searchParams.get("error"), "access_denied");
    assert.equal(landed.searchParams.get("code"), null);
    assert.equal(landed.searchParams.get("state"), request.state);
    assert.equal(landed.searchParams.get("iss"), server.issuer);
  });

  it("refuses an admin form posted without its CSRF token", async () => {
    await page.goto(`${server.issuer}/admin/groups`);
    const status = await page.evaluate(async () => {
      const response = await fetch("/admin/groups", {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: "name=x",
      });
      return response.status;
    });
    assert.equal(status, 403);

    await page.goto(`${server.issuer}/admin/groups`);
    const groups = page.locator("table.admin-table tbody tr td:first-child a");
    await assert.doesNotReject(groups.first().waitFor());
    assert.deepEqual(await groups.allTextContents(), ["pve-admins"]);
  });
});
