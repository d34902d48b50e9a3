// Passkey ceremonies for Latchkey's pages: sign-in (button, username, and browser autofill),
// first-run setup, and adding a passkey on the account page. No framework, no build step.
"use strict";

(() => {
  const base = document.body.dataset.base || "";

  const b64url = {
    decode(text) {
      const padded = text.replace(/-/g, "+").replace(/_/g, "/");
      const binary = atob(padded + "=".repeat((4 - (padded.length % 4)) % 4));
      return Uint8Array.from(binary, (c) => c.charCodeAt(0)).buffer;
    },
    encode(buffer) {
      const bytes = new Uint8Array(buffer);
      let binary = "";
      for (const byte of bytes) binary += String.fromCharCode(byte);
      return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    },
  };

  function creationOptions(json) {
    const options = structuredClone(json);
    options.challenge = b64url.decode(options.challenge);
    options.user.id = b64url.decode(options.user.id);
    options.excludeCredentials = (options.excludeCredentials || []).map((c) => ({
      ...c,
      id: b64url.decode(c.id),
    }));
    return options;
  }

  function requestOptions(json) {
    const options = structuredClone(json);
    options.challenge = b64url.decode(options.challenge);
    options.allowCredentials = (options.allowCredentials || []).map((c) => ({
      ...c,
      id: b64url.decode(c.id),
    }));
    return options;
  }

  function registrationJSON(credential) {
    const response = credential.response;
    return {
      id: credential.id,
      rawId: b64url.encode(credential.rawId),
      type: credential.type,
      response: {
        attestationObject: b64url.encode(response.attestationObject),
        clientDataJSON: b64url.encode(response.clientDataJSON),
        transports: response.getTransports ? response.getTransports() : [],
      },
      extensions: credential.getClientExtensionResults(),
    };
  }

  function assertionJSON(credential) {
    const response = credential.response;
    return {
      id: credential.id,
      rawId: b64url.encode(credential.rawId),
      type: credential.type,
      response: {
        authenticatorData: b64url.encode(response.authenticatorData),
        clientDataJSON: b64url.encode(response.clientDataJSON),
        signature: b64url.encode(response.signature),
        userHandle: response.userHandle ? b64url.encode(response.userHandle) : null,
      },
      extensions: credential.getClientExtensionResults(),
    };
  }

  async function post(path, body) {
    const response = await fetch(base + path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body || {}),
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error(answer.error || `The server answered ${response.status}.`);
      error.status = response.status;
      throw error;
    }
    return answer;
  }

  /// Words for people, whatever went wrong.
  function explain(error) {
    if (!error) return "Something went wrong. Please try again.";
    switch (error.name) {
      case "NotAllowedError":
        return "The passkey request was cancelled or timed out. Try again when you are ready.";
      case "InvalidStateError":
        return "This authenticator already holds a passkey for this account.";
      case "SecurityError":
        return "Passkeys need a secure connection: open this page over https (or on localhost).";
      case "NotSupportedError":
        return "This browser or authenticator cannot create this kind of passkey.";
      default:
        return error.message || String(error);
    }
  }

  function show(message) {
    const box = document.getElementById("message");
    if (!box) return;
    box.textContent = message;
    box.hidden = !message;
    if (message) box.focus?.();
  }

  /// Refuses early, with a reason, where passkeys cannot work at all.
  function unsupported() {
    if (!window.isSecureContext) {
      return "Passkeys need a secure connection: open this page over https (or on localhost).";
    }
    if (!window.PublicKeyCredential || !navigator.credentials) {
      return "This browser does not support passkeys. Use a current browser, or ask your administrator for a login link.";
    }
    return null;
  }

  // ---- Sign-in ------------------------------------------------------------------------------

  let autofill = null; // the pending conditional-mediation request, if any

  async function signIn(username, mediation) {
    const start = await post("/login/passkey/start", username ? { username } : {});
    const request = { publicKey: requestOptions(start.publicKey) };
    if (mediation === "conditional") {
      autofill = new AbortController();
      request.mediation = "conditional";
      request.signal = autofill.signal;
    }
    const credential = await navigator.credentials.get(request);
    const done = await post("/login/passkey/finish", {
      ceremony: start.ceremony,
      credential: assertionJSON(credential),
    });
    window.location.assign(done.redirect);
  }

  function stopAutofill() {
    if (autofill) {
      autofill.abort();
      autofill = null;
    }
  }

  async function interactive(username) {
    const reason = unsupported();
    if (reason) return show(reason);
    stopAutofill();
    show("");
    try {
      await signIn(username, "modal");
    } catch (error) {
      show(explain(error));
      startAutofill();
    }
  }

  async function startAutofill() {
    if (unsupported() || !PublicKeyCredential.isConditionalMediationAvailable) return;
    if (!(await PublicKeyCredential.isConditionalMediationAvailable())) return;
    try {
      await signIn(null, "conditional");
    } catch (error) {
      if (error.name !== "AbortError") show(explain(error));
    }
  }

  const signInBox = document.getElementById("passkey-signin");
  if (signInBox) {
    document.getElementById("passkey-button").addEventListener("click", () => interactive(null));
    document.getElementById("username-form").addEventListener("submit", (event) => {
      event.preventDefault();
      interactive(document.getElementById("username").value.trim());
    });
    const reason = unsupported();
    if (reason) show(reason);
    else startAutofill();
  }

  // ---- Registration (setup page and account page) -------------------------------------------

  async function register(startPath, startBody, finishPath) {
    const start = await post(startPath, startBody);
    const credential = await navigator.credentials.create({
      publicKey: creationOptions(start.publicKey),
    });
    return post(finishPath, { ceremony: start.ceremony, credential: registrationJSON(credential) });
  }

  const setupForm = document.getElementById("setup-form");
  if (setupForm) {
    setupForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const reason = unsupported();
      if (reason) return show(reason);
      show("");
      const data = new FormData(setupForm);
      try {
        const done = await register(
          `/setup/${encodeURIComponent(setupForm.dataset.token)}/start`,
          {
            username: data.get("username"),
            display_name: data.get("display_name"),
            email: data.get("email"),
          },
          "/setup/finish",
        );
        window.location.assign(done.redirect);
      } catch (error) {
        show(explain(error));
      }
    });
  }

  const addButton = document.getElementById("add-passkey");
  if (addButton) {
    addButton.addEventListener("click", async () => {
      const reason = unsupported();
      if (reason) return show(reason);
      show("");
      try {
        await register("/account/passkeys/start", {}, "/account/passkeys/finish");
        window.location.reload();
      } catch (error) {
        show(explain(error));
        // Not signed in, or not recently enough: the way on is to sign in again.
        if (error.status === 401) document.getElementById("sign-in-again").hidden = false;
      }
    });
  }
})();
