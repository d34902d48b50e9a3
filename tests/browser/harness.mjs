// Shared pieces of the browser tests: the real latchkey binary on 127.0.0.1, its CLI, and
// Debian's Chromium driven over the DevTools protocol with a WebAuthn virtual authenticator.
import { spawn, execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, mkdirSync, existsSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const BINARY = process.env.LATCHKEY_BIN || join(ROOT, "target/debug/latchkey");
export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
export const SHOTS = join(ROOT, "test-output/browser");

async function freePort() {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => done(port));
    });
  });
}

/// Starts `latchkey serve` with issuer http://localhost:PORT; resolves once it prints its
/// banner, with the setup link it printed.
export async function startServer() {
  if (!existsSync(BINARY)) {
    throw new Error(`latchkey binary not found at ${BINARY}: run cargo build first`);
  }
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), "latchkey-browser-"));
  const issuer = `http://localhost:${port}`;
  const child = spawn(
    BINARY,
    ["--data-dir", dataDir, "serve", "--listen", `127.0.0.1:${port}`, "--issuer", issuer],
    { env: { ...process.env, RUST_LOG: "warn" }, stdio: ["ignore", "pipe", "inherit"] },
  );
  let output = "";
  const setupLink = await new Promise((done, fail) => {
    const timer = setTimeout(() => fail(new Error(`serve did not start: ${output}`)), 15000);
    child.stdout.on("data", (chunk) => {
      output += chunk;
      const found = output.match(/(http:\/\/localhost:\d+\/setup\/\S+)/);
      if (found) {
        clearTimeout(timer);
        done(found[1]);
      }
    });
    child.once("exit", (code) => fail(new Error(`serve exited with ${code}: ${output}`)));
  });
  const cli = (...args) =>
    execFileSync(BINARY, ["--data-dir", dataDir, ...args], {
      env: { ...process.env, LATCHKEY_ISSUER: issuer },
      encoding: "utf8",
    });
  const stop = () => {
    child.kill("SIGTERM");
    rmSync(dataDir, { recursive: true, force: true });
  };
  return { issuer, port, setupLink, cli, stop };
}

/// Chromium with a fresh profile; `localhost` maps to 127.0.0.1, a secure context for WebAuthn.
export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: install Debian's chromium package`);
  }
  mkdirSync(SHOTS, { recursive: true });
  const profile = mkdtempSync(join(tmpdir(), "latchkey-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--disable-quic",
      "--host-resolver-rules=MAP localhost 127.0.0.1",
    ],
  });
  const page = context.pages()[0] || (await context.newPage());
  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const close = async () => {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  };
  return { context, page, cdp, close };
}

/// A platform authenticator like a phone's or laptop's: CTAP2, internal, resident keys,
/// user verification that always succeeds.
export async function addAuthenticator(cdp) {
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return authenticatorId;
}

export async function screenshot(page, name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

/// Opens a login link as a person does: its page says whom it signs in (screenshot `shot`,
/// if given), and only its button does.
export async function openLoginLink(page, link, username, shot) {
  await page.goto(link);
  await page.getByRole("heading", { name: `Sign in to Latchkey as ${username}` }).waitFor();
  if (shot) await screenshot(page, shot);
  const loaded = page.waitForEvent("load");
  await page.getByRole("button", { name: `Continue as ${username}` }).click();
  await loaded;
}

export const b64url = (bytes) => Buffer.from(bytes).toString("base64url");

/// Sends the browser to `url` and returns where Latchkey redirects it under `prefix`. The
/// relying party does not exist here, so the browser's last hop fails; the redirect is read
/// from Latchkey's own 303 response. It returns once the browser has settled on the page that
/// last hop ended on (Chromium's error page), so that the next navigation is not cut short.
export async function landingOf(page, url, prefix) {
  const redirect = waitForRedirect(page, prefix);
  const settled = page.waitForEvent("load");
  await page.goto(url).catch(() => {});
  const location = new URL((await redirect).headers().location);
  await settled;
  return location;
}

/// Latchkey's next 303 response that sends the browser under `prefix`.
export function waitForRedirect(page, prefix) {
  return page.waitForResponse(
    (response) => response.status() === 303 && (response.headers().location || "").startsWith(prefix),
  );
}


/// Proxmox VE's address, its redirect URI: the bare origin, no path, no trailing slash.
export const PVE = "https://pve.example.com:8006";

/// Proxmox VE's authorization request for client `proxmox`: PKCE S256, a nonce,
/// display=page and a JSON state.
export function proxmoxRequest(authorizationEndpoint) {
  const verifier = b64url(randomBytes(32));
  const nonce = b64url(randomBytes(16));
  const state = JSON.stringify({ csrf_token: b64url(randomBytes(16)), realm: "latchkey" });
  const url = new URL(authorizationEndpoint);
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: "proxmox",
    state,
    code_challenge: b64url(createHash("sha256").update(verifier).digest()),
    code_challenge_method: "S256",
    redirect_uri: PVE,
    scope: "openid email profile groups",
    nonce,
    display: "page",
  });
  return { url: url.href, verifier, nonce, state };
}

/// Proxmox's code exchange: client_secret_basic with the credentials URL-encoded first.
export function proxmoxExchange(tokenEndpoint, secret, code, verifier) {
  const basic = Buffer.from(
    `${encodeURIComponent("proxmox")}:${encodeURIComponent(secret)}`,
  ).toString("base64");
  return fetch(tokenEndpoint, {
    method: "POST",
    headers: { authorization: `Basic ${basic}`, "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code,
      code_verifier: verifier,
      redirect_uri: PVE,
    }),
  });
}
