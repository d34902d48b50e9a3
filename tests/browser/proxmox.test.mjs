// Proxmox permissions on a client's page, in a real browser: the administrator reads the
// commands that make the API token, connects a Proxmox Backup Server that does not answer
// (saved, with a warning), adds a rule for a group (the role cannot be checked yet, which the
// page says), and sees the sync status: retrying, with the connection error. "Sync now" asks
// for another run. The token secret never appears in a page. Screenshots land in
// test-output/browser/.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startServer, launchBrowser, screenshot, openLoginLink, SHOTS } from "./harness.mjs";

/// Nothing listens there: connecting is refused at once.
const DOWN = "https://127.0.0.1:1";
const SECRET = "9d1c7c52-1f0e-4c7a-b1f5-never-shown-again";
const FINGERPRINT = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89";

/// Clicks a form's submit button and waits until the page the form leads to has loaded.
async function submit(page, button) {
  const loaded = page.waitForEvent("load");
  await button.click();
  await loaded;
}

/// The value next to a term of a definition list.
function fact(page, list, term) {
  return page.locator(`${list} dt:text-is("${term}") + dd`);
}

describe("Proxmox permissions in Chromium", () => {
  let server;
  let browser;
  let page;
  let clientPage;

  before(async () => {
    server = await startServer();
    server.cli("user", "add", "ada", "--admin", "--name", "Ada Lovelace");
    server.cli("group", "add", "backup-admins");
    server.cli("client", "add", "pbs", "--name", "Backup server", "--redirect-uri", "https://pbs.example.com:8007");
    clientPage = `${server.issuer}/admin/clients/pbs`;
    browser = await launchBrowser();
    page = browser.page;
    const link = server.cli("login-link", "ada").trim().split("\n").pop();
    await openLoginLink(page, link, "ada");
    await page.waitForURL(`${server.issuer}/account`);
  });

  after(async () => {
    await browser?.close();
    server?.stop();
  });

  it("shows the commands that make a least-privilege token before anything is connected", async () => {
    await page.goto(clientPage);
    await assert.doesNotReject(page.getByRole("heading", { name: "Proxmox permissions" }).waitFor());
    const pbs = await page.locator("#pbs-token-steps").inputValue();
    assert.match(pbs, /^proxmox-backup-manager user generate-token root@pam latchkey$/m);
    assert.match(pbs, /^proxmox-backup-manager acl update \/access Admin --auth-id 'root@pam!latchkey'$/m);
    assert.match(pbs, /^proxmox-backup-manager cert info \| grep Fingerprint$/m);
    assert.ok(await page.locator("details", { has: page.locator("#pbs-token-steps") }).getAttribute("open") !== null,
      "the PBS commands are open first");
    const realm = await page.locator("#pbs-realm-step").inputValue();
    assert.match(realm, /--autocreate 0$/);
    assert.equal(await page.getByRole("button", { name: "Sync now" }).count(), 0);
    await screenshot(page, "proxmox-01-guidance");
  });

  it("connects a PBS that does not answer: saved, with a warning", async () => {
    await page.goto(clientPage);
    await page.getByLabel("Product").selectOption("pbs");
    await page.getByLabel("API URL").fill(DOWN);
    await page.getByLabel("API token id").fill("root@pam!latchkey");
    await page.getByLabel("API token secret").fill(SECRET);
    await page.getByRole("radio", { name: /SHA-256 fingerprint/ }).check();
    await page.getByLabel("Fingerprint", { exact: true }).fill(FINGERPRINT.toLowerCase());
    assert.equal(await page.getByLabel("Realm", { exact: true }).inputValue(), "latchkey");
    await submit(page, page.getByRole("button", { name: "Connect", exact: true }));

    const notice = page.locator(".admin-notice");
    await assert.doesNotReject(notice.first().waitFor());
    assert.match(await notice.first().textContent(), /Saved, but the server does not answer/);
    assert.equal(await fact(page, "dl[aria-labelledby=proxmox-server-title]", "API URL").textContent(), DOWN);
    assert.equal(
      await fact(page, "dl[aria-labelledby=proxmox-server-title]", "Certificate").textContent(),
      `SHA-256 fingerprint ${FINGERPRINT}`,
    );
    assert.equal(await page.getByLabel("API token secret").inputValue(), "", "the secret is not shown again");
    assert.ok(!(await page.content()).includes(SECRET));
    await screenshot(page, "proxmox-02-connected");
  });

  it("adds a rule for a group; the role is checked once the server answers", async () => {
    await page.goto(clientPage);
    await assert.doesNotReject(page.getByText("No rules yet").waitFor());
    await page.getByLabel("Group", { exact: true }).selectOption("backup-admins");
    await page.getByLabel("Role", { exact: true }).fill("DatastoreBackup");
    await page.getByLabel("Path", { exact: true }).fill("/datastore/main");
    assert.equal(await page.getByRole("checkbox", { name: /Propagate/ }).isChecked(), true, "propagate by default");
    await submit(page, page.getByRole("button", { name: "Add rule" }));

    assert.match(await page.locator(".admin-notice").first().textContent(), /cannot check the role DatastoreBackup now/);
    const row = page.getByRole("row", { name: /backup-admins/ });
    await assert.doesNotReject(row.waitFor());
    assert.match(await row.textContent(), /backup-admins\s*DatastoreBackup\s*\/datastore\/main\s*yes/);
    await assert.doesNotReject(
      page.getByRole("button", { name: "Remove the rule backup-admins → DatastoreBackup on /datastore/main" }).waitFor(),
    );
  });

  it("shows the sync status: retrying, with the connection error", async () => {
    // The queue worker tries within a second of the change: wait until the page says it
    // failed, then look at it.
    const status = "#proxmox-status";
    await page.goto(clientPage);
    await page.waitForFunction(
      async () => (await (await fetch(location.href)).text()).includes("retrying after"),
      null,
      { polling: 250, timeout: 15000 },
    );
    await page.goto(clientPage);
    assert.match(await fact(page, status, "Pending").textContent(), /^Yes, retrying after \d+ failed attempts?; next try (at |as soon as possible)/);
    assert.equal(await fact(page, status, "Last success").textContent(), "never");
    const error = await fact(page, status, "Last error").textContent();
    assert.match(error, /^\d{4}-\d\d-\d\d \d\d:\d\d UTC: .+/, "the error, with its time");
    await page.locator("#proxmox").screenshot({ path: join(SHOTS, "proxmox-03-status.png") });

    await submit(page, page.getByRole("button", { name: "Sync now" }));
    assert.equal(new URL(page.url()).hash, "#proxmox");
    assert.match(await fact(page, status, "Pending").textContent(), /^Yes/);
    assert.ok(!(await page.content()).includes(SECRET));
  });
});
