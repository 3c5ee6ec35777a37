/**
 * The status page's entry (bundled by scripts/build-page.js into app.js): the routing, the login
 * form and sign-out. The views: views/runs.ts (the runs list), views/new-run.ts (a DAG from the
 * editor), views/run.ts (one run, live), views/runners.ts (the pool and its devices). It asks for
 * the API token once and keeps it in localStorage; nothing is loaded from elsewhere.
 */
import "./zod-csp.js";
import { app, el, fail, forgetToken, saveToken, stop, token, whenUnauthorized, whoami } from "./lib.js";
import { newRunView } from "./views/new-run.js";
import { runView } from "./views/run.js";
import { runnersView } from "./views/runners.js";
import { runsView } from "./views/runs.js";

const LOGIN_HINT =
  "The coordinator's API_TOKEN (dev-api-token with npm start), or a token of yours. It stays in this browser.";

function askToken(message = ""): void {
  stop();
  document.title = "Distro: sign in";
  const input = el("input", { id: "token", type: "password", autocomplete: "current-password", required: true });
  const form = el(
    "form",
    { id: "login", class: "login" },
    el("label", {}, "API token ", input),
    el("button", {}, "Open"),
    el("p", { class: message ? "error" : "hint", role: message ? "alert" : null }, message || LOGIN_HINT),
  );
  form.onsubmit = (e) => {
    e.preventDefault();
    saveToken(input.value);
    void route();
  };
  app.replaceChildren(form);
  input.focus();
}

/** The view the address names. */
async function route(): Promise<void> {
  stop();
  app.onclick = null;
  if (!token()) return askToken();
  const hash = location.hash || "#/";
  const section = hash.startsWith("#/runners") ? "#/runners" : hash.startsWith("#/new") ? "#/new" : "#/";
  for (const a of document.querySelectorAll("nav a")) {
    const here = a.getAttribute("href") === section;
    a.classList.toggle("active", here);
    if (here) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  try {
    const self = await whoami();
    const who = document.getElementById("who")!;
    who.textContent = self.id === "API_TOKEN" ? "API_TOKEN" : `${self.name} (${self.scope})`;
    who.title = `signed in with a token of scope ${self.scope}`;
    const run = /^#\/runs\/([^/?#]*)/.exec(hash);
    if (run) await runView(decodeURIComponent(run[1]!));
    else if (section === "#/runners") await runnersView();
    else if (section === "#/new") await newRunView();
    else await runsView();
  } catch (e) {
    fail(e);
  }
}

document.getElementById("logout")!.onclick = () => {
  forgetToken();
  askToken();
};
whenUnauthorized(askToken);
window.addEventListener("hashchange", () => void route());
void route();
